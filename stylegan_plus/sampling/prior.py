"""The latent prior of a run, `--z-dist`: one helper for every place that draws z.

A run's generator is trained on one latent distribution, and every later use of it (the loop's
fakes, a plugin's own prior draws, generate.py, style_mixing.py, the metrics, the benchmarks)
must draw from that same one, or it samples latents G never saw. The name travels with the run:
`z_dist` in training_options.json (written only when it is not the official `normal`) and in
every network snapshot (`snapshot['z_dist']`; an official pickle has none, which means normal).

Names: `normal` = N(0, I) (the official prior), `uniform` = U[-1, 1] per coordinate (the
Dist-GAN and LOGAN-B papers' 2-D experiments). `gaussian`, the name older plugin options used,
is read as `normal`.

Draws keep the official random streams: `normal` is exactly `torch.randn` / `RandomState.randn`
with the same shapes, so runs and images without `--z-dist` are bit-identical to before.
"""

import numpy as np
import torch

Z_DISTS = ('normal', 'uniform')
DEFAULT_Z_DIST = 'normal'
SNAPSHOT_KEY = 'z_dist'                 # the snapshot dict entry that records the prior
_ALIASES = {'gaussian': 'normal'}       # spelling of the retired --dist-prior / --loganb-prior


def canonical_z_dist(name):
    """The canonical prior name ('normal' or 'uniform') of `name`; None means normal.

    Raises ValueError naming the value and the accepted names.
    """
    if name is None:
        return DEFAULT_Z_DIST
    name = _ALIASES.get(name, name)
    if name not in Z_DISTS:
        raise ValueError(f'unknown latent distribution {name!r}; accepted: {", ".join(Z_DISTS)}')
    return name


def draw_z(z_dist, n, z_dim, device='cpu', generator=None):
    """n latents from the prior: float32 tensor [n, z_dim] on `device`.

    generator: a torch.Generator, or None for torch's global stream (the loop's seeded draws).
    """
    shape = [int(n), int(z_dim)]
    if canonical_z_dist(z_dist) == 'uniform':
        # rand in [0, 1) mapped affinely onto [-1, 1): one draw per coordinate, like randn.
        return torch.rand(shape, device=device, generator=generator).mul_(2).sub_(1)
    return torch.randn(shape, device=device, generator=generator)


def draw_z_like(z_dist, z):
    """A fresh prior draw with the shape, dtype and device of `z` (e.g. style mixing's second latent)."""
    if canonical_z_dist(z_dist) == 'uniform':
        return torch.rand_like(z).mul_(2).sub_(1)
    return torch.randn_like(z)


def draw_z_numpy(z_dist, rnd, n, z_dim):
    """n latents from a numpy RandomState: float64 array [n, z_dim] (generate.py's per-seed draws).

    normal is `rnd.randn(n, z_dim)`, the official per-seed latent, so old seeds give old images.
    """
    if canonical_z_dist(z_dist) == 'uniform':
        return rnd.uniform(-1.0, 1.0, size=(int(n), int(z_dim)))
    return rnd.randn(int(n), int(z_dim))


def z_for_seed(z_dist, seed, z_dim):
    """The latent of one generate.py seed: float64 [1, z_dim] from RandomState(seed)."""
    return draw_z_numpy(z_dist, np.random.RandomState(seed), 1, z_dim)


def snapshot_z_dist(data):
    """The prior recorded in a loaded snapshot dict: 'normal' when the key is absent (official pickles).

    Raises ValueError for an unknown recorded name (a damaged or foreign file).
    """
    recorded = data.get(SNAPSHOT_KEY) if isinstance(data, dict) else None
    try:
        return canonical_z_dist(recorded)
    except ValueError as err:
        raise ValueError(f'the snapshot records {SNAPSHOT_KEY}={recorded!r}: {err}') from None
