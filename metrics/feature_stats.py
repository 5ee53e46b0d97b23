"""Running statistics of detector features, shared across processes (re-exported by `metric_utils`).

`FeatureStats` keeps either every feature vector (KID, precision/recall, IS) or only the running
sums needed for a mean and covariance (FID), or both. With several processes, each one extracts a
strided share of the items and `append_torch` all-gathers them so that every process holds the
same statistics in the same item order.
"""

import pickle

import numpy as np
import torch

import dnnlib


def all_gather_interleaved(x, num_gpus):
    """All-gather `x` [N, ...] from every process and interleave the rows.

    Process r holds items r, r + num_gpus, r + 2*num_gpus, ...; the result [N*num_gpus, ...] puts
    them back in item order. With num_gpus == 1, `x` is returned unchanged.
    """
    if num_gpus == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(num_gpus)]
    torch.distributed.all_gather(parts, x)
    return torch.stack(parts, dim=1).flatten(0, 1)


def broadcast_flag(flag, num_gpus, device):
    """Rank 0's boolean `flag` on every process (num_gpus == 1: `flag` itself)."""
    if num_gpus == 1:
        return bool(flag)
    value = torch.as_tensor(float(flag), dtype=torch.float32, device=device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


class FeatureStats:
    """Collects feature vectors [N, F] batch by batch.

    capture_all:      keep every vector (float32), see `get_all`.
    capture_mean_cov: keep float64 sums for `get_mean_cov`.
    max_items:        stop accepting items after this many (None = unlimited).
    """

    def __init__(self, capture_all=False, capture_mean_cov=False, max_items=None):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features = None
        self.all_features = None
        self.raw_mean = None
        self.raw_cov = None

    def set_num_features(self, num_features):
        """Fix the feature dimension on first use; a later mismatch is an error."""
        if self.num_features is not None:
            if num_features != self.num_features:
                raise ValueError(f'feature dimension changed from {self.num_features} to {num_features}')
            return
        self.num_features = num_features
        self.all_features = []
        self.raw_mean = np.zeros([num_features], dtype=np.float64)
        self.raw_cov = np.zeros([num_features, num_features], dtype=np.float64)

    def is_full(self):
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x):
        """Add a batch of feature vectors, x: numpy [N, F] (rows beyond max_items are dropped)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f'features must be [N, F], got shape {list(x.shape)}')
        if self.max_items is not None:
            x = x[:max(self.max_items - self.num_items, 0)]
        self.set_num_features(x.shape[1])
        if x.shape[0] == 0:
            return
        self.num_items += x.shape[0]
        if self.capture_all:
            self.all_features.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self.raw_mean += x64.sum(axis=0)
            self.raw_cov += x64.T @ x64

    def append_torch(self, x, num_gpus=1, rank=0):
        """Add a batch given as a tensor [N, F]; with num_gpus > 1, every process's batch is gathered.

        `rank` is accepted for the official call signature; gathering does not depend on it.
        """
        del rank
        if x.ndim != 2:
            raise ValueError(f'features must be [N, F], got shape {list(x.shape)}')
        self.append(all_gather_interleaved(x, num_gpus).detach().float().cpu().numpy())

    def get_all(self):
        """Every captured vector: float32 [num_items, F] (needs capture_all)."""
        if not self.capture_all:
            raise RuntimeError('FeatureStats was created with capture_all=False')
        if not self.all_features:
            return np.zeros([0, self.num_features or 0], dtype=np.float32)
        return np.concatenate(self.all_features, axis=0)

    def get_all_torch(self):
        return torch.from_numpy(self.get_all())

    def get_mean_cov(self):
        """(mean float64 [F], covariance float64 [F, F]) with 1/N normalisation (needs capture_mean_cov)."""
        if not self.capture_mean_cov:
            raise RuntimeError('FeatureStats was created with capture_mean_cov=False')
        if self.num_items == 0:
            raise RuntimeError('no features were collected')
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items - np.outer(mean, mean)
        return mean, cov

    def save(self, pkl_file):
        with open(pkl_file, 'wb') as f:
            pickle.dump(dict(self.__dict__), f)

    @staticmethod
    def load(pkl_file):
        with open(pkl_file, 'rb') as f:
            state = dnnlib.EasyDict(pickle.load(f))
        stats = FeatureStats(capture_all=state.capture_all, max_items=state.max_items)
        stats.__dict__.update(state)
        return stats
