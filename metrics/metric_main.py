"""The metric registry (official `metrics.metric_main` interface) and the metrics themselves.

    result = calc_metric('fid50k_full', G=G_ema, dataset_kwargs=training_set_kwargs, num_gpus=1, rank=0)
    report_metric(result, run_dir=run_dir, snapshot_pkl=pkl)    # appends to metric-fid50k_full.jsonl

A metric is a function `fn(opts: MetricOptions)` registered under its own name with
`@register_metric`. It returns a dict {result key: float}, or a single float, which is reported
under the metric's name. `@register_metric(detectors=[url, ...])` also records the detector files
the metric loads, so that `check_metric_requirements` can find missing ones before a long run.
"""

import collections
import difflib
import json
import os
import time

import torch

import dnnlib
from metrics import detectors as _detectors

from . import (frechet_inception_distance, inception_score, kernel_inception_distance, metric_utils,
               perceptual_path_length, precision_recall)

INCEPTION = _detectors.INCEPTION_URL
VGG16 = _detectors.VGG16_URL

_Entry = collections.namedtuple('_Entry', ['fn', 'detectors'])
_REGISTRY = {}   # metric name -> _Entry, in registration order


def register_metric(fn=None, *, detectors=()):
    """Register `fn` under `fn.__name__`. Use as `@register_metric` or `@register_metric(detectors=[url])`."""
    def add(metric_fn):
        if not callable(metric_fn):
            raise TypeError(f'register_metric needs a function, got {type(metric_fn).__name__}')
        _REGISTRY[metric_fn.__name__] = _Entry(metric_fn, tuple(detectors))
        return metric_fn
    return add if fn is None else add(fn)


def is_valid_metric(metric):
    """True if `metric` names a registered metric."""
    return metric in _REGISTRY


def list_valid_metrics():
    """Names of the registered metrics, in registration order."""
    return list(_REGISTRY)


def describe_metric(metric):
    """The first line of the metric's docstring ('' if it has none)."""
    lines = (_REGISTRY[metric].fn.__doc__ or '').strip().splitlines()
    return lines[0] if lines else ''


def unknown_metric_message(metric):
    """Error text for an unregistered name: the closest valid name, if any, and the full list."""
    names = list_valid_metrics()
    guess = difflib.get_close_matches(metric, names, n=1)
    hint = f"; did you mean '{guess[0]}'?" if guess else ''
    return f"unknown metric '{metric}'{hint} Valid metrics: {', '.join(names)}"


def _entry(metric):
    if metric not in _REGISTRY:
        raise ValueError(unknown_metric_message(metric))
    return _REGISTRY[metric]


def metric_detectors(metric):
    """Detector URLs the metric declared (list; empty when it declared none)."""
    return list(_entry(metric).detectors)


def check_metric_requirements(metrics, verbose=False):
    """Fail early: every name must be registered and every detector it needs obtainable.

    Each detector is resolved (downloaded into the cache unless offline), not loaded.
    Returns {detector file name: local path}. Raises ValueError for an unknown name and
    metrics.detectors.DetectorNotFoundError naming a missing file and where it belongs.
    """
    urls = dict.fromkeys(url for metric in metrics for url in metric_detectors(metric))  # once each, in order
    return {_detectors.detector_file_name(url): _detectors.resolve_detector(url, verbose=verbose) for url in urls}


def _as_results(metric, outcome):
    """Dict of Python floats from what a metric function returned (a dict, or one number)."""
    if not isinstance(outcome, dict):
        outcome = {metric: outcome}
    return {key: float(value) for key, value in outcome.items()}


def _from_rank0(results, opts):
    """Rank 0's values on every process (the others computed NaN)."""
    if opts.num_gpus == 1:
        return results
    values = torch.tensor(list(results.values()), dtype=torch.float64, device=opts.device)
    torch.distributed.broadcast(values, src=0)
    return dict(zip(results, values.tolist()))


def calc_metric(metric, **kwargs):
    """Evaluate one registered metric; kwargs build the MetricOptions (G, G_kwargs, dataset_kwargs, ...).

    Returns EasyDict(results, metric, total_time, total_time_str, num_gpus) in the official layout,
    then `detectors` ({file name: sha256} of the detector files used) and, for capped runs,
    `max_samples`. Detector files are checked before any work starts.
    """
    metric_fn = _entry(metric).fn
    opts = metric_utils.MetricOptions(**kwargs)
    check_metric_requirements([metric])
    _detectors.reset_used()
    started = time.time()
    results = _from_rank0(_as_results(metric, metric_fn(opts)), opts)
    elapsed = time.time() - started
    summary = dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=elapsed,
                              total_time_str=dnnlib.util.format_time(elapsed), num_gpus=opts.num_gpus)
    summary.detectors = _detectors.used_digests()
    if opts.max_samples is not None:
        summary.max_samples = opts.max_samples
    return summary


def report_metric(result_dict, run_dir=None, snapshot_pkl=None):
    """Print the result as one JSON line; also append it to `<run_dir>/metric-<name>.jsonl` if run_dir exists.

    snapshot_pkl is recorded relative to run_dir when both are given.
    """
    name = result_dict['metric']
    _entry(name)   # an unknown name is an error here too, before anything is written
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    record = json.dumps({**result_dict, 'snapshot_pkl': snapshot_pkl, 'timestamp': time.time()})
    print(record)
    if run_dir is not None and os.path.isdir(run_dir):
        # One write of a whole line: a reader never sees half a record.
        with open(os.path.join(run_dir, f'metric-{name}.jsonl'), 'a', encoding='utf-8') as log:
            log.write(record + '\n')

# ---------------------------------------------------------------------------------------------------
# The official protocols. Sample counts and settings are part of each metric's definition.

_FAKES = 50000
_KID_SUBSETS = dict(num_subsets=100, max_subset_size=1000)
_PR_SETTINGS = dict(nhood_size=3, row_batch_size=10000, col_batch_size=10000)
_PPL_SETTINGS = dict(num_samples=50000, epsilon=1e-4, batch_size=2)


def _whole_dataset(opts, mirrored):
    """Compare against every real image; the `*_full` protocols also leave out x-flipped copies."""
    opts.dataset_kwargs.max_size = None
    if not mirrored:
        opts.dataset_kwargs.xflip = False


@register_metric(detectors=[INCEPTION])
def fid50k_full(opts):
    """FID, 50k fakes against the full data set without x-flips."""
    _whole_dataset(opts, mirrored=False)
    return frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=_FAKES)


@register_metric(detectors=[INCEPTION])
def kid50k_full(opts):
    """KID, 50k fakes against up to 1M reals without x-flips, 100 subsets of 1000."""
    _whole_dataset(opts, mirrored=False)
    return kernel_inception_distance.compute_kid(opts, max_real=1000000, num_gen=_FAKES, **_KID_SUBSETS)


@register_metric(detectors=[VGG16])
def pr50k3_full(opts):
    """Precision/recall, 50k fakes against up to 200k reals without x-flips, k=3."""
    _whole_dataset(opts, mirrored=False)
    precision, recall = precision_recall.compute_pr(opts, max_real=200000, num_gen=_FAKES, **_PR_SETTINGS)
    return {'pr50k3_full_precision': precision, 'pr50k3_full_recall': recall}


@register_metric(detectors=[VGG16])
def ppl2_wend(opts):
    """PPL in W at path endpoints, no crop, 50k samples, epsilon 1e-4."""
    return perceptual_path_length.compute_ppl(opts, space='w', sampling='end', crop=False, **_PPL_SETTINGS)


@register_metric(detectors=[INCEPTION])
def is50k(opts):
    """Inception Score of 50k fakes, 10 splits."""
    _whole_dataset(opts, mirrored=False)   # conditional G: labels are drawn from the whole set
    mean, std = inception_score.compute_is(opts, num_gen=_FAKES, num_splits=10)
    return {'is50k_mean': mean, 'is50k_std': std}

# ---------------------------------------------------------------------------------------------------
# The metrics of the StyleGAN/StyleGAN2 papers: 50k reals, x-flipped copies as in training.


@register_metric(detectors=[INCEPTION])
def fid50k(opts):
    """FID, 50k fakes against 50k reals (x-flips as in training)."""
    _whole_dataset(opts, mirrored=True)
    return frechet_inception_distance.compute_fid(opts, max_real=50000, num_gen=_FAKES)


@register_metric(detectors=[INCEPTION])
def kid50k(opts):
    """KID, 50k fakes against 50k reals, 100 subsets of 1000."""
    _whole_dataset(opts, mirrored=True)
    return kernel_inception_distance.compute_kid(opts, max_real=50000, num_gen=_FAKES, **_KID_SUBSETS)


@register_metric(detectors=[VGG16])
def pr50k3(opts):
    """Precision/recall, 50k fakes against 50k reals, k=3."""
    _whole_dataset(opts, mirrored=True)
    precision, recall = precision_recall.compute_pr(opts, max_real=50000, num_gen=_FAKES, **_PR_SETTINGS)
    return {'pr50k3_precision': precision, 'pr50k3_recall': recall}


def _register_ppl(space, sampling):
    """The paper PPL in `space` ('z' or 'w') with `sampling` ('full' or 'end'), face crop on."""
    def metric(opts):
        return perceptual_path_length.compute_ppl(opts, space=space, sampling=sampling, crop=True,
                                                  **_PPL_SETTINGS)
    metric.__name__ = metric.__qualname__ = f'ppl_{space}{sampling}'
    metric.__doc__ = f'PPL in {space.upper()} ({sampling} paths), face crop, 50k samples, epsilon 1e-4.'
    return register_metric(metric, detectors=[VGG16])


ppl_zfull = _register_ppl('z', 'full')
ppl_wfull = _register_ppl('w', 'full')
ppl_zend = _register_ppl('z', 'end')
ppl_wend = _register_ppl('w', 'end')

# ---------------------------------------------------------------------------------------------------
# Quick variants of this fork (10k fakes) for frequent checks during training; not comparable
# with the 50k numbers.


@register_metric(detectors=[INCEPTION])
def fid10k_full(opts):
    """FID, 10k fakes against the full data set without x-flips (quick check, not comparable to fid50k_full)."""
    _whole_dataset(opts, mirrored=False)
    return frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=10000)


@register_metric(detectors=[INCEPTION])
def kid10k_full(opts):
    """KID, 10k fakes against up to 1M reals without x-flips, 100 subsets of 1000 (quick check)."""
    _whole_dataset(opts, mirrored=False)
    return kernel_inception_distance.compute_kid(opts, max_real=1000000, num_gen=10000, **_KID_SUBSETS)
