"""The abstract `Dataset`: which raw item each public index shows, mirroring, and labels.

A subclass supplies the raw items through two hooks, whose names custom datasets written for the
official `training.dataset.Dataset` already use:

- `_load_raw_image(raw_idx)` -> one raw item, an ndarray of shape `raw_shape[1:]`;
- `_load_raw_labels()` -> `None`, int64 class indices [N], or float32 label vectors [N, D].

Optionally `_raw_item_name(raw_idx)` names an item in error messages (e.g. its file).
"""

import numpy as np
import torch

import dnnlib

_WORKER_PREFIX = 'Caught DatasetError'


def _without_worker_traceback(text):
    """The original message of a DatasetError re-raised by a DataLoader worker.

    torch re-creates a worker's exception in the main process with the worker's whole traceback
    as the message; the user only needs the last line, which names the file.
    """
    marker = 'DatasetError: '
    if not text.startswith(_WORKER_PREFIX) or marker not in text:
        return text
    return text[text.rindex(marker) + len(marker):].strip()


class DatasetError(IOError):
    """A dataset that cannot be read as asked (bad path, bad files, bad labels).

    It is an IOError so that callers written for the official code (`except IOError`) treat it
    as a problem with the data rather than a crash. Raised again by torch after a DataLoader
    worker failed, it keeps only the worker's original message.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_without_worker_traceback(args[0]),)
        super().__init__(*args)


def subset_raw_indices(num_raw, max_size, seed):
    """Raw indices kept when a dataset is limited to `max_size` items: sorted int64 [min(N, max_size)].

    The draw is a permutation from `RandomState(seed)` cut to `max_size`, so a seed selects the
    same images as in the official trainer and FIDs on subsets stay comparable.
    """
    if max_size is None or max_size >= num_raw:
        return np.arange(num_raw, dtype=np.int64)
    chosen = np.random.RandomState(seed).permutation(num_raw)[:max_size]
    return np.sort(chosen).astype(np.int64)


def mirrored_layout(kept, xflip):
    """(raw index per item, flip flag per item) for the kept raw indices.

    With `xflip`, the mirrored copies follow all plain items, so item i and i + len(kept) show the
    same raw item. Returns int64 [M] and uint8 [M] with M = len(kept) * (2 if xflip else 1).
    """
    copies = 2 if xflip else 1
    raw = np.concatenate([kept] * copies)
    flags = np.repeat(np.arange(copies, dtype=np.uint8), kept.size)
    return raw, flags


class Dataset(torch.utils.data.Dataset):
    """Base of every dataset: public index -> (raw index, mirror flag), plus labels.

    Args:
        name:        short name used in run descriptions and metric cache files.
        raw_shape:   [num_raw_items, *item_shape], e.g. [N, C, H, W] for images.
        max_size:    keep a random subset of this many raw items (None = all of them).
        use_labels:  read labels through `_load_raw_labels()`; otherwise every label is empty.
        xflip:       add a horizontally mirrored copy of every item (twice the length).
        random_seed: seed of the subset drawn for `max_size`.
    """

    # Rebuilt on demand after unpickling (DataLoader workers): caches and open file handles.
    _transient_attrs = ('_labels_cache', '_label_dims')

    def __init__(self, name, raw_shape, max_size=None, use_labels=False, xflip=False, random_seed=0):
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._labels_cache = None
        self._label_dims = None
        self._raw_idx, self._xflip = mirrored_layout(
            subset_raw_indices(self._raw_shape[0], max_size, random_seed), xflip)

    # ---- hooks for subclasses ------------------------------------------------------------------

    def _load_raw_image(self, raw_idx):
        raise NotImplementedError

    def _load_raw_labels(self):
        raise NotImplementedError

    def _raw_item_name(self, raw_idx):
        return f'item {raw_idx}'

    def close(self):
        """Release open file handles; the next access opens them again."""

    # ---- labels --------------------------------------------------------------------------------

    def _labels(self):
        """All raw labels, read once: int64 [N] or float32 [N, D] (D = 0 without labels)."""
        if self._labels_cache is None:
            loaded = self._load_raw_labels() if self._use_labels else None
            if loaded is None:
                loaded = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            self._check_labels(loaded)
            self._labels_cache = loaded
            # Derived once: get_label runs per sample, a max() over all labels each time would not do.
            if loaded.dtype == np.int64:
                self._label_dims = [int(loaded.max()) + 1] if loaded.size else [0]
            else:
                self._label_dims = list(loaded.shape[1:])
        return self._labels_cache

    def _check_labels(self, labels):
        count = self._raw_shape[0]
        if not isinstance(labels, np.ndarray) or labels.shape[:1] != (count,):
            found = getattr(labels, 'shape', type(labels).__name__)
            raise DatasetError(f'{self._name}: need one label for each of the {count} items, got {found}')
        if labels.dtype == np.int64:
            if labels.ndim != 1 or np.any(labels < 0):
                raise DatasetError(f'{self._name}: class labels must be a 1-D array of non-negative ints')
        elif labels.dtype != np.float32:
            raise DatasetError(f'{self._name}: labels must be int64 class indices or float32 vectors, '
                               f'got {labels.dtype}')

    def get_label(self, idx):
        """Label of item `idx`: float32 [label_dim]; a class index comes back one-hot."""
        value = self._labels()[self._raw_idx[idx]]
        if self.has_onehot_labels:
            return (np.arange(self.label_dim) == value).astype(np.float32)
        return np.array(value, dtype=np.float32)

    def get_details(self, idx):
        """EasyDict(raw_idx=int, xflip=bool, raw_label=ndarray copy) of item `idx`."""
        source = int(self._raw_idx[idx])
        return dnnlib.EasyDict(raw_idx=source, xflip=bool(self._xflip[idx]),
                               raw_label=self._labels()[source].copy())

    # ---- torch Dataset protocol ----------------------------------------------------------------

    def __len__(self):
        return int(self._raw_idx.size)

    def __getitem__(self, idx):
        """(image uint8 [C, H, W], mirrored for flipped copies; label float32 [label_dim])."""
        source = int(self._raw_idx[idx])
        item = self._load_raw_image(source)
        self._check_item(source, item)
        if self._xflip[idx]:
            item = item[..., ::-1]
        return item.copy(), self.get_label(idx)

    def _check_item(self, raw_idx, item):
        shape = list(getattr(item, 'shape', []))
        if isinstance(item, np.ndarray) and item.dtype == np.uint8 and shape == self.image_shape:
            return
        kind = getattr(item, 'dtype', type(item).__name__)
        raise DatasetError(f'{self._raw_item_name(raw_idx)} reads as {kind} {shape}, but the dataset holds '
                           f'uint8 {self.image_shape}')

    def __getstate__(self):
        state = vars(self).copy()
        for attr in self._transient_attrs:
            state.pop(attr, None)
        return state

    def __setstate__(self, state):
        vars(self).update(state)
        for attr in self._transient_attrs:
            setattr(self, attr, None)

    def __del__(self):
        try:
            self.close()
        except Exception:   # at interpreter exit, modules close() needs may be gone already
            pass

    # ---- properties ----------------------------------------------------------------------------

    @property
    def name(self):
        """Dataset name (str), e.g. the folder or zip name without extension."""
        return self._name

    @property
    def image_shape(self):
        """Shape of one item as a list, [C, H, W] for images."""
        return self._raw_shape[1:]

    @property
    def num_channels(self):
        """C of [C, H, W] items."""
        if len(self.image_shape) != 3:
            raise DatasetError(f'{self._name}: items of shape {self.image_shape} have no channel axis')
        return self.image_shape[0]

    @property
    def resolution(self):
        """Side length of the square images (H == W)."""
        if len(self.image_shape) != 3 or self.image_shape[1] != self.image_shape[2]:
            raise DatasetError(f'{self._name}: items of shape {self.image_shape} are not square images')
        return self.image_shape[2]

    @property
    def label_shape(self):
        """[label_dim]: number of classes (largest index + 1) for class labels, else the vector shape."""
        self._labels()
        return list(self._label_dims)

    @property
    def label_dim(self):
        """Length of a label vector (int); needs 1-D labels."""
        if len(self.label_shape) != 1:
            raise DatasetError(f'{self._name}: label_dim needs 1-D labels, got shape {self.label_shape}')
        return self.label_shape[0]

    @property
    def has_labels(self):
        """True if items carry a non-empty label."""
        return any(self.label_shape)

    @property
    def has_onehot_labels(self):
        """True for class-index labels (returned one-hot by `get_label`)."""
        return self._labels().dtype == np.int64
