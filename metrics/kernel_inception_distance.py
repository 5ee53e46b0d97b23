"""Kernel Inception Distance (Bińkowski et al., 2018, arXiv:1801.01401).

KID is the unbiased estimate of the squared MMD between real and generated Inception features
under the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
"""

import numpy as np

from metrics.detectors import INCEPTION_URL

from . import metric_utils

DETECTOR_URL = INCEPTION_URL
DETECTOR_KWARGS = dict(return_features=True)


def _polynomial_kernel(x, y):
    return (x @ y.T / x.shape[1] + 1) ** 3


def kid_from_features(real, gen, num_subsets, max_subset_size, rng=None):
    """Mean over `num_subsets` draws of the unbiased MMD^2 between subsets of real and gen features.

    real: float [N_r, F]; gen: float [N_g, F]. Each draw takes m = min(N_r, N_g, max_subset_size)
    rows of each without replacement (rng: a numpy RandomState, default the global np.random).
    """
    rng = np.random if rng is None else rng
    real, gen = np.asarray(real, dtype=np.float64), np.asarray(gen, dtype=np.float64)
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f'KID needs at least 2 real and 2 generated samples, got {real.shape[0]} and {gen.shape[0]}')
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        within = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)  # i != j terms only
        total += within / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)
    return float(total / num_subsets)


def compute_kid(opts, max_real, num_gen, num_subsets, max_subset_size):
    """KID between the real data set (first `max_real` items) and `num_gen` fakes; NaN off rank 0."""
    real = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS, rel_lo=0, rel_hi=0,
        capture_all=True, max_items=max_real).get_all()
    gen = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS, rel_lo=0, rel_hi=1,
        capture_all=True, max_items=num_gen).get_all()
    if opts.rank != 0:
        return float('nan')
    return kid_from_features(real, gen, num_subsets, max_subset_size)
