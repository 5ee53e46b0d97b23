"""What training needs from the metrics layer: name checks, detector checks, and `evaluate`.

train.py (the command-line layer) checks the `--metrics` names with `check_metrics` once the
options are resolved, makes sure the detector files are at hand with `check_detectors` just before
the run folder is created (so a missing detector fails before anything is built, while `--dry-run`
stays offline), and hands `evaluate` to the training loop as its `metrics_fn`. `evaluate` is a
module-level function, so it survives torch.multiprocessing spawn for `--gpus>1`. The training
loop never imports this package.
"""

from metrics import metric_main
from stylegan_plus.training import official_names


def check_metrics(names):
    """Raise ValueError naming the unknown metrics and the accepted ones; `names` may be empty."""
    bad = [name for name in names if not metric_main.is_valid_metric(name)]
    if bad:
        accepted = ', '.join(metric_main.list_valid_metrics())
        raise ValueError(f'unknown metric(s) {", ".join(bad)}; accepted: {accepted} (or none)')


def check_detectors(names):
    """Locate every detector file the metrics `names` need (may download it into the cache);
    raises with the place to put a missing one."""
    if names:
        metric_main.check_metric_requirements(list(names))


def evaluate(metrics, *, G, dataset_kwargs, num_gpus, rank, device, run_dir, snapshot_pkl, z_dist=None):
    """Compute `metrics` (list of names) for generator G; rank 0 appends each result to the run's
    metric-<name>.jsonl. Every process must call it (the metrics split the work between them).
    z_dist: the run's latent prior (None = normal), which the fakes' latents are drawn from.

    dataset_kwargs: the training set (`class_name` + arguments), as the loop has it.
    Returns {result name: float} over all metrics (for TensorBoard).
    """
    # The real-image statistics are cached under a digest of dataset_kwargs; calc_metrics.py reads
    # them from the snapshot, where the class names are official, so the two share one cache file.
    dataset_kwargs = official_names.to_official(dataset_kwargs)
    results = {}
    for metric in metrics:
        result = metric_main.calc_metric(metric=metric, G=G, dataset_kwargs=dataset_kwargs, num_gpus=num_gpus,
                                         rank=rank, device=device, z_dist=z_dist)
        if rank == 0:
            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
        results.update(result.results)
    return results
