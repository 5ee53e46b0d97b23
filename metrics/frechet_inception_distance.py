"""Fréchet Inception Distance (Heusel et al., 2017, arXiv:1706.08500).

FID is the Fréchet (2-Wasserstein) distance between two Gaussians fitted to Inception pool
features of real and generated images:
    |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_g S_r)^(1/2)).
"""

import numpy as np
import scipy.linalg

from stylegan_plus.tools.detectors import INCEPTION_URL

from . import metric_utils

DETECTOR_URL = INCEPTION_URL
DETECTOR_KWARGS = dict(return_features=True)  # 2048-d pool3 features


def fid_from_stats(mu_a, sigma_a, mu_b, sigma_b):
    """Fréchet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b).

    mu_*: float [F]; sigma_*: float [F, F] symmetric positive semi-definite. Returns a Python float.
    The matrix square root may pick up tiny imaginary parts from round-off; only the real part counts.
    """
    mu_a, mu_b = np.asarray(mu_a, dtype=np.float64), np.asarray(mu_b, dtype=np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, dtype=np.float64), np.asarray(sigma_b, dtype=np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape or sigma_a.shape != mu_a.shape * 2:
        raise ValueError(f'statistics do not match: mu {mu_a.shape} vs {mu_b.shape}, '
                         f'sigma {sigma_a.shape} vs {sigma_b.shape}')
    diff = mu_a - mu_b
    root = scipy.linalg.sqrtm(sigma_a @ sigma_b)
    return float(np.real(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(root)))


def compute_fid(opts, max_real, num_gen):
    """FID between the real data set (first `max_real` items, None = all) and `num_gen` fakes.

    Returns a float on rank 0 and NaN on the other ranks.
    """
    mu_real, sigma_real = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS, rel_lo=0, rel_hi=0,
        capture_mean_cov=True, max_items=max_real).get_mean_cov()
    mu_gen, sigma_gen = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS, rel_lo=0, rel_hi=1,
        capture_mean_cov=True, max_items=num_gen).get_mean_cov()
    if opts.rank != 0:
        return float('nan')
    return fid_from_stats(mu_gen, sigma_gen, mu_real, sigma_real)
