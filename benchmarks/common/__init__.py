"""Shared helpers of the benchmark scripts in `benchmarks/`.

- `runner`: run `train.py` as a subprocess (the command printed exactly as run), one or a few at a time.
- `runs`: read what a run wrote (final snapshot, stats.jsonl, training_options.json).
- `toy_metrics`: toy data sets, sampling a generator, mode coverage, high-quality share, L1 reconstruction.
- `coverage`: the methods x seeds mode-coverage protocol of Q2 and Q5.
- `reconstruction`: LOGAN-B's ad hoc / post hoc reconstruction errors (Q1).
- `figures`: the shared figures (coverage scatter captions, loss curves from stats.jsonl).
- `plots`: scatter plots and line charts as PNG, drawn with matplotlib (`pip install -e ".[bench]"`).
- `report`: versions, seeds, wall time, results.json, and the paper's numbers printed beside ours.
- `toy_losses`: loss classes named by dotted path in `--loss` (option overrides, Q1 baselines).
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
