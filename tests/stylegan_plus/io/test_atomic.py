"""The one atomic writer: whole files or nothing, no temporaries left, digests of what was written."""

import hashlib
import os
import stat

import numpy as np
import pytest

from stylegan_plus.io import atomic


def test_write_replaces_the_file_and_measures_it(tmp_path):
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    written = atomic.write_atomic(target, lambda f: (f.write(b'hello '), f.write(bytearray(b'world'))), digest=True)
    assert target.read_bytes() == b'hello world'
    assert written == (11, hashlib.sha256(b'hello world').hexdigest())
    assert atomic.write_atomic(target, lambda f: f.write(b'abc')) == (3, None)     # no digest unless asked
    assert os.listdir(tmp_path) == ['out.bin']


def test_without_digest_the_writer_gets_a_seekable_file(tmp_path):
    target = tmp_path / 'v.npz'
    atomic.write_atomic(target, lambda f: np.savez(f, z=np.arange(4)))      # zip writing seeks back
    with np.load(target) as npz:
        assert npz['z'].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize('error', [OSError('disk full'), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    target = tmp_path / 'keep.txt'
    target.write_bytes(b'before')

    def fail_halfway(f):
        f.write(b'part')
        raise error
    with pytest.raises(type(error)):
        atomic.write_atomic(target, fail_halfway, digest=True)
    assert target.read_bytes() == b'before' and os.listdir(tmp_path) == ['keep.txt']


def test_a_failed_rename_leaves_no_temporary(tmp_path):
    folder = tmp_path / 'taken'
    folder.mkdir()
    (folder / 'inside').write_bytes(b'')    # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        atomic.write_atomic(folder, lambda f: f.write(b'x'))
    assert sorted(os.listdir(tmp_path)) == ['taken']


def test_temporary_then_publish(tmp_path):
    target = tmp_path / 'network-snapshot-000000.pkl'
    tmp, written = atomic.write_temp(target, lambda f: f.write(b'data'), digest=True)
    name = os.path.basename(tmp)
    assert name.startswith('network-snapshot-000000.pkl.tmp-') and f'-{os.getpid()}-' in name
    assert not target.exists() and written.size == 4
    atomic.publish(tmp, target)
    assert target.read_bytes() == b'data' and os.listdir(tmp_path) == [target.name]
    atomic.discard(tmp)     # already gone: nothing happens


def test_new_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_atomic(tmp_path / 'f', lambda f: f.write(b''))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'f').st_mode) == 0o644
