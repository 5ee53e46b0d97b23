"""The abstract `Dataset`: index bookkeeping (subset, x-flip) and label handling.

Subclasses provide two hooks, named as in the official tree so that custom datasets written for
StyleGAN2-ADA keep working when subclassing `training.dataset.Dataset`:

- `_load_raw_image(raw_idx)` -> one raw sample (an ndarray of shape `raw_shape[1:]`),
- `_load_raw_labels()` -> `None`, an int64 array [N] of class indices, or a float32 array [N, D].
"""

import numpy as np
import torch

import dnnlib


class DatasetError(IOError):
    """A dataset that cannot be read as requested (bad path, bad files, bad labels).

    Subclasses IOError so that callers written for the official code (`except IOError`) report
    it as a user error rather than a crash.
    """


class Dataset(torch.utils.data.Dataset):
    """Base class of every dataset: maps a public index to (raw index, x-flip flag).

    Args:
        name:        short name used in run descriptions and metric cache keys.
        raw_shape:   [num_raw_items, *item_shape], e.g. [N, C, H, W] for images.
        max_size:    keep only a random subset of this many raw items (None = all).
        use_labels:  read labels with `_load_raw_labels()`; otherwise labels are empty.
        xflip:       append a mirrored copy of every item, doubling the length.
        random_seed: seed of the subset draw for `max_size`.
    """

    def __init__(self, name, raw_shape, max_size=None, use_labels=False, xflip=False, random_seed=0):
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._raw_labels = None     # loaded lazily: reading labels can be slow or fail
        self._label_shape = None

        # The subset draw is shuffle-then-truncate-then-sort so that the same seed picks the same
        # images as the official trainer (FID against a subset must stay comparable).
        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:
            np.random.RandomState(random_seed).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])

        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    # ---- hooks for subclasses ------------------------------------------------------------------

    def _load_raw_image(self, raw_idx):
        raise NotImplementedError

    def _load_raw_labels(self):
        raise NotImplementedError

    def close(self):
        """Release open file handles; the dataset reopens them on the next access."""

    # ---- labels --------------------------------------------------------------------------------

    def _get_raw_labels(self):
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            self._raw_labels = self._validate_labels(labels)
        return self._raw_labels

    def _validate_labels(self, labels):
        if not isinstance(labels, np.ndarray) or labels.shape[:1] != (self._raw_shape[0],):
            shape = getattr(labels, 'shape', type(labels).__name__)
            raise DatasetError(f'{self._name}: expected one label per item ({self._raw_shape[0]}), got {shape}')
        if labels.dtype == np.int64:
            if labels.ndim != 1 or (labels.size and labels.min() < 0):
                raise DatasetError(f'{self._name}: class labels must be a 1-D array of non-negative ints')
        elif labels.dtype != np.float32:
            raise DatasetError(f'{self._name}: labels must be int64 class indices or float32 vectors, '
                               f'got {labels.dtype}')
        return labels

    def get_label(self, idx):
        """Label of item `idx`: float32 [label_dim]; class indices are returned one-hot."""
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.copy()

    def get_details(self, idx):
        """EasyDict(raw_idx=int, xflip=bool, raw_label=ndarray) describing item `idx`."""
        raw_idx = int(self._raw_idx[idx])
        return dnnlib.EasyDict(
            raw_idx=raw_idx,
            xflip=bool(self._xflip[idx]),
            raw_label=self._get_raw_labels()[raw_idx].copy(),
        )

    # ---- torch Dataset protocol ----------------------------------------------------------------

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, idx):
        """(image, label): image uint8 [C, H, W] (mirrored for x-flip copies), label float32 [label_dim]."""
        image = self._load_raw_image(self._raw_idx[idx])
        if not isinstance(image, np.ndarray) or list(image.shape) != self.image_shape or image.dtype != np.uint8:
            found = f'{getattr(image, "dtype", type(image).__name__)} {list(getattr(image, "shape", []))}'
            raise DatasetError(f'{self._name}: item {int(self._raw_idx[idx])} is {found}, '
                               f'expected uint8 {self.image_shape} like the first item')
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def __getstate__(self):
        # Labels are cheap to reload; dropping them keeps DataLoader worker pickles small.
        return dict(self.__dict__, _raw_labels=None)

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown may have torn down modules already
            pass

    # ---- properties ----------------------------------------------------------------------------

    @property
    def name(self):
        return self._name

    @property
    def image_shape(self):
        return list(self._raw_shape[1:])

    @property
    def num_channels(self):
        if len(self.image_shape) != 3:
            raise DatasetError(f'{self._name}: items of shape {self.image_shape} have no channel axis')
        return self.image_shape[0]

    @property
    def resolution(self):
        shape = self.image_shape
        if len(shape) != 3 or shape[1] != shape[2]:
            raise DatasetError(f'{self._name}: items of shape {shape} are not square images')
        return shape[1]

    @property
    def label_shape(self):
        if self._label_shape is None:
            labels = self._get_raw_labels()
            if labels.dtype == np.int64:
                self._label_shape = [int(labels.max()) + 1 if labels.size else 0]
            else:
                self._label_shape = list(labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self):
        shape = self.label_shape
        if len(shape) != 1:
            raise DatasetError(f'{self._name}: label_dim needs 1-D labels, got shape {shape}')
        return shape[0]

    @property
    def has_labels(self):
        return any(size != 0 for size in self.label_shape)

    @property
    def has_onehot_labels(self):
        return self._get_raw_labels().dtype == np.int64
