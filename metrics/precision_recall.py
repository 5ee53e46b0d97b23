"""Improved precision and recall (Kynkäänniemi et al., 2019, arXiv:1904.06991).

Each feature set spans a manifold: the union of balls around its points, each ball reaching the
point's k-th nearest neighbour in the same set. Precision is the fraction of generated samples
inside the real manifold; recall the fraction of real samples inside the generated one.
VGG16 fc features are used; the work is split by rows across processes.
"""

import torch

from metrics.detectors import VGG16_URL

from . import metric_utils
from .feature_stats import all_gather_interleaved

DETECTOR_URL = VGG16_URL
DETECTOR_KWARGS = dict(return_features=True)


def _kth_nearest_distance(rows, ref, k, col_batch_size):
    """Distance from each of rows [R, F] to its k-th nearest point of ref [M, F] (k=1: nearest), [R]."""
    best = None
    for cols in ref.split(col_batch_size):
        dist = torch.cdist(rows, cols)
        if best is not None:
            dist = torch.cat([best, dist], dim=1)
        best = dist.topk(min(k, dist.shape[1]), dim=1, largest=False).values  # sorted ascending
    return best[:, k - 1]


def _inside_any_ball(rows, centers, radii, col_batch_size):
    """Whether each of rows [R, F] lies within radii[j] of some centers[j]; bool [R]."""
    inside = torch.zeros([rows.shape[0]], dtype=torch.bool, device=rows.device)
    for cols, col_radii in zip(centers.split(col_batch_size), radii.split(col_batch_size)):
        inside |= (torch.cdist(rows, cols) <= col_radii.unsqueeze(0)).any(dim=1)
    return inside


def _map_row_batches(fn, rows, row_batch_size, num_gpus, rank):
    """fn(rows batch) -> [batch] float, over all batches of `rows`, shared out across processes.

    Batch b goes to rank b % num_gpus; results are gathered so every rank returns the full [N].
    """
    num_rows = rows.shape[0]
    num_batches = -(-num_rows // row_batch_size)
    results = []
    for first in range(0, num_batches, num_gpus):
        mine = rows[(first + rank) * row_batch_size:(first + rank + 1) * row_batch_size]
        out = torch.zeros([row_batch_size], dtype=torch.float32, device=rows.device)
        if mine.shape[0] > 0:
            out[:mine.shape[0]] = fn(mine).float()
        gathered = all_gather_interleaved(out.unsqueeze(0), num_gpus)  # [num_gpus, row_batch_size]
        for src in range(num_gpus):
            valid = max(0, min(row_batch_size, num_rows - (first + src) * row_batch_size))
            results.append(gathered[src, :valid])
    return torch.cat(results)


def pr_from_features(real, gen, nhood_size, row_batch_size, col_batch_size, num_gpus=1, rank=0):
    """(precision, recall) of generated features against real ones, as Python floats.

    real: [N_r, F], gen: [N_g, F] tensors on one device. A manifold ball reaches the
    `nhood_size`-th nearest other point (the point itself is the nearest, at distance 0).
    Every rank returns the same values.
    """
    def manifold_radii(points):
        kth = lambda batch: _kth_nearest_distance(batch, points, nhood_size + 1, col_batch_size)  # noqa: E731
        return _map_row_batches(kth, points, row_batch_size, num_gpus, rank).to(points.dtype)

    def coverage(probes, centers, radii):
        inside = lambda batch: _inside_any_ball(batch, centers, radii, col_batch_size)  # noqa: E731
        return float(_map_row_batches(inside, probes, row_batch_size, num_gpus, rank).mean())

    precision = coverage(gen, real, manifold_radii(real))
    recall = coverage(real, gen, manifold_radii(gen))
    return precision, recall


def compute_pr(opts, max_real, num_gen, nhood_size, row_batch_size, col_batch_size):
    """Precision and recall of `num_gen` fakes against the first `max_real` reals; NaNs off rank 0.

    Features are stored in float16 as in the official metric; distances are computed in float16
    on CUDA and in float32 elsewhere (CPU half-precision cdist is slow).
    """
    dtype = torch.float16 if opts.device.type == 'cuda' else torch.float32

    def features(stats):
        return stats.get_all_torch().to(torch.float16).to(opts.device).to(dtype)

    real = features(metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS, rel_lo=0, rel_hi=0,
        capture_all=True, max_items=max_real))
    gen = features(metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS, rel_lo=0, rel_hi=1,
        capture_all=True, max_items=num_gen))
    precision, recall = pr_from_features(real, gen, nhood_size, row_batch_size, col_batch_size,
                                         num_gpus=opts.num_gpus, rank=opts.rank)
    if opts.rank != 0:
        return float('nan'), float('nan')
    return precision, recall
