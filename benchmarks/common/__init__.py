"""What the benchmark scripts share: one framework for the 2-D and the image benchmarks.

The framework:
- `report`:  command line (`make_parser`, `benchmark_main`, threads), the printed header, the
             paper-vs-ours table and results.json (`Report`), number helpers (`mean_std`, `fmt`);
- `runner`:  train.py as a subprocess (`TrainJob`, `run_jobs`: exact command printed and
             recorded, log, wall/CPU time, peak memory, `--reuse` of finished runs);
- `runs`:    what a run folder holds (snapshots, stats.jsonl, training_options.json);
- `figures`: PNG scatter panels, line and bar charts, sample grids, the 2-D loss-curve figure.

The domains:
- `toy_metrics`, `coverage`, `reconstruction`: 2-D data sets and the papers' rules (mode
  coverage, high-quality share, LOGAN-B's ad hoc / post hoc reconstruction errors);
- `digits`, `classifier`: data sets from scikit-learn's bundled digits, and the small classifier
  behind FD-digits and the stacked-digits mode count;
- `toy_losses`, `matched_latent`: loss classes named by dotted path in `--loss`
  (`--loss=benchmarks.common.toy_losses.NAME`): project plugins plus option overrides.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
