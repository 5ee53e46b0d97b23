"""Atomic file writes: a reader finds the old file or the complete new one, never a part of it.

The one writer for every file this project replaces in place: snapshots and their training
states, training_options.json, images and .npz vectors, metric caches, the loss catalogue,
benchmark reports. The content goes to a new temporary file beside the target (same folder, so
the rename stays on one file system), is flushed and fsync'ed, renamed over the target
(`os.replace`, atomic on POSIX and Windows), and the folder is synced so the rename survives a
crash. A failure at any point removes the temporary and leaves the target as it was. The file
gets the permissions of any file the user creates (the umask applies).

Temporary names, `<target>.tmp-<pid>-<random>-<host>`, tell a later start the leftovers of a
killed writer from files a live one is writing (`stylegan_plus.training.snapshots`).

It lives in `stylegan_plus.io` (standard library only, no torch: `--help` stays fast) because
every layer that writes files may import the core: the core packages themselves, the metrics and
the command-line tools (the layer table of tests/project/test_layers.py). The base layer below
(torch_utils, dnnlib) holds the official modules only.

Fault injection for tests: a write whose target name matches the pattern in `PAUSE_ENV` stops
half-way (after writing half of its first block) and sleeps, after creating the file named in
`PAUSE_MARKER_ENV`, so a test can kill the process mid-write.
"""

import fnmatch
import hashlib
import os
import secrets
import socket
import time
from typing import NamedTuple, Optional

PAUSE_ENV = 'STYLEGAN_PLUS_TEST_PAUSE_WRITE'
PAUSE_MARKER_ENV = 'STYLEGAN_PLUS_TEST_PAUSE_MARKER'


class Written(NamedTuple):
    """What a write produced: size in bytes, and the SHA-256 hex digest when it was asked for."""
    size: int
    sha256: Optional[str]


class _Sink:
    """Write-only stream over a file that measures what passes through (size, SHA-256).

    Not seekable on purpose: a digest taken while writing is only right for sequential writes.
    """

    def __init__(self, f, pause):
        self._f = f
        self._pause = pause
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data):
        view = memoryview(data).cast('B')
        if self._pause:
            self._f.write(view[:max(len(view) // 2, 1)])
            self._f.flush()
            _pause_forever()
        self._f.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)

    def flush(self):
        self._f.flush()


def _pause_requested(path):
    pattern = os.environ.get(PAUSE_ENV)
    return bool(pattern) and fnmatch.fnmatch(os.path.basename(path), pattern)


def _pause_forever():
    marker = os.environ.get(PAUSE_MARKER_ENV)
    if marker:      # written whole (rename), so a test never reads it half-written
        with open(marker + '.part', 'w', encoding='utf-8') as f:
            f.write(str(os.getpid()))
        os.replace(marker + '.part', marker)
    while True:
        time.sleep(3600)


def temp_name(path):
    """A fresh temporary name beside `path`: `<path>.tmp-<pid>-<8 hex digits>-<host>`."""
    return f'{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}-{socket.gethostname()}'


def discard(path):
    """Remove a temporary file; nothing happens when it is already gone."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _sync_folder(folder):
    """Make a rename in `folder` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_temp(path, write_fn, digest=False):
    """Call `write_fn(file)` on a new temporary file beside `path` and sync it to disk.

    write_fn: gets a binary file object (a real, seekable file; with `digest`, a write-only stream
    that hashes what it is given). Returns (temporary path, Written). The temporary is removed
    again if `write_fn` (or the sync) fails.
    """
    path = os.path.abspath(os.fspath(path))
    while True:
        tmp = temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, 'wb') as f:
            pause = _pause_requested(path)
            sink = _Sink(f, pause) if digest or pause else None
            write_fn(sink if sink is not None else f)
            f.flush()
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
    except BaseException:
        discard(tmp)
        raise
    return tmp, Written(size, sink.sha256.hexdigest() if digest else None)


def publish(tmp, path):
    """Rename a finished temporary file over `path` (atomic) and make the rename durable."""
    os.replace(tmp, path)
    _sync_folder(os.path.dirname(os.path.abspath(path)))


def write_atomic(path, write_fn, digest=False):
    """Call `write_fn(file)` on a temporary file beside `path`, then rename it over `path`.

    write_fn: as for `write_temp` (binary; text must be encoded). digest: also hash the content
    (SHA-256) while it is written. Returns Written(size, sha256 or None). `path` is never seen
    half-written, and on failure it is left as it was, with no temporary beside it.
    """
    tmp, written = write_temp(path, write_fn, digest)
    try:
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    return written
