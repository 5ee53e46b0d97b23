"""The benchmarks of docs/benchmarks.md: one script per measurement, on one shared framework.

Run a script as a module from the repository root:

    python -m benchmarks.q1_loganb_ring --quick
    python -m benchmarks.q6_clr_digits --quick --out results/q6_clr_digits/quick

`python benchmarks/q1_loganb_ring.py ...` works too, from any folder: a script started by its
path replaces itself with `python -m benchmarks.<name>` in the same folder, with the repository
root on the new process's PYTHONPATH (`benchmarks/_by_path.py`). Nothing edits `sys.path`.

- `q1_loganb_ring`, `q2_dist_grid`, `q3_advlat_toy`, `q5_rf_ring`: the papers' 2-D experiments;
- `q4_advlat_pairs`, `q6_clr_digits`, `q7_dist_stacked`: the digit-image experiments;
- `train_speed` (P2), `tools_speed` (P4): throughput of train.py and of the inference tools;
- `common/`: what they share (command line and results.json, train.py runs, figures, data and
  metrics of each domain); see its docstring.
"""
