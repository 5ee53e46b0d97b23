"""Standard 2-D toy distributions (mixtures of isotropic Gaussians) for mode-coverage benchmarks.

- `ring8`:  8 modes evenly spaced on a circle of radius 2, the first at (2, 0).
- `grid25`: 25 modes at (2i, 2j) for i, j in -2..2.

Points are written as `.npy` float32 [N, 2], the format `PointCloudDataset` reads.
"""

import os

import numpy as np

from stylegan_plus.io import atomic

TOY_KINDS = ('ring8', 'grid25')


def ring_centers(num_modes=8, radius=2.0):
    """Mode centres on a circle: float64 [num_modes, 2], angle 2*pi*k/num_modes."""
    angles = 2 * np.pi * np.arange(num_modes) / num_modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centers(half_width=2, spacing=2.0):
    """Mode centres on a square grid: float64 [(2*half_width+1)**2, 2], rows of fixed x."""
    steps = spacing * np.arange(-half_width, half_width + 1)
    xs, ys = np.meshgrid(steps, steps, indexing='ij')
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def toy_centers(kind):
    """Mode centres of a named toy set ('ring8' or 'grid25'): float64 [num_modes, 2]."""
    if kind == 'ring8':
        return ring_centers()
    if kind == 'grid25':
        return grid_centers()
    raise ValueError(f'unknown toy set {kind!r}; choose one of {", ".join(TOY_KINDS)}')


def sample_mixture(centers, std, points_per_mode, seed=0, shuffle=True):
    """Draw `points_per_mode` points around each centre with per-coordinate std `std`.

    Args:
        centers: [M, 2] mode centres.
        std: standard deviation of every coordinate (> 0).
        points_per_mode: points drawn per mode (>= 1).
        seed: seed of the numpy RandomState used for noise and shuffling.
        shuffle: mix the modes (otherwise points come mode by mode).
    Returns:
        points float32 [M * points_per_mode, 2], modes int64 [M * points_per_mode] (centre index).
    """
    if std <= 0 or points_per_mode < 1:
        raise ValueError(f'need std > 0 and points_per_mode >= 1, got std={std}, points_per_mode={points_per_mode}')
    centers = np.asarray(centers, dtype=np.float64)
    rng = np.random.RandomState(seed)
    modes = np.repeat(np.arange(len(centers), dtype=np.int64), points_per_mode)
    points = centers[modes] + std * rng.randn(len(modes), 2)
    if shuffle:
        order = rng.permutation(len(modes))
        points, modes = points[order], modes[order]
    return points.astype(np.float32), modes


def make_toy_points(kind, std, points_per_mode, seed=0):
    """Points of a named toy set: (float32 [N, 2], int64 [N] mode index)."""
    return sample_mixture(toy_centers(kind), std, points_per_mode, seed=seed)


def write_points(path, points):
    """Write points [N, 2] to `path` exactly (.npy format; atomically, its folder made, nothing
    appended to the name)."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    atomic.write_atomic(path, lambda f: np.save(f, points))


def save_toy_points(path, kind, std, points_per_mode, seed=0):
    """Write a named toy set to `path` (`write_points`, float32 [N, 2]); returns the points."""
    points, _modes = make_toy_points(kind, std, points_per_mode, seed=seed)
    write_points(path, points)
    return points
