"""Inception Score (Salimans et al., 2016, arXiv:1606.03498).

IS = exp(E_x KL(p(y|x) || p(y))) over Inception class probabilities of generated images, computed
on `num_splits` equal parts of the samples; the mean and standard deviation over parts are reported.
"""

import numpy as np

from stylegan_plus.tools.detectors import INCEPTION_URL

from . import metric_utils

DETECTOR_URL = INCEPTION_URL
DETECTOR_KWARGS = dict(no_output_bias=True)  # class probabilities without the final bias, as in the original IS


def is_from_probs(probs, num_splits):
    """(mean, std) of the Inception Score over `num_splits` consecutive parts of probs [N, classes].

    probs: rows are strictly positive probability vectors. Needs N >= num_splits.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[0] < num_splits:
        raise ValueError(f'Inception Score needs at least {num_splits} samples for {num_splits} splits, '
                         f'got {probs.shape[0]}')
    scores = []
    for i in range(num_splits):
        part = probs[i * probs.shape[0] // num_splits:(i + 1) * probs.shape[0] // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part) - np.log(marginal))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts, num_gen, num_splits):
    """Inception Score of `num_gen` fakes as (mean, std); (NaN, NaN) off rank 0."""
    probs = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS,
        capture_all=True, max_items=num_gen).get_all()
    if opts.rank != 0:
        return float('nan'), float('nan')
    return is_from_probs(probs, min(num_splits, probs.shape[0]))
