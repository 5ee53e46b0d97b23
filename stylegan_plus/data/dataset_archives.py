"""Readers for the packaged benchmark formats: CIFAR-10 python tarball, MNIST idx, LSUN lmdb."""

import gzip
import os
import pickle
import tarfile

import numpy as np

from .dataset_sources import ImageSource, SourceItem, decode_pil
from .dataset_errors import BadImageError, DatasetToolError

CIFAR_BATCHES = [f'cifar-10-batches-py/data_batch_{i}' for i in range(1, 6)]
# What a damaged or foreign tarball can raise while being unpacked and unpickled.
_CIFAR_READ_ERRORS = (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError,
                      AttributeError, TypeError)


def _array_item(name, image, label):
    return SourceItem(name, label, lambda: (image, None))


def _dict_get(batch, key):
    # The official files were pickled by Python 2 (str keys read as str with latin1); re-pickled
    # copies made with Python 3 may carry bytes keys instead.
    value = batch.get(key, batch.get(key.encode()))
    if value is None:
        raise KeyError(key)
    return value


def open_cifar10(path):
    """The 50 000 training images of `cifar-10-python.tar.gz` (data_batch_1..5), uint8 [32, 32, 3], labels 0..9."""
    images, labels = [], []
    try:
        with tarfile.open(path, 'r:gz') as tar:
            for member in CIFAR_BATCHES:
                try:
                    batch = pickle.load(tar.extractfile(member), encoding='latin1')
                except KeyError:
                    raise DatasetToolError(f'{path}: member {member!r} is missing; '
                                           'is this the CIFAR-10 python tarball?') from None
                images.append(np.asarray(_dict_get(batch, 'data'), dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(_dict_get(batch, 'labels'), dtype=np.int64))
    except _CIFAR_READ_ERRORS as err:
        raise DatasetToolError(f'{path}: cannot read CIFAR-10 batches ({type(err).__name__}: {err})') from None
    images = np.concatenate(images).transpose(0, 2, 3, 1)
    labels = np.concatenate(labels)
    if len(images) != len(labels) or labels.min() < 0 or labels.max() > 9:
        raise DatasetToolError(f'{path}: {len(images)} images but {len(labels)} labels in 0..9')
    items = [_array_item(f'{path}#{i}', images[i], int(labels[i])) for i in range(len(images))]
    return ImageSource(items, len(items))


def _read_idx(path, magic, ndim):
    """Parse a gzipped idx file: big-endian magic, `ndim` int32 sizes, then uint8 data."""
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DatasetToolError(f'{path}: cannot read gzip idx file ({err})') from None
    header = 4 * (1 + ndim)
    if len(data) < header or int.from_bytes(data[:4], 'big') != magic:
        raise DatasetToolError(f'{path}: not an idx file with magic {magic:#010x}')
    sizes = [int.from_bytes(data[4 * (i + 1):4 * (i + 2)], 'big') for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(sizes)):
        raise DatasetToolError(f'{path}: header says {sizes} but holds {body.size} bytes')
    return body.reshape(sizes)


def open_mnist(path):
    """MNIST images (`*-images-idx3-ubyte.gz`) zero-padded to the next power of two (28 -> 32),
    uint8 [32, 32], with labels from the `*-labels-idx1-ubyte.gz` file beside it."""
    labels_path = os.path.join(os.path.dirname(path),
                               os.path.basename(path).replace('-images-idx3-ubyte', '-labels-idx1-ubyte'))
    if not os.path.isfile(labels_path):
        raise DatasetToolError(f'{path}: the labels file {labels_path} is missing (it must lie beside the images)')
    images = _read_idx(path, 0x803, 3)
    labels = _read_idx(labels_path, 0x801, 1).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetToolError(f'{path}: {len(images)} images but {len(labels)} labels in {labels_path}')
    height, width = images.shape[1:]
    side = 1 << (max(height, width) - 1).bit_length()
    top, left = (side - height) // 2, (side - width) // 2
    images = np.pad(images, [(0, 0), (top, side - height - top), (left, side - width - left)])
    items = [_array_item(f'{path}#{i}', images[i], int(labels[i])) for i in range(len(images))]
    return ImageSource(items, len(items))


def _import_lsun_deps():
    try:
        import cv2
        import lmdb
    except ImportError as err:
        raise DatasetToolError(f'LSUN lmdb sources need the packages "lmdb" and "opencv-python" (cv2), which are not '
                               f'installed ({err}); install them with: pip install lmdb opencv-python') from None
    return cv2, lmdb


def open_lmdb(path):
    """Images of an LSUN lmdb folder (values are encoded images, decoded to RGB), no labels.

    Undecodable entries are skipped with a report, as LSUN dumps contain a few.
    """
    cv2, lmdb = _import_lsun_deps()
    try:
        env = lmdb.open(path, max_readers=1, readonly=True, lock=False, readahead=False, meminit=False)
        total = env.stat()['entries']
    except Exception as err:   # lmdb.Error has no common base with OSError
        raise DatasetToolError(f'{path}: cannot open lmdb database ({err})') from None

    def decode(name, value):
        image = cv2.imdecode(np.frombuffer(value, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None
        return decode_pil(bytes(value), name)   # formats cv2 was built without (e.g. webp)

    def items():
        with env.begin(write=False) as txn:
            for idx, (key, value) in enumerate(txn.cursor()):
                name = f'{path}#{idx}'
                yield SourceItem(name, None, lambda name=name, value=value: _guard(decode, name, value))

    return ImageSource(items(), total, tolerant=True, on_close=env.close)


def _guard(decode, name, value):
    try:
        return decode(name, value)
    except BadImageError:
        raise
    except Exception as err:
        raise BadImageError(name, f'cannot decode ({err})') from None
