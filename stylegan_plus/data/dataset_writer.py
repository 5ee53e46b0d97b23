"""All-or-nothing output of `dataset_tool.py`: a folder or an uncompressed zip.

Files go to a hidden temporary sibling of the destination, which is renamed into place only when
the whole conversion succeeded, so a failed run never leaves a half-written data set behind.
Nothing that exists is replaced without being asked: an existing zip only with `overwrite`, a
folder only when it is empty; a name with another extension (`x.tar`) is refused rather than
turned into a folder of that name.
"""

import os
import shutil
import tempfile
import zipfile

from .dataset_errors import DatasetToolError, OptionError


def _default_mode(base):
    # mkdtemp/mkstemp create private (0700/0600) entries; a finished data set should get the
    # permissions of any file the user creates.
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def _extension(name):
    """The extension of a file name when it looks like one ('.tar'), else '' ('.v2' counts, '.0' not)."""
    ext = os.path.splitext(name)[1]
    return ext if any(ch.isalpha() for ch in ext) else ''


def _blocking_file(parent):
    """The nearest existing ancestor of `parent` (itself included) when it is not a folder, else None."""
    path = os.path.abspath(parent)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else path


def _make_parents(parent):
    """Create `parent` and missing ancestors; return those created, deepest first."""
    created = []
    path = os.path.abspath(parent)
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    for path in reversed(created):
        os.mkdir(path)
    return created


class DatasetWriter:
    """Collects `(archive_name, bytes)` files and publishes them at `dest` on `commit()`.

    `dest` ending in `.zip` gives a ZIP_STORED archive, which replaces an existing file only with
    `overwrite`; a name without extension, or ending in a path separator, a folder, which must be
    absent or empty. Use as a context manager: leaving the block with an exception (or without
    commit) removes every temporary file.
    """

    def __init__(self, dest, overwrite=False):
        explicit_folder = str(dest).endswith(('/', os.sep))
        self.dest = os.path.normpath(dest)
        self.is_zip = self.dest.lower().endswith('.zip') and not explicit_folder
        self.overwrite = overwrite
        ext = _extension(os.path.basename(self.dest))
        if ext and not self.is_zip and not explicit_folder and not os.path.isdir(self.dest):
            raise OptionError(f'{self.dest}: dataset_tool writes a .zip file or a folder, not {ext!r}; for a folder '
                              f'of that name end it with a slash ({self.dest}{os.sep})', param='--dest')
        blocker = _blocking_file(os.path.dirname(os.path.abspath(self.dest)))
        if blocker is not None:
            raise DatasetToolError(f'--dest {self.dest}: cannot be created inside {blocker}, which is a file, '
                                   f'not a folder')
        self._check_dest()
        self._created_parents = _make_parents(os.path.dirname(os.path.abspath(self.dest)))
        parent = os.path.dirname(os.path.abspath(self.dest))
        prefix = f'.{os.path.basename(self.dest)}.'
        if self.is_zip:
            fd, self._tmp = tempfile.mkstemp(prefix=prefix, suffix='.partial', dir=parent)
            os.close(fd)
            self._zip = zipfile.ZipFile(self._tmp, 'w', compression=zipfile.ZIP_STORED)
        else:
            self._tmp = tempfile.mkdtemp(prefix=prefix, suffix='.partial', dir=parent)
            self._zip = None
        self._done = False

    def _check_dest(self):
        if self.is_zip:
            if os.path.isdir(self.dest):
                raise DatasetToolError(f'--dest {self.dest}: is a folder, cannot write a zip there')
            if os.path.lexists(self.dest) and not self.overwrite:
                raise DatasetToolError(f'--dest {self.dest}: the file exists and is kept; add --overwrite to '
                                       f'replace it')
        elif os.path.exists(self.dest):
            if not os.path.isdir(self.dest):
                raise DatasetToolError(f'--dest {self.dest}: exists and is not a folder')
            if os.listdir(self.dest):
                hint = ' (--overwrite replaces .zip files only)' if self.overwrite else ''
                raise DatasetToolError(f'--dest folder {self.dest} must be empty or absent{hint}')

    def add(self, archive_name, data):
        """Store `data` (bytes) as `archive_name` ('/'-separated path relative to the data set root)."""
        if self._zip is not None:
            self._zip.writestr(archive_name, data)
            return
        path = os.path.join(self._tmp, *archive_name.split('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)

    def commit(self):
        """Move the finished data set to `dest`."""
        if self._zip is not None:
            self._zip.close()
            os.chmod(self._tmp, _default_mode(0o666))
            self._publish_zip()
        else:
            os.chmod(self._tmp, _default_mode(0o777))
            self._check_dest()   # someone may have written into an empty dest meanwhile
            if os.path.isdir(self.dest):
                os.rmdir(self.dest)
            os.rename(self._tmp, self.dest)
        self._done = True

    def _publish_zip(self):
        if self.overwrite:
            os.replace(self._tmp, self.dest)
            return
        # A hard link never replaces: a file created at dest during the conversion is kept.
        try:
            os.link(self._tmp, self.dest)
        except FileExistsError:
            self._check_dest()
            raise
        except OSError:     # no hard links on this file system: check, then rename
            self._check_dest()
            os.replace(self._tmp, self.dest)
            return
        os.remove(self._tmp)

    def abort(self):
        """Remove the temporary output and any parent folders this writer created."""
        if self._done:
            return
        if self._zip is not None:
            self._zip.close()
            if os.path.exists(self._tmp):
                os.remove(self._tmp)
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)
        for path in self._created_parents:
            try:
                os.rmdir(path)
            except OSError:   # not empty: something else was put there
                break
        self._done = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()
