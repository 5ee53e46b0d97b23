"""Which reader serves a `dataset_tool.py --source`: folders, zips, and the packaged benchmark files.

Sits on top of both reader modules (`dataset_sources` for folders and zips, `dataset_archives`
for CIFAR-10, MNIST and LSUN), so neither of them needs the other's dispatch.
"""

import os

from . import dataset_archives
from .dataset_errors import DatasetToolError, OptionError
from .dataset_sources import open_image_folder, open_image_zip

# Packaged single-file sources: (test on the file name, what messages call it, reader).
# Their labels come from the file itself, so --subfolders-as-labels does not apply to them.
_PACKAGED_FILES = (
    (lambda name: name == 'cifar-10-python.tar.gz', 'CIFAR-10', dataset_archives.open_cifar10),
    (lambda name: name.endswith('-images-idx3-ubyte.gz'), 'MNIST', dataset_archives.open_mnist),
)


def is_lmdb_folder(path):
    """True for an LSUN lmdb folder: named `*_lmdb`, or holding `data.mdb`."""
    return os.path.normpath(path).endswith('_lmdb') or os.path.isfile(os.path.join(path, 'data.mdb'))


def open_source(path, subfolders_as_labels=False):
    """The `ImageSource` of `path` (see `dataset_tool.py --help` for the kinds).

    Raises DatasetToolError for a missing or unknown source, OptionError when
    `subfolders_as_labels` is asked of a source whose labels come from the file itself.
    """
    if os.path.isdir(path):
        if not is_lmdb_folder(path):
            return open_image_folder(path, subfolders_as_labels)
        _refuse_subfolder_labels(subfolders_as_labels, 'an LSUN lmdb folder')
        return dataset_archives.open_lmdb(path)
    if not os.path.isfile(path):
        raise DatasetToolError(f'--source {path}: no such file or folder')
    name = os.path.basename(os.path.normpath(path))
    if name.lower().endswith('.zip'):
        return open_image_zip(path, subfolders_as_labels)
    for matches, kind, reader in _PACKAGED_FILES:
        if matches(name):
            _refuse_subfolder_labels(subfolders_as_labels, kind)
            return reader(path)
    raise DatasetToolError(f'--source {path}: unknown input; expected a folder, a .zip, an LSUN *_lmdb folder, '
                           'cifar-10-python.tar.gz or train-images-idx3-ubyte.gz')


def _refuse_subfolder_labels(enabled, kind):
    if enabled:
        raise OptionError(f'--subfolders-as-labels applies to folder and zip sources, not {kind} '
                          '(whose labels are read from the source itself)', param='--subfolders-as-labels')
