"""Inception Score (Salimans et al., 2016, arXiv:1606.03498).

For class probabilities p(y|x) of generated images, IS = exp(E_x KL(p(y|x) || p(y))), where p(y)
is the mean prediction. The samples are cut into `num_splits` consecutive parts; the score of
each part is computed on its own, and their mean and standard deviation are reported.
"""

import numpy as np

from metrics.detectors import INCEPTION_URL

from . import metric_utils

DETECTOR_URL = INCEPTION_URL
# The classifier's softmax without its last bias term: how the score was defined originally.
DETECTOR_KWARGS = dict(no_output_bias=True)


def _part_bounds(count, parts):
    """Start/stop rows of `parts` consecutive, near-equal parts of `count` rows."""
    edges = [k * count // parts for k in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _part_score(probs):
    """exp(mean KL(p(y|x) || p(y))) of one part, probs float64 [n, classes]."""
    log_ratio = np.log(probs) - np.log(probs.mean(axis=0, keepdims=True))
    return np.exp(np.mean(np.sum(probs * log_ratio, axis=1)))


def is_from_probs(probs, num_splits):
    """(mean, std) of the Inception Score over `num_splits` consecutive parts of probs.

    probs: [N, classes] strictly positive rows summing to 1, N >= num_splits. Returns two floats.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) < num_splits:
        raise ValueError(f'the Inception Score over {num_splits} splits needs at least {num_splits} samples, '
                         f'got {len(probs)}')
    scores = [_part_score(probs[lo:hi]) for lo, hi in _part_bounds(len(probs), num_splits)]
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts, num_gen, num_splits):
    """Inception Score (mean, std) of `num_gen` generated images; (NaN, NaN) on ranks other than 0."""
    stats = metric_utils.compute_feature_stats_for_generator(
        opts, DETECTOR_URL, DETECTOR_KWARGS, max_items=num_gen, capture_all=True)
    probs = stats.get_all()
    if opts.rank != 0:
        return float('nan'), float('nan')
    return is_from_probs(probs, min(num_splits, len(probs)))
