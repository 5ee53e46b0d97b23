"""The training loop's only contact with `metrics/`: imported lazily, so training works without it.

`metrics.metric_main` (COMPAT section 7) provides `is_valid_metric`, `list_valid_metrics`,
`calc_metric` and `report_metric`. Without that module, only `--metrics=none` is accepted.
Metric names are checked with the other options; the feature detectors the metrics need are
located (`metric_main.check_metric_requirements`, which may download them into the cache) just
before the run folder is created, so a missing detector fails the run before anything is built,
while `--dry-run` stays offline.
"""

import importlib


def _metric_main():
    try:
        return importlib.import_module('metrics.metric_main')
    except ImportError as err:
        if getattr(err, 'name', None) not in ('metrics', 'metrics.metric_main'):
            raise   # the module exists but is broken: show the real error
        return None


def check_metrics(names):
    """Raise ValueError naming the bad metric and the accepted ones; `names` may be empty."""
    if not names:
        return
    metric_main = _metric_main()
    if metric_main is None:
        raise ValueError(f'metrics {", ".join(names)} cannot be evaluated: metrics/metric_main.py is not '
                         f'available in this installation; use --metrics=none')
    valid = list(metric_main.list_valid_metrics())
    bad = [name for name in names if not metric_main.is_valid_metric(name)]
    if bad:
        raise ValueError(f'unknown metric(s) {", ".join(bad)}; accepted: {", ".join(valid)} (or none)')


def check_detectors(names):
    """Make sure every detector file the metrics need can be found; raises with the place to put it."""
    if not names:
        return
    check = getattr(_metric_main(), 'check_metric_requirements', None)
    if check is not None:
        check(list(names))


def evaluate(metrics, *, G, dataset_kwargs, num_gpus, rank, device, run_dir, snapshot_pkl):
    """Compute `metrics` for generator G; rank 0 appends each result to the run's metric-*.jsonl.

    Returns {result name: value} of all metrics (for TensorBoard).
    """
    results = {}
    if not metrics:
        return results
    metric_main = _metric_main()
    for metric in metrics:
        result = metric_main.calc_metric(metric=metric, G=G, dataset_kwargs=dataset_kwargs, num_gpus=num_gpus,
                                         rank=rank, device=device)
        if rank == 0:
            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
        results.update(result.results)
    return results
