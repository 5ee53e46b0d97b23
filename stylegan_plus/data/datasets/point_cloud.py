"""`PointCloudDataset`: 2-D points from a `.npy`/`.npz` file, for the toy-distribution experiments.

It keeps the image datasets' interface so the same loaders and samplers work: an item is
(point float32 [2], label float32 [0]). A point has no spatial extent: `image_shape` is [2],
`num_channels` is 2 and `resolution` is 1, i.e. a point reads as a 1x1 image with two channels
for code that wants NCHW (`points.reshape(N, 2, 1, 1)`).
"""

import os

import numpy as np

from .base import Dataset, DatasetError

POINT_DIM = 2


def load_points(path):
    """Read points from `.npy` or `.npz` (key `x`, or the only array) -> float32 [N, 2].

    Raises DatasetError naming the file for a missing file, an ambiguous `.npz`, a shape other
    than [N, 2] with N >= 1, a non-float dtype, or non-finite values.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in ('.npy', '.npz') or not os.path.isfile(path):
        raise DatasetError(f'{path}: point dataset must be an existing .npy or .npz file')
    try:
        if ext == '.npz':
            with np.load(path, allow_pickle=False) as archive:
                points = _pick_array(archive, path)
        else:
            points = np.load(path, allow_pickle=False)
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError) as err:   # object arrays, truncated or foreign files
        raise DatasetError(f'{path}: cannot read points ({err})') from None
    if points.ndim != 2 or points.shape[1] != POINT_DIM or points.shape[0] == 0:
        raise DatasetError(f'{path}: points must have shape [N, {POINT_DIM}], found {list(points.shape)}')
    if not np.issubdtype(points.dtype, np.floating):
        raise DatasetError(f'{path}: points must be floating point, found dtype {points.dtype}')
    points = points.astype(np.float32)
    if not np.all(np.isfinite(points)):
        raise DatasetError(f'{path}: points contain NaN or infinite values')
    return points


def _pick_array(npz, path):
    if 'x' in npz.files:
        return npz['x']
    if len(npz.files) == 1:
        return npz[npz.files[0]]
    raise DatasetError(f'{path}: .npz holds {sorted(npz.files)}; name the points array "x"')


class PointCloudDataset(Dataset):
    """Points [N, 2] from `path`, with the `Dataset` subset/x-flip options.

    Args:
        path:        `.npy` or `.npz` file (see `load_points`).
        xflip:       append a copy of every point with its x coordinate negated.
        **super_kwargs: `max_size`, `random_seed`, `use_labels` (points carry no labels).
    Items are (float32 [2], float32 [0]).
    """

    def __init__(self, path, resolution=None, **super_kwargs):
        # `resolution` is accepted (and ignored) so generic code passing dataset kwargs works.
        del resolution
        self._path = path
        self._points = load_points(path)
        name = os.path.splitext(os.path.basename(path))[0]
        super().__init__(name=name, raw_shape=self._points.shape, **super_kwargs)

    def _load_raw_image(self, raw_idx):
        return self._points[raw_idx]

    def _load_raw_labels(self):
        return None

    def __getitem__(self, idx):
        """(point, label): point float32 [2] (x negated for x-flip copies), label float32 [0]."""
        point = self._points[self._raw_idx[idx]].copy()
        if self._xflip[idx]:
            point[0] = -point[0]
        return point, self.get_label(idx)

    @property
    def points(self):
        """Every point of the dataset, in index order (x-flip copies mirrored): float32 [len, 2]."""
        points = self._points[self._raw_idx].copy()
        points[self._xflip.astype(bool), 0] *= -1
        return points

    @property
    def num_channels(self):
        return POINT_DIM

    @property
    def resolution(self):
        return 1
