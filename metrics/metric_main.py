"""Metric registry (official `metrics.metric_main` interface) and every official metric.

    calc_metric('fid50k_full', G=G_ema, dataset_kwargs=training_set_kwargs, num_gpus=1, rank=0, device=device)
    report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)   # appends to metric-fid50k_full.jsonl

A metric is a function `fn(opts: MetricOptions) -> dict(result_key=float, ...)` registered under
its function name with `@register_metric` (or `@register_metric(detectors=[...])`, which lets
`check_metric_requirements` find missing detector files before a long run starts).
"""

import difflib
import json
import os
import time

import torch

import dnnlib
from stylegan_plus.tools import detectors as _detectors

from . import (frechet_inception_distance, inception_score, kernel_inception_distance, metric_utils,
               perceptual_path_length, precision_recall)

_metric_dict = {}       # name -> fn
_metric_detectors = {}  # name -> detector URLs the metric loads

INCEPTION = _detectors.INCEPTION_URL
VGG16 = _detectors.VGG16_URL


def register_metric(fn=None, *, detectors=()):
    """Register `fn` under `fn.__name__`; usable as `@register_metric` or `@register_metric(detectors=[url])`."""
    def register(func):
        if not callable(func):
            raise TypeError(f'register_metric expects a function, got {type(func).__name__}')
        _metric_dict[func.__name__] = func
        _metric_detectors[func.__name__] = tuple(detectors)
        return func
    return register if fn is None else register(fn)


def is_valid_metric(metric):
    return metric in _metric_dict


def list_valid_metrics():
    return list(_metric_dict.keys())


def describe_metric(metric):
    """First line of the metric function's docstring ('' if none)."""
    doc = (_metric_dict[metric].__doc__ or '').strip()
    return doc.splitlines()[0] if doc else ''


def unknown_metric_message(metric):
    """'unknown metric X; did you mean Y? valid metrics: ...' for error messages."""
    close = difflib.get_close_matches(metric, list_valid_metrics(), n=1)
    hint = f'; did you mean {close[0]!r}?' if close else ''
    return f'unknown metric {metric!r}{hint} Valid metrics: {", ".join(list_valid_metrics())}'


def metric_detectors(metric):
    """Detector URLs the registered metric loads (empty if it did not declare them)."""
    if not is_valid_metric(metric):
        raise ValueError(unknown_metric_message(metric))
    return list(_metric_detectors[metric])


def check_metric_requirements(metrics, verbose=False):
    """Fail early: check that every metric name is known and every detector file it needs is available.

    Resolves (and, unless offline, downloads into the cache) each detector, without loading it.
    Returns {detector file name: local path}. Raises ValueError for an unknown metric name and
    stylegan_plus.tools.detectors.DetectorNotFoundError naming the file and where to put it.
    """
    found = {}
    for metric in metrics:
        for url in metric_detectors(metric):
            name = _detectors.detector_file_name(url)
            if name not in found:
                found[name] = _detectors.resolve_detector(url, verbose=verbose)
    return found


def _broadcast_results(results, opts):
    """Rank 0's result values on every rank (the others computed NaN)."""
    if opts.num_gpus == 1:
        return results
    out = {}
    for key, value in results.items():
        tensor = torch.as_tensor(value, dtype=torch.float64, device=opts.device)
        torch.distributed.broadcast(tensor=tensor, src=0)
        out[key] = float(tensor.cpu())
    return out


def calc_metric(metric, **kwargs):
    """Compute one registered metric; kwargs go to MetricOptions (G, G_kwargs, dataset_kwargs, num_gpus, ...).

    Returns EasyDict(results, metric, total_time, total_time_str, num_gpus) as the official code,
    plus `detectors` ({file name: sha256} of the detector files used) and, for capped runs,
    `max_samples`. Detectors are checked before any work starts.
    """
    if not is_valid_metric(metric):
        raise ValueError(unknown_metric_message(metric))
    opts = metric_utils.MetricOptions(**kwargs)
    check_metric_requirements([metric])
    _detectors.reset_used()
    start_time = time.time()
    results = _broadcast_results(_metric_dict[metric](opts), opts)
    total_time = time.time() - start_time
    out = dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=total_time,
                          total_time_str=dnnlib.util.format_time(total_time), num_gpus=opts.num_gpus,
                          detectors=_detectors.used_digests())
    if opts.max_samples is not None:
        out.max_samples = opts.max_samples
    return out


def report_metric(result_dict, run_dir=None, snapshot_pkl=None):
    """Print the result as one JSON line and append it to `<run_dir>/metric-<name>.jsonl` if run_dir exists.

    snapshot_pkl is stored relative to run_dir when both are given.
    """
    metric = result_dict['metric']
    if not is_valid_metric(metric):
        raise ValueError(unknown_metric_message(metric))
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(line)
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl'), 'at') as f:
            f.write(line + '\n')

# ---------------------------------------------------------------------------------------------------
# Recommended metrics (official names, keys and settings).


def _fid_full(opts, num_gen):
    """FID of `num_gen` fakes against every real image, without x-flips."""
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    return frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=num_gen)


def _kid_full(opts, num_gen):
    """KID of `num_gen` fakes against up to 1M reals without x-flips, 100 subsets of 1000."""
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    return kernel_inception_distance.compute_kid(opts, max_real=1000000, num_gen=num_gen, num_subsets=100,
                                                 max_subset_size=1000)


@register_metric(detectors=[INCEPTION])
def fid50k_full(opts):
    """FID, 50k fakes against the full data set without x-flips."""
    return dict(fid50k_full=_fid_full(opts, num_gen=50000))


@register_metric(detectors=[INCEPTION])
def kid50k_full(opts):
    """KID, 50k fakes against up to 1M reals without x-flips, 100 subsets of 1000."""
    return dict(kid50k_full=_kid_full(opts, num_gen=50000))


@register_metric(detectors=[VGG16])
def pr50k3_full(opts):
    """Precision/recall, 50k fakes against up to 200k reals without x-flips, k=3."""
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    precision, recall = precision_recall.compute_pr(opts, max_real=200000, num_gen=50000, nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric(detectors=[VGG16])
def ppl2_wend(opts):
    """PPL in W at path endpoints, no crop, 50k samples, epsilon 1e-4."""
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space='w', sampling='end',
                                             crop=False, batch_size=2)
    return dict(ppl2_wend=ppl)


@register_metric(detectors=[INCEPTION])
def is50k(opts):
    """Inception Score of 50k fakes, 10 splits."""
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    mean, std = inception_score.compute_is(opts, num_gen=50000, num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)

# ---------------------------------------------------------------------------------------------------
# Legacy metrics (as in the StyleGAN/StyleGAN2 papers): 50k reals, x-flips as trained.


@register_metric(detectors=[INCEPTION])
def fid50k(opts):
    """FID, 50k fakes against 50k reals (x-flips as in training)."""
    opts.dataset_kwargs.update(max_size=None)
    return dict(fid50k=frechet_inception_distance.compute_fid(opts, max_real=50000, num_gen=50000))


@register_metric(detectors=[INCEPTION])
def kid50k(opts):
    """KID, 50k fakes against 50k reals, 100 subsets of 1000."""
    opts.dataset_kwargs.update(max_size=None)
    kid = kernel_inception_distance.compute_kid(opts, max_real=50000, num_gen=50000, num_subsets=100,
                                                max_subset_size=1000)
    return dict(kid50k=kid)


@register_metric(detectors=[VGG16])
def pr50k3(opts):
    """Precision/recall, 50k fakes against 50k reals, k=3."""
    opts.dataset_kwargs.update(max_size=None)
    precision, recall = precision_recall.compute_pr(opts, max_real=50000, num_gen=50000, nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


def _ppl_metric(space, sampling):
    """Legacy PPL variant: 50k samples, epsilon 1e-4, face crop, batch 2."""
    def metric(opts):
        ppl = perceptual_path_length.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space=space,
                                                 sampling=sampling, crop=True, batch_size=2)
        return {metric.__name__: ppl}
    metric.__name__ = f'ppl_{space}{sampling}'
    metric.__doc__ = f'PPL in {space.upper()} ({sampling} paths), face crop, 50k samples, epsilon 1e-4.'
    return register_metric(metric, detectors=[VGG16])


ppl_zfull = _ppl_metric('z', 'full')
ppl_wfull = _ppl_metric('w', 'full')
ppl_zend = _ppl_metric('z', 'end')
ppl_wend = _ppl_metric('w', 'end')

# ---------------------------------------------------------------------------------------------------
# Quick variants (not official): 10k fakes, for frequent checks during training.


@register_metric(detectors=[INCEPTION])
def fid10k_full(opts):
    """FID, 10k fakes against the full data set without x-flips (quick check, not comparable to fid50k_full)."""
    return dict(fid10k_full=_fid_full(opts, num_gen=10000))


@register_metric(detectors=[INCEPTION])
def kid10k_full(opts):
    """KID, 10k fakes against up to 1M reals without x-flips, 100 subsets of 1000 (quick check)."""
    return dict(kid10k_full=_kid_full(opts, num_gen=10000))
