"""ImageFolderDataset (folder and zip), the Dataset index logic, PointCloudDataset and toy data."""

import json
import os
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

import dnnlib
from stylegan_plus.data import toy_data
from training.dataset import Dataset, DatasetError, ImageFolderDataset, PointCloudDataset

RES = 8


def _image(seed, channels=3, res=RES):
    rng = np.random.RandomState(seed)
    shape = (res, res, channels) if channels > 1 else (res, res)
    return rng.randint(0, 256, size=shape, dtype=np.uint8)


def _write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array).save(path)


# Deliberately not in sorted order on disk, with a nested folder and a non-image file.
NAMES = ['b.png', 'a.png', 'sub/c.png', 'sub/deeper/d.png', 'a2.png']
SORTED = sorted(NAMES)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'myset'
    for i, name in enumerate(NAMES):
        _write_png(str(root / name), _image(i))
    (root / 'notes.txt').write_text('not an image')
    return root


def _expected(name):
    return _image(NAMES.index(name)).transpose(2, 0, 1)


def _write_labels(root, labels):
    (root / 'dataset.json').write_text(json.dumps({'labels': labels}))


def _zip_folder(root, zip_path):
    with zipfile.ZipFile(zip_path, 'w') as zf:
        for dirpath, _dirs, files in os.walk(root):
            for fname in files:
                full = os.path.join(dirpath, fname)
                zf.write(full, os.path.relpath(full, root).replace(os.sep, '/'))
    return zip_path


@pytest.fixture(params=['dir', 'zip'])
def source(request, folder, tmp_path):
    """Path of the same data set as a folder or as a zip (made after labels are written)."""
    def make(labels='absent'):
        if labels != 'absent':
            _write_labels(folder, labels)
        if request.param == 'dir':
            return str(folder)
        return _zip_folder(folder, str(tmp_path / 'myset.zip'))
    return make


def test_order_shape_and_name(source):
    ds = ImageFolderDataset(source())
    assert ds.name == 'myset'
    assert len(ds) == len(NAMES)
    assert ds.image_shape == [3, RES, RES] and ds.num_channels == 3 and ds.resolution == RES
    for idx, name in enumerate(SORTED):
        image, label = ds[idx]
        assert image.dtype == np.uint8 and image.shape == (3, RES, RES)
        np.testing.assert_array_equal(image, _expected(name))
        assert label.dtype == np.float32 and label.shape == (0,)
    assert not ds.has_labels and ds.label_dim == 0
    ds.close()


def test_grayscale_gets_one_channel(tmp_path):
    _write_png(str(tmp_path / 'g' / 'x.png'), _image(0, channels=1))
    ds = ImageFolderDataset(str(tmp_path / 'g'))
    image, _ = ds[0]
    assert ds.num_channels == 1 and image.shape == (1, RES, RES)
    np.testing.assert_array_equal(image[0], _image(0, channels=1))


def test_int_labels_one_hot(source):
    classes = {name: i % 3 for i, name in enumerate(NAMES)}
    ds = ImageFolderDataset(source([[n, c] for n, c in classes.items()]), use_labels=True)
    assert ds.has_labels and ds.has_onehot_labels
    assert ds.label_shape == [3] and ds.label_dim == 3
    for idx, name in enumerate(SORTED):
        label = ds.get_label(idx)
        assert label.dtype == np.float32
        np.testing.assert_array_equal(label, np.eye(3, dtype=np.float32)[classes[name]])
        assert ds.get_details(idx).raw_label == classes[name]
    # Without use_labels, the same files give an unconditional data set.
    assert not ImageFolderDataset(source(), use_labels=False).has_labels


def test_vector_labels(source):
    vectors = {name: [float(i), -0.5 * i] for i, name in enumerate(NAMES)}
    ds = ImageFolderDataset(source([[n, v] for n, v in vectors.items()]), use_labels=True)
    assert ds.has_labels and not ds.has_onehot_labels and ds.label_shape == [2]
    for idx, name in enumerate(SORTED):
        np.testing.assert_array_equal(ds[idx][1], np.array(vectors[name], dtype=np.float32))


def test_null_labels(source):
    ds = ImageFolderDataset(source(None), use_labels=True)
    assert not ds.has_labels and ds.label_shape == [0]


def test_missing_label_names_the_file(source):
    labels = [[n, 0] for n in NAMES if n != 'sub/c.png']
    ds = ImageFolderDataset(source(labels), use_labels=True)
    with pytest.raises(DatasetError, match=r"dataset\.json.*'sub/c\.png'"):
        ds.get_label(0)


def test_max_size_subset_is_seeded_and_sorted(source):
    path = source()
    picks = {seed: [ImageFolderDataset(path, max_size=3, random_seed=seed).get_details(i).raw_idx for i in range(3)]
             for seed in range(6)}
    for seed, raw in picks.items():
        assert raw == sorted(raw) and len(set(raw)) == 3
        again = ImageFolderDataset(path, max_size=3, random_seed=seed)
        assert [again.get_details(i).raw_idx for i in range(3)] == raw
    assert len({tuple(v) for v in picks.values()}) > 1   # the seed matters
    # Same draw as the reference procedure: shuffle with RandomState(seed), take the head, sort.
    ref = np.arange(len(NAMES))
    np.random.RandomState(4).shuffle(ref)
    assert picks[4] == sorted(ref[:3].tolist())
    assert len(ImageFolderDataset(path, max_size=100)) == len(NAMES)


def test_xflip_doubles_and_mirrors(source):
    ds = ImageFolderDataset(source(), xflip=True)
    n = len(NAMES)
    assert len(ds) == 2 * n
    for idx in range(n):
        plain, mirrored = ds[idx][0], ds[idx + n][0]
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
        details = ds.get_details(idx + n)
        assert isinstance(details, dnnlib.EasyDict)
        assert details.raw_idx == idx and details.xflip is True
        assert ds.get_details(idx).xflip is False


def test_pickle_round_trip_reopens_zip(source):
    ds = ImageFolderDataset(source([[n, 1] for n in NAMES]), use_labels=True, xflip=True)
    first = ds[3]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zipfile is None
    np.testing.assert_array_equal(clone[3][0], first[0])
    np.testing.assert_array_equal(clone[3][1], first[1])
    ds.close()
    np.testing.assert_array_equal(ds[3][0], first[0])   # reopens after close()


def test_dataloader_with_workers(source):
    ds = ImageFolderDataset(source())
    loader = torch.utils.data.DataLoader(ds, batch_size=len(ds), num_workers=1)
    images, labels = next(iter(loader))
    assert images.dtype == torch.uint8 and list(images.shape) == [len(NAMES), 3, RES, RES]
    np.testing.assert_array_equal(images[0].numpy(), _expected(SORTED[0]))


def test_resolution_mismatch_error(source):
    with pytest.raises(DatasetError, match=r'8x8.*resolution 16x16'):
        ImageFolderDataset(source(), resolution=16)
    assert ImageFolderDataset(source(), resolution=RES).resolution == RES


def test_bad_inputs(tmp_path):
    _write_png(str(tmp_path / 'rect' / 'x.png'), np.zeros((4, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match=r'square.*8x4'):
        ImageFolderDataset(str(tmp_path / 'rect'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no image files'):
        ImageFolderDataset(str(tmp_path / 'empty'))
    with pytest.raises(DatasetError, match='missing.zip'):
        ImageFolderDataset(str(tmp_path / 'missing.zip'))
    (tmp_path / 'odd').mkdir()
    _write_png(str(tmp_path / 'odd' / 'a.png'), _image(0))
    _write_png(str(tmp_path / 'odd' / 'b.png'), _image(1, res=4))
    # One file of each size: the first one decides, and the other is named when the dataset opens.
    with pytest.raises(DatasetError, match=r'1 of 2 image files.*\n  b\.png: size 4x4, expected 8x8'):
        ImageFolderDataset(str(tmp_path / 'odd'))
    ds = ImageFolderDataset(str(tmp_path / 'odd'), skip_bad=True)
    # A file replaced after the check: the item is named by its file, not by its index.
    _write_png(str(tmp_path / 'odd' / 'a.png'), _image(1, res=4))
    with pytest.raises(DatasetError, match=r'odd/a\.png reads as uint8 \[3, 4, 4\].*uint8 \[3, 8, 8\]'):
        ds[0]


class _InMemory(Dataset):
    """N random 1x2x2 images with class labels i % 3, for the index bookkeeping of `Dataset`."""

    def __init__(self, num, **kwargs):
        self.images = np.random.RandomState(5).randint(0, 256, size=(num, 1, 2, 2)).astype(np.uint8)
        super().__init__(name='mem', raw_shape=self.images.shape, **kwargs)

    def _load_raw_image(self, raw_idx):
        return self.images[raw_idx]

    def _load_raw_labels(self):
        return np.arange(len(self.images), dtype=np.int64) % 3


# Recorded from the code before the rewrite of base.py (issue 14): (num, max_size, xflip, seed) ->
# raw index of every item; mirrored copies are the second half when xflip is on.
_BASELINE_LAYOUT = {
    (10, None, False, 0): list(range(10)),
    (10, 4, False, 0): [2, 4, 8, 9],
    (10, 4, True, 7): [0, 2, 5, 8],
    (10, 10, True, 3): list(range(10)),
    (10, 11, False, 1): list(range(10)),
    (37, 9, True, 123): [5, 6, 8, 11, 12, 13, 23, 31, 32],
    (37, 1, False, 2**31): [32],
}


@pytest.mark.parametrize('case', list(_BASELINE_LAYOUT))
def test_index_layout_matches_baseline(case):
    num, max_size, xflip, seed = case
    ds = _InMemory(num, max_size=max_size, xflip=xflip, random_seed=seed, use_labels=True)
    kept = _BASELINE_LAYOUT[case]
    copies = 2 if xflip else 1
    assert len(ds) == copies * len(kept)
    assert [ds.get_details(i).raw_idx for i in range(len(ds))] == kept * copies
    assert [ds.get_details(i).xflip for i in range(len(ds))] == [False] * len(kept) + [True] * (len(ds) - len(kept))
    assert ds.label_shape == [3] and ds.has_labels and ds.has_onehot_labels
    for idx in range(len(ds)):
        image, label = ds[idx]
        raw = ds.images[ds.get_details(idx).raw_idx]
        np.testing.assert_array_equal(image, raw[:, :, ::-1] if ds.get_details(idx).xflip else raw)
        assert image.flags.c_contiguous and image is not raw
        np.testing.assert_array_equal(label, np.eye(3, dtype=np.float32)[ds.get_details(idx).raw_idx % 3])
        assert ds.get_details(idx).raw_label == ds.get_details(idx).raw_idx % 3


def test_pickled_dataset_drops_caches_and_rebuilds_them():
    ds = _InMemory(6, use_labels=True, xflip=True)
    before = [ds.get_label(i) for i in range(len(ds))]
    state = ds.__getstate__()
    assert '_labels_cache' not in state and '_raw_idx' in state
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._labels_cache is None
    np.testing.assert_array_equal(np.stack([clone.get_label(i) for i in range(len(ds))]), np.stack(before))


def test_label_checks_name_the_dataset():
    class Bad(_InMemory):
        def _load_raw_labels(self):
            return np.zeros(3, dtype=np.int32)
    with pytest.raises(DatasetError, match=r'mem: labels must be int64.*int32'):
        Bad(3, use_labels=True).get_label(0)
    with pytest.raises(DatasetError, match=r'mem: need one label for each of the 4 items'):
        Bad(4, use_labels=True).get_label(0)


def test_class_name_lookup(source):
    ds = dnnlib.util.construct_class_by_name(class_name='training.dataset.ImageFolderDataset', path=source())
    assert isinstance(ds, ImageFolderDataset) and isinstance(ds, Dataset)


# ---- point clouds ------------------------------------------------------------------------------

def test_point_cloud_npy_and_npz(tmp_path):
    points = np.random.RandomState(0).randn(10, 2)
    np.save(tmp_path / 'pts.npy', points)
    np.savez(tmp_path / 'named.npz', x=points, extra=np.zeros(3))
    np.savez(tmp_path / 'single.npz', points)
    for fname in ['pts.npy', 'named.npz', 'single.npz']:
        ds = PointCloudDataset(str(tmp_path / fname))
        assert ds.name == os.path.splitext(fname)[0] and len(ds) == 10
        point, label = ds[3]
        assert point.dtype == np.float32 and point.shape == (2,)
        np.testing.assert_allclose(point, points[3], rtol=1e-6)
        assert label.shape == (0,) and ds.label_dim == 0 and not ds.has_labels
        assert ds.image_shape == [2] and ds.num_channels == 2 and ds.resolution == 1


def test_point_cloud_subset_and_xflip(tmp_path):
    points = np.arange(20, dtype=np.float32).reshape(10, 2) + 1
    np.save(tmp_path / 'p.npy', points)
    ds = PointCloudDataset(str(tmp_path / 'p.npy'), max_size=4, xflip=True, random_seed=1)
    assert len(ds) == 8
    for idx in range(4):
        raw = ds.get_details(idx).raw_idx
        np.testing.assert_array_equal(ds[idx][0], points[raw])
        np.testing.assert_array_equal(ds[idx + 4][0], points[raw] * [-1, 1])
    np.testing.assert_array_equal(ds.points, np.stack([ds[i][0] for i in range(len(ds))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    assert list(next(iter(loader))[0].shape) == [8, 2]


@pytest.mark.parametrize('array, match', [
    (np.zeros((5, 3)), r'shape \[N, 2\], found \[5, 3\]'),
    (np.zeros(5), r'found \[5\]'),
    (np.zeros((5, 2), dtype=np.int32), 'floating point.*int32'),
    (np.full((5, 2), np.nan), 'NaN'),
])
def test_point_cloud_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / 'bad.npy', array)
    with pytest.raises(DatasetError, match=match) as info:
        PointCloudDataset(str(tmp_path / 'bad.npy'))
    assert 'bad.npy' in str(info.value)


def test_point_cloud_bad_files(tmp_path):
    np.savez(tmp_path / 'two.npz', a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(DatasetError, match=r"two\.npz.*\['a', 'b'\]"):
        PointCloudDataset(str(tmp_path / 'two.npz'))
    (tmp_path / 'p.csv').write_text('1,2\n')
    with pytest.raises(DatasetError, match=r'p\.csv.*\.npy or \.npz'):
        PointCloudDataset(str(tmp_path / 'p.csv'))


# ---- toy data ----------------------------------------------------------------------------------

def test_toy_centers():
    ring = toy_data.toy_centers('ring8')
    assert ring.shape == (8, 2)
    np.testing.assert_allclose(np.hypot(ring[:, 0], ring[:, 1]), 2.0)
    np.testing.assert_allclose(ring[0], [2, 0], atol=1e-12)
    grid = toy_data.toy_centers('grid25')
    assert grid.shape == (25, 2)
    assert {tuple(c) for c in grid} == {(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)}
    with pytest.raises(ValueError, match='ring8'):
        toy_data.toy_centers('ring9')


def test_toy_points_written_and_loaded(tmp_path):
    path = str(tmp_path / 'toy' / 'grid.npy')
    points = toy_data.save_toy_points(path, 'grid25', std=0.05, points_per_mode=40, seed=3)
    assert points.shape == (1000, 2) and points.dtype == np.float32
    again, modes = toy_data.make_toy_points('grid25', std=0.05, points_per_mode=40, seed=3)
    np.testing.assert_array_equal(points, again)
    assert np.bincount(modes).tolist() == [40] * 25
    offsets = points - toy_data.toy_centers('grid25')[modes]
    assert 0.04 < offsets.std() < 0.06
    ds = PointCloudDataset(path)
    np.testing.assert_array_equal(ds.points, points)
