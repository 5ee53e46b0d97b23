"""Fréchet Inception Distance (Heusel et al., 2017, arXiv:1706.08500).

Gaussians are fitted to Inception pool features of real and of generated images; FID is the
Fréchet (2-Wasserstein) distance between them:
    |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_g S_r)^(1/2)).
"""

import numpy as np
import scipy.linalg

from metrics.detectors import INCEPTION_URL

from . import metric_utils

DETECTOR_URL = INCEPTION_URL
DETECTOR_KWARGS = dict(return_features=True)  # the 2048-d pool features, not class scores


def fid_from_stats(mu_a, sigma_a, mu_b, sigma_b):
    """Fréchet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b), a Python float.

    mu_*: [F]; sigma_*: [F, F] symmetric positive semi-definite (any float dtype). Round-off can
    give the matrix square root tiny imaginary parts; only the real part is kept.
    """
    means = [np.asarray(mu, dtype=np.float64) for mu in (mu_a, mu_b)]
    covs = [np.asarray(sigma, dtype=np.float64) for sigma in (sigma_a, sigma_b)]
    shapes = [arr.shape for arr in means + covs]
    if shapes[0] != shapes[1] or not shapes[2] == shapes[3] == shapes[0] * 2:
        raise ValueError(f'Gaussian statistics do not match: means {shapes[0]} and {shapes[1]}, '
                         f'covariances {shapes[2]} and {shapes[3]}')
    offset = means[0] - means[1]
    cross_root = scipy.linalg.sqrtm(covs[0] @ covs[1])
    total = offset @ offset + np.trace(covs[0]) + np.trace(covs[1]) - 2 * np.trace(cross_root)
    return float(np.real(total))


def _gaussian(opts, extract, **request):
    """(mean, covariance) of the detector features that `extract` collects."""
    stats = extract(opts, DETECTOR_URL, DETECTOR_KWARGS, capture_mean_cov=True, **request)
    return stats.get_mean_cov()


def compute_fid(opts, max_real, num_gen):
    """FID between the real images (the first `max_real`, None = all) and `num_gen` generated ones.

    Returns a float on rank 0 and NaN on the other ranks.
    """
    real = _gaussian(opts, metric_utils.compute_feature_stats_for_dataset, max_items=max_real, rel_lo=0, rel_hi=0)
    fake = _gaussian(opts, metric_utils.compute_feature_stats_for_generator, max_items=num_gen, rel_lo=0, rel_hi=1)
    if opts.rank != 0:
        return float('nan')
    return fid_from_stats(*fake, *real)
