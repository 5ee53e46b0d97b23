"""Input readers of `dataset_tool.py` for image folders and zips, and the items every reader yields.

Every reader returns an `ImageSource`: a lazily decoded sequence of `SourceItem`s, so that a bad
file is reported under its own name and `--skip-bad` can step over it. Decoded images are uint8
[H, W] (grayscale) or [H, W, 3] (RGB). The packaged formats (CIFAR-10, MNIST, LSUN) are read by
`dataset_archives` on top of this module, and `dataset_open` picks the reader for a path.
"""

import io
import json
import os
import zipfile
from collections import namedtuple

import numpy as np
import PIL.Image

from .dataset_errors import BadImageError, DatasetToolError

SourceItem = namedtuple('SourceItem', ['name', 'label', 'load'])
SourceItem.__doc__ = """One input image.

name:  what messages call it (a path, or 'archive#index').
label: int class index, list of floats, or None.
load:  callable -> (uint8 [H, W] or [H, W, 3], original PIL mode if converted else None);
       raises BadImageError.
"""

# Modes stored as-is; everything else is converted to RGB or L (and counted in the summary).
_KEEP_MODES = ('L', 'RGB')
_CONVERT_TO = {'RGBA': 'RGB', 'RGBX': 'RGB', 'P': 'RGB', 'PA': 'RGB', 'CMYK': 'RGB', 'YCbCr': 'RGB',
               'LAB': 'RGB', 'HSV': 'RGB', 'LA': 'L', 'La': 'L', '1': 'L'}


class ImageSource:
    """An input data set: `items` (iterable of SourceItem), `total` (its length, for progress),
    `class_names` (list or None), `notices` (lines to show the user), `tolerant` (skip bad
    images even without --skip-bad, as LSUN conversions always have)."""

    def __init__(self, items, total, class_names=None, notices=(), tolerant=False, on_close=None):
        self.items = items
        self.total = total
        self.class_names = class_names
        self.notices = list(notices)
        self.tolerant = tolerant
        self._on_close = on_close

    def close(self):
        if hasattr(self.items, 'close'):   # a generator stopped early (--max-images) may hold a transaction
            self.items.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def decode_pil(data, name):
    """Decode encoded image bytes; converts exotic modes to RGB/L. Raises BadImageError."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            if mode in _KEEP_MODES:
                return np.array(img), None
            if mode not in _CONVERT_TO:
                raise BadImageError(name, f'unsupported pixel format (PIL mode {mode}); store 8-bit L or RGB')
            return np.array(img.convert(_CONVERT_TO[mode])), mode
    except BadImageError:
        raise
    except Exception as err:   # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise BadImageError(name, f'cannot read image ({type(err).__name__}: {err})') from None


def _image_names(names):
    exts = set(PIL.Image.registered_extensions())
    return sorted(n for n in names if os.path.splitext(n)[1].lower() in exts)


def _read_label_file(read, where):
    """Labels of a source `dataset.json`: {relative_path: label} ({} if labels is null)."""
    try:
        meta = json.loads(read())
        entries = meta['labels']
        return {} if entries is None else {str(fname): label for fname, label in entries}
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetToolError(f'{where}: not a valid dataset.json ({type(err).__name__}: {err}); '
                               'expected {"labels": [[relative_path, label], ...]} or {"labels": null}') from None


def _label_lookup(names, all_names, read_labels, where, subfolders_as_labels):
    """(labels per name, class_names, notices) for folder-like sources."""
    notices = []
    if subfolders_as_labels:
        root_level = [n for n in names if '/' not in n]
        if root_level:
            raise DatasetToolError(f'{where}: --subfolders-as-labels needs every image inside a class sub-folder; '
                                   f'{root_level[0]!r} is at the top level')
        class_names = sorted({n.split('/', 1)[0] for n in names})
        index = {c: i for i, c in enumerate(class_names)}
        if 'dataset.json' in all_names:
            notices.append('--subfolders-as-labels: ignoring the labels of the source dataset.json')
        notices.append('Class indices from sub-folders: ' + ', '.join(f'{i}={c}' for i, c in enumerate(class_names)))
        return [index[n.split('/', 1)[0]] for n in names], class_names, notices
    if 'dataset.json' not in all_names:
        return [None] * len(names), None, notices
    table = read_labels()
    labels = [table.get(n) for n in names]
    missing = [n for n, label in zip(names, labels) if label is None]
    if table and missing:
        notices.append(f'dataset.json has no label for {len(missing)} image(s), e.g. {missing[0]!r}; '
                       'writing {"labels": null}')
    return labels, None, notices


def open_image_folder(path, subfolders_as_labels=False):
    """Every image under `path` (recursive), ordered by relative path with '/'."""
    all_names = {
        os.path.relpath(os.path.join(root, fname), path).replace(os.sep, '/')
        for root, _dirs, files in os.walk(path) for fname in files
    }
    names = _image_names(all_names)
    if not names:
        raise DatasetToolError(f'{path}: no image files found')

    def read_labels():
        with open(os.path.join(path, 'dataset.json'), 'rb') as f:
            return _read_label_file(f.read, os.path.join(path, 'dataset.json'))

    labels, class_names, notices = _label_lookup(names, all_names, read_labels, path, subfolders_as_labels)

    def load_file(full):
        try:
            with open(full, 'rb') as f:
                data = f.read()
        except OSError as err:
            raise BadImageError(full, f'cannot read file ({err.strerror})') from None
        return decode_pil(data, full)

    items = [SourceItem(os.path.join(path, n), label, lambda full=os.path.join(path, n): load_file(full))
             for n, label in zip(names, labels)]
    return ImageSource(items, len(items), class_names=class_names, notices=notices)


def open_image_zip(path, subfolders_as_labels=False):
    """Every image inside the zip `path`, ordered by member name."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetToolError(f'{path}: cannot open zip ({err})') from None
    all_names = {n for n in archive.namelist() if not n.endswith('/')}
    names = _image_names(all_names)
    if not names:
        archive.close()
        raise DatasetToolError(f'{path}: no image files found in the zip')

    def read_labels():
        return _read_label_file(lambda: archive.read('dataset.json'), f'{path}:dataset.json')

    try:
        labels, class_names, notices = _label_lookup(names, all_names, read_labels, path, subfolders_as_labels)
    except Exception:
        archive.close()
        raise

    def load_member(member):
        display = f'{path}:{member}'
        try:
            data = archive.read(member)
        except Exception as err:   # CRC errors, bad compression, ...
            raise BadImageError(display, f'cannot read zip member ({err})') from None
        return decode_pil(data, display)

    items = [SourceItem(f'{path}:{n}', label, lambda n=n: load_member(n)) for n, label in zip(names, labels)]
    return ImageSource(items, len(items), class_names=class_names, notices=notices, on_close=archive.close)
