"""Toy data on disk, generator sampling, and the 2-D evaluation rules of the papers.

- Mode coverage (Dist-GAN, after VEEGAN/DAN): a generated point *registers* with the nearest mode
  centre when it lies within `radius` of it; a mode is *covered* when at least `min_count` points
  register (2 000 samples, radius 0.1414, 20 points in the Dist-GAN paper).
- High-quality share (VEEGAN/PacGAN): the fraction of points within `k` standard deviations
  (k = 3) of the nearest centre.
- Reconstruction error (LOGAN-B): per-sample L1 sum |x - x_rec|, averaged over the points.
"""

import os

import numpy as np
import torch

from stylegan_plus.data import toy_data
from stylegan_plus.sampling import prior as prior_lib

PRIORS = ('gaussian', 'normal', 'uniform')     # gaussian: the older name of normal


def write_toy_set(path, kind, std, points_per_mode, seed=0):
    """Write a toy set (`ring8`/`grid25`) as .npy (atomically) unless an identical file exists; returns the path."""
    points, _modes = toy_data.make_toy_points(kind, std, points_per_mode, seed=seed)
    return write_points(path, points)


class UnitBox:
    """Dist-GAN's 2-D data scaling: x -> (x / maxabs + 1) / 2 puts a set symmetric about 0 into [0, 1].

    maxabs = the largest |coordinate| of the set (4.18 for the authors' 25-Gaussian grid). Distances
    shrink by 2 * maxabs; `to_data` undoes the map, so samples are scored in the data's own units.
    """

    def __init__(self, points):
        self.maxabs = float(np.abs(points).max())

    def to_unit(self, points):
        """float32 [N, 2] data units -> [0, 1]."""
        return ((points / self.maxabs + 1) / 2).astype(np.float32)

    def to_data(self, points):
        """float32 [N, 2] in the unit box -> data units."""
        return ((points * 2 - 1) * self.maxabs).astype(np.float32)


def write_points(path, points):
    """Write float32 points [N, 2] as .npy (atomically) unless an identical file exists; returns the path."""
    if os.path.isfile(path):
        try:
            if np.array_equal(np.load(path), points):
                return path
        except (OSError, ValueError):
            pass
    toy_data.write_points(path, points)
    return path


def draw_prior(n, z_dim, prior, generator):
    """z float32 [n, z_dim] from a torch.Generator: N(0, I) ('normal'/'gaussian') or U[-1, 1] ('uniform')."""
    if prior not in PRIORS:
        raise ValueError(f'unknown prior {prior!r}; expected one of {", ".join(PRIORS)}')
    return prior_lib.draw_z(prior, n, z_dim, generator=generator)     # the project's one prior helper


def sample_prior(n, z_dim, prior, seed):
    """`draw_prior` from its own generator seeded with `seed`."""
    return draw_prior(n, z_dim, prior, torch.Generator().manual_seed(int(seed)))


@torch.no_grad()
def generate_points(G, z, chunk=65536):
    """G(z) for unconditional 2-D generators: z [N, z_dim] -> numpy float32 [N, 2]."""
    out = []
    for part in z.split(chunk):
        c = torch.zeros([part.shape[0], G.c_dim])
        out.append(G(part, c).reshape(part.shape[0], -1))
    return torch.cat(out).numpy().astype(np.float32)


def nearest_centres(points, centres):
    """(index int64 [N], distance float64 [N]) of each point's nearest centre."""
    points = np.asarray(points, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    dist = np.sqrt(((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    idx = dist.argmin(axis=1)
    return idx, dist[np.arange(len(points)), idx]


def mode_coverage(points, centres, radius, min_count):
    """Registered points per mode and the modes covered.

    Returns dict(modes_covered int, registered_points int, counts list[int] per centre,
    num_points int, radius, min_count).
    """
    idx, dist = nearest_centres(points, centres)
    inside = dist <= radius
    counts = np.bincount(idx[inside], minlength=len(centres))
    return dict(modes_covered=int((counts >= min_count).sum()), registered_points=int(inside.sum()),
                counts=[int(c) for c in counts], num_points=int(len(points)), radius=float(radius),
                min_count=int(min_count))


def per_mode_closeness(points, centres, radius, min_count):
    """How close the samples sit to the modes they reach, however few those modes are.

    Each point registers with its nearest centre when within `radius`; for every centre with at
    least `min_count` registered points, the median distance of those points; then the mean over
    such centres. Unlike the median over all points, packing every sample onto a few modes does not
    lower it. Returns dict(per_mode_median float (nan when no centre qualifies), modes int,
    medians list[float | None] per centre).
    """
    idx, dist = nearest_centres(points, centres)
    inside = dist <= radius
    medians = []
    for centre in range(len(centres)):
        mine = dist[inside & (idx == centre)]
        medians.append(float(np.median(mine)) if len(mine) >= min_count else None)
    kept = [m for m in medians if m is not None]
    return dict(per_mode_median=float(np.mean(kept)) if kept else float('nan'), modes=len(kept), medians=medians)


def high_quality(points, centres, std, k=3.0, min_share=0.01):
    """High-quality samples (within k*std of the nearest centre) and the modes they cover.

    A mode counts as covered when at least `min_share` of all samples are high-quality samples
    of it (the Dist-GAN threshold, 20 of 2 000, applied to the high-quality radius).
    Returns dict(hq_share float in [0, 1], hq_modes int, hq_counts list[int], k, std).
    """
    idx, dist = nearest_centres(points, centres)
    good = dist <= k * std
    counts = np.bincount(idx[good], minlength=len(centres))
    threshold = max(1, int(np.ceil(min_share * len(points))))
    return dict(hq_share=float(good.mean()), hq_modes=int((counts >= threshold).sum()),
                hq_counts=[int(c) for c in counts], k=float(k), std=float(std))


def l1_reconstruction_error(x, x_rec):
    """Mean over points of the per-point L1 sum |x - x_rec|: x, x_rec [N, 2] -> float."""
    diff = np.abs(np.asarray(x, dtype=np.float64) - np.asarray(x_rec, dtype=np.float64))
    return float(diff.reshape(len(diff), -1).sum(axis=1).mean())

