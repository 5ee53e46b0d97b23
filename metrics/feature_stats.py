"""Detector features collected batch by batch, for every metric (re-exported by `metric_utils`).

A `FeatureStats` keeps the vectors themselves (KID, precision/recall, IS), running first and second
moments (FID), or both. Under several processes each one extracts a strided share of the items;
`append_torch` gathers every share, so all processes end up with identical statistics, in item order.
"""

import os
import pickle

import numpy as np
import torch

from stylegan_plus.io import atomic

# What `save` writes: the attribute dict, under these names, so cache files stay readable by
# code that expects the official FeatureStats pickle layout.
_STATE_KEYS = ('capture_all', 'capture_mean_cov', 'max_items', 'num_items', 'num_features', 'all_features',
               'raw_mean', 'raw_cov')


def all_gather_interleaved(x, num_gpus):
    """Every process's `x` [N, ...], merged back into item order: [N * num_gpus, ...].

    Process r holds items r, r + num_gpus, r + 2 * num_gpus, ...; row i of the result comes from
    process i % num_gpus. With a single process, `x` itself is returned.
    """
    if num_gpus == 1:
        return x
    shares = [torch.empty_like(x) for _ in range(num_gpus)]
    torch.distributed.all_gather(shares, x)
    return torch.stack(shares, dim=1).reshape(-1, *x.shape[1:])


def broadcast_flag(flag, num_gpus, device):
    """Rank 0's truth value of `flag`, on every process (a single process just gets bool(flag))."""
    if num_gpus == 1:
        return bool(flag)
    carrier = torch.full([], 1.0 if flag else 0.0, device=device)
    torch.distributed.broadcast(carrier, src=0)
    return carrier.item() != 0


class FeatureStats:
    """Accumulates feature vectors [N, F] (float32 in, float64 moments).

    capture_all:      keep every vector, see `get_all`.
    capture_mean_cov: keep sum(x) and sum(x x^T) in float64, see `get_mean_cov`.
    max_items:        accept at most this many vectors; later rows are ignored (None = no limit).
    """

    def __init__(self, capture_all=False, capture_mean_cov=False, max_items=None):
        # Storage appears with the first batch, once the feature dimension is known.
        self.num_features = None
        self.all_features = None    # list of float32 [n, F] blocks
        self.raw_mean = None        # float64 [F]: sum of the vectors
        self.raw_cov = None         # float64 [F, F]: sum of their outer products
        self.num_items = 0
        self.max_items = max_items
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov

    def set_num_features(self, num_features):
        """Fix the feature dimension F; the first call allocates the sums, later ones must agree."""
        if self.num_features is None:
            self.num_features = num_features
            self.all_features = []
            self.raw_mean = np.zeros(num_features, dtype=np.float64)
            self.raw_cov = np.zeros((num_features, num_features), dtype=np.float64)
        elif num_features != self.num_features:
            raise ValueError(f'feature dimension changed from {self.num_features} to {num_features}')

    def is_full(self):
        """True once max_items vectors were accepted (never without a limit)."""
        return self.max_items is not None and self.num_items >= self.max_items

    def _room(self):
        """How many more vectors fit (None = unlimited)."""
        return None if self.max_items is None else max(self.max_items - self.num_items, 0)

    def append(self, x):
        """Add a batch x: array-like [N, F]; rows beyond max_items are dropped."""
        batch = np.asarray(x, dtype=np.float32)
        if batch.ndim != 2:
            raise ValueError(f'features must be [N, F], got shape {list(batch.shape)}')
        room = self._room()
        if room is not None:
            batch = batch[:room]
        self.set_num_features(batch.shape[1])
        if not len(batch):
            return
        self.num_items += len(batch)
        if self.capture_all:
            self.all_features.append(batch)
        if self.capture_mean_cov:
            self._add_moments(batch.astype(np.float64))

    def _add_moments(self, rows):
        self.raw_mean += np.sum(rows, axis=0)
        self.raw_cov += np.matmul(rows.T, rows)

    def append_torch(self, x, num_gpus=1, rank=0):
        """Add a batch given as a tensor [N, F]; with num_gpus > 1 every process's batch is added.

        rank: part of the official signature; the gather does not need it.
        """
        del rank
        if x.ndim != 2:
            raise ValueError(f'features must be [N, F], got shape {list(x.shape)}')
        self.append(all_gather_interleaved(x, num_gpus).detach().float().cpu().numpy())

    def get_all(self):
        """Every accepted vector: float32 [num_items, F] (needs capture_all)."""
        if not self.capture_all:
            raise RuntimeError('get_all needs a FeatureStats created with capture_all=True')
        if not self.all_features:
            return np.zeros((0, self.num_features or 0), dtype=np.float32)
        return np.concatenate(self.all_features)

    def get_all_torch(self):
        """`get_all()` as a CPU float32 tensor [num_items, F]."""
        return torch.from_numpy(self.get_all())

    def get_mean_cov(self):
        """(mean float64 [F], covariance float64 [F, F]), normalised by N, not N - 1 (needs capture_mean_cov)."""
        if not self.capture_mean_cov:
            raise RuntimeError('get_mean_cov needs a FeatureStats created with capture_mean_cov=True')
        if not self.num_items:
            raise RuntimeError('get_mean_cov: no features were collected')
        mean = self.raw_mean / self.num_items
        second_moment = self.raw_cov / self.num_items
        return mean, second_moment - np.outer(mean, mean)

    def save(self, pkl_file):
        """Pickle the statistics (a plain dict of the attributes) to `pkl_file`, atomically."""
        state = {key: getattr(self, key) for key in _STATE_KEYS}
        atomic.write_atomic(pkl_file, lambda f: pickle.dump(state, f))

    @staticmethod
    def load(pkl_file):
        """A FeatureStats from a file written by `save` (or by the official code)."""
        with open(pkl_file, 'rb') as f:
            state = pickle.load(f)
        if not isinstance(state, dict) or not set(_STATE_KEYS) <= set(state):
            raise ValueError(f'{os.fspath(pkl_file)}: not a saved FeatureStats')
        stats = FeatureStats()
        vars(stats).update(state)
        return stats
