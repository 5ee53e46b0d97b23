"""`ImageFolderDataset`: images in a folder tree or a `.zip`, with optional `dataset.json` labels.

This is the format `dataset_tool.py` writes. Any file whose extension PIL recognises is an image;
images are ordered by their relative path (always with '/'), which fixes the raw index of each.
"""

import functools
import io
import json
import os
import zipfile

import numpy as np
import PIL.Image

from . import image_check
from .base import Dataset, DatasetError

try:
    import pyspng   # optional: decodes PNG noticeably faster than PIL
except ImportError:
    pyspng = None

LABELS_FILE = 'dataset.json'

# Modes whose raw array is not a plain 8-bit image; they are converted on load.
_CONVERT_MODES = image_check.CONVERT_MODES


def image_extensions():
    """Lower-case file extensions (with the dot) that PIL can open, e.g. {'.png', '.jpg', ...}."""
    return set(PIL.Image.registered_extensions())


def file_ext(fname):
    return os.path.splitext(fname)[1].lower()


def decode_image(data, fname):
    """Decode encoded image bytes to uint8 [C, H, W] (grayscale gives C=1).

    `fname` picks the decoder (pyspng for '.png' when installed) and names the file in errors.
    """
    if pyspng is not None and file_ext(fname) == '.png':
        image = pyspng.load(data)
    else:
        with PIL.Image.open(io.BytesIO(data)) as img:
            if img.mode in _CONVERT_MODES:
                img = img.convert(_CONVERT_MODES[img.mode])
            image = np.asarray(img)
    if image.dtype != np.uint8:
        raise DatasetError(f'{fname}: {image.dtype} pixels are not supported; store 8-bit L or RGB images')
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    return image.transpose(2, 0, 1)


def parse_labels(entries, image_fnames, where):
    """Turn the `labels` list of a dataset.json into an array aligned with `image_fnames`.

    Args:
        entries:      list of [relative_path, label] pairs, or None.
        image_fnames: relative paths ('/'-separated) in raw-index order.
        where:        path of the dataset.json, for error messages.
    Returns:
        None (no labels), int64 [N] class indices, or float32 [N, D] vectors.
    """
    if entries is None:
        return None
    try:
        by_name = {str(fname): label for fname, label in entries}
    except (TypeError, ValueError):
        raise DatasetError(f'{where}: "labels" must be a list of [relative_path, label] pairs') from None
    missing = [fname for fname in image_fnames if fname not in by_name]
    if missing:
        raise DatasetError(f'{where}: no label for image {missing[0]!r}'
                           + (f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''))
    values = [by_name[fname] for fname in image_fnames]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        labels = np.array(values, dtype=np.float64)
        if np.any(labels != np.round(labels)) or np.any(labels < 0):
            raise DatasetError(f'{where}: scalar labels must be non-negative class indices')
        return labels.astype(np.int64)
    try:
        labels = np.array(values, dtype=np.float32)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.ndim != 2:
        raise DatasetError(f'{where}: labels must be all class indices (ints) or all equal-length number lists')
    return labels


class ImageFolderDataset(Dataset):
    """Images from a folder (searched recursively) or an uncompressed/compressed `.zip`.

    Args:
        path:        folder or `.zip` path.
        resolution:  expected image size; a different size raises DatasetError (None = any square).
        skip_bad:    leave out the files the start-up check rejects (listed once on stdout)
                     instead of raising a DatasetError that lists them.
        **super_kwargs: `max_size`, `use_labels`, `xflip`, `random_seed` (see `Dataset`).
    Items are (uint8 [C, H, W], float32 [label_dim]). Opening reads every image's header (see
    `image_check`); `skipped_files` lists the (name, problem) pairs left out with skip_bad.
    """

    _transient_attrs = Dataset._transient_attrs + ('_zipfile',)

    def __init__(self, path, resolution=None, skip_bad=False, **super_kwargs):
        self._path = path
        self._zipfile = None
        if os.path.isdir(path):
            self._type = 'dir'
            all_fnames = self._list_folder(path)
        elif os.path.isfile(path) and file_ext(path) == '.zip':
            self._type = 'zip'
            all_fnames = {n for n in self._get_zipfile().namelist() if not n.endswith('/')}
        else:
            raise DatasetError(f'{path}: dataset path must be an existing folder or .zip file')
        self._all_fnames = all_fnames

        exts = image_extensions()
        candidates = sorted(f for f in all_fnames if file_ext(f) in exts)
        if not candidates:
            raise DatasetError(f'{path}: no image files found')
        result = image_check.check_headers(path, self._read_headers(candidates), resolution)
        if result.bad and not skip_bad:
            raise image_check.bad_files_error(path, result)
        image_check.announce_skipped(path, result)
        self._image_fnames = result.good
        self.skipped_files = list(result.bad)

        name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        raw_shape = [len(result.good), result.channels, result.height, result.width]
        super().__init__(name=name, raw_shape=raw_shape, **super_kwargs)

    @staticmethod
    def _list_folder(root):
        # Relative paths always use '/', so dataset.json keys match on every OS.
        return {
            os.path.relpath(os.path.join(dirpath, fname), root).replace(os.sep, '/')
            for dirpath, _dirs, files in os.walk(root) for fname in files
        }

    def _get_zipfile(self):
        # Opened lazily: each DataLoader worker gets its own handle after unpickling.
        if self._zipfile is None:
            try:
                self._zipfile = zipfile.ZipFile(self._path)
            except zipfile.BadZipFile as err:
                raise DatasetError(f'{self._path}: not a readable zip file ({err})') from None
        return self._zipfile

    def _open_file(self, fname):
        if self._type == 'zip':
            return self._get_zipfile().open(fname)
        return open(os.path.join(self._path, fname), 'rb')

    def _read_bytes(self, fname):
        with self._open_file(fname) as f:
            return f.read()

    def _read_headers(self, fnames):
        """ImageHeader of every file in `fnames` (see image_check)."""
        if self._type == 'dir':
            return [self._read_header(fname, None) for fname in fnames]
        with open(self._path, 'rb') as archive:
            return [self._read_header(fname, archive) for fname in fnames]

    def _read_header(self, fname, archive):
        read_tail = None
        if archive is not None:
            info = self._get_zipfile().getinfo(fname)
            if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                read_tail = functools.partial(image_check.stored_member_tail, archive, info)
        try:
            with self._open_file(fname) as f:
                return image_check.read_header(f, fname, read_tail)
        except (OSError, zipfile.BadZipFile) as err:   # a problem of this file, not of the dataset
            return image_check.ImageHeader(fname, problem=f'truncated/unreadable ({err})')

    def close(self):
        try:
            if self._zipfile is not None:
                self._zipfile.close()
        finally:
            self._zipfile = None

    def _raw_item_name(self, raw_idx):
        return os.path.join(self._path, self._image_fnames[raw_idx])

    def _load_raw_image(self, raw_idx):
        fname = self._image_fnames[raw_idx]
        try:
            return decode_image(self._read_bytes(fname), self._raw_item_name(raw_idx))
        except DatasetError:
            raise
        except Exception as err:   # decoders raise many types; all mean "this file is bad"
            raise DatasetError(f'{self._raw_item_name(raw_idx)}: cannot decode image ({err})') from None

    def _load_raw_labels(self):
        if LABELS_FILE not in self._all_fnames:
            return None
        where = os.path.join(self._path, LABELS_FILE)
        try:
            meta = json.loads(self._read_bytes(LABELS_FILE))
        except ValueError as err:
            raise DatasetError(f'{where}: invalid JSON ({err})') from None
        if not isinstance(meta, dict) or 'labels' not in meta:
            raise DatasetError(f'{where}: expected an object with a "labels" key')
        return parse_labels(meta['labels'], self._image_fnames, where)
