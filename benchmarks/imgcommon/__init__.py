"""Shared helpers of the digit-image and performance benchmarks (Q4, Q6, Q7, P2, P3, P4).

- `runinfo`:    command line (`--quick`, `--out`, `--threads`), the printed header (command, seeds,
                versions), the paper-vs-ours table, wall time and `results.json`;
- `trainer`:    `train.py` as a subprocess (exact command printed, log kept, peak memory), and
                reading what a run left behind (stats.jsonl, snapshots);
- `digits`:     data sets built from scikit-learn's bundled 8x8 digits (halves, stacked digits);
- `classifier`: the small digits classifier behind FD-digits and the stacked-digits mode count;
- `figures`:    PNG sample grids (Pillow), line and bar charts (matplotlib: `pip install -e ".[bench]"`).

Importing the package puts the repository root on `sys.path`, so the scripts run as
`python benchmarks/<script>.py` from any folder.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
