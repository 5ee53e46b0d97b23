"""A build interrupted by Ctrl-C leaves `<build dir>/lock` behind; on torch versions whose build lock
is a plain file, every later process would wait for it forever (official issues #11, #41). Run as a
user would: a real plugin build in a subprocess, a stale lock planted, a second process that must
finish and say what it removed."""

import glob
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch.utils.cpp_extension

from tests import REPO

DEMO_CPP = textwrap.dedent("""
    #include <pybind11/pybind11.h>
    static int twice(int x) { return 2 * x; }
    PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("twice", &twice); }
""")

USER_SCRIPT = textwrap.dedent("""
    import sys
    from torch_utils import custom_ops
    plugin = custom_ops.get_plugin('lockdemo_plugin', sources=['demo.cpp'], source_dir=sys.argv[1])
    print('RESULT', plugin.twice(21))
""")

pytestmark = [pytest.mark.slow,  # starts a Python subprocess that builds an extension
              pytest.mark.skipif('FileBaton' not in vars(torch.utils.cpp_extension),
                                 reason='this torch holds an OS lock; a leftover lock file cannot block it')]


def _run(tmp_path, ext_dir):
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(ext_dir), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, '-c', USER_SCRIPT, str(tmp_path / 'src')], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)


def test_stale_lock_is_removed_and_named_instead_of_hanging(tmp_path):
    (tmp_path / 'src').mkdir()
    (tmp_path / 'src' / 'demo.cpp').write_text(DEMO_CPP)
    ext_dir = tmp_path / 'extensions'
    first = _run(tmp_path, ext_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert 'RESULT 42' in first.stdout
    assert 'Building PyTorch plugin "lockdemo_plugin" in ' in first.stdout  # says what and where
    libraries = glob.glob(str(ext_dir / 'lockdemo_plugin' / '**' / 'lockdemo_plugin*.so'), recursive=True)
    assert len(libraries) == 1, libraries
    lock = os.path.join(os.path.dirname(libraries[0]), 'lock')
    open(lock, 'w').close()
    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))

    second = _run(tmp_path, ext_dir)  # would hang until the timeout if the lock were left in place
    assert second.returncode == 0, second.stdout + second.stderr
    assert 'RESULT 42' in second.stdout
    assert f'Removing stale build lock "{lock}"' in second.stdout
    assert not os.path.exists(lock)
