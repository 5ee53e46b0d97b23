"""Fault injection: a real train.py process is killed (SIGKILL, by its pid) while it writes the
snapshot pickle or the training state of a tick. `--resume=latest` must then continue from the
newest complete pair and end exactly where an uninterrupted run ends (max difference 0), or say why
it cannot; the next start removes the temporaries the killed run left.

The writer pauses half-way through the chosen file when STYLEGAN_PLUS_TEST_PAUSE_WRITE names it
(see stylegan_plus/io/atomic.py), so the kill always lands mid-write.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from stylegan_plus.io import atomic
from tests.stylegan_plus.training.test_train_utils import REPO, load_pickle, make_point_dataset, max_weight_difference, run_train

pytestmark = pytest.mark.slow

# Toy networks, a tick (and a snapshot with its state) every 8 images, 6 snapshots in 48 images.
# --workers is left out on purpose: the default must not exceed this machine's CPUs.
COMMON = ['--cfg=toy', '--batch=8', '--nimg=48', '--kimg-per-tick=0.008', '--snap=1', '--metrics=none',
          '--device=cpu', '--seed=3']
WORKER_WARNING = 'suggested max number of worker'


@pytest.fixture(scope='module')
def setting(tmp_path_factory):
    """(data path, final snapshot of the uninterrupted run)."""
    root = tmp_path_factory.mktemp('faults')
    data = make_point_dataset(root / 'ring.npy', count=64)
    proc = run_train(f'--outdir={root}/whole', f'--data={data}', *COMMON)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert WORKER_WARNING not in proc.stderr
    return data, newest(f'{root}/whole/00000-*')


def newest(run_glob):
    (run_dir,) = glob.glob(run_glob)
    return sorted(glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')))[-1]


def leftovers(outdir):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(outdir, '*', '*.tmp*')))


def kill_while_writing(outdir, data, target, tmp_path):
    """Start a run that pauses half-way through writing `target`; SIGKILL it there."""
    marker = tmp_path / 'paused'
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.update({atomic.PAUSE_ENV: target, atomic.PAUSE_MARKER_ENV: str(marker)})
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data}',
                             *COMMON], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None, f'the run ended before writing {target}: {proc.stderr.read().decode()[-3000:]}'
        assert time.time() < deadline, f'the run did not reach {target}'
        time.sleep(0.2)
    assert int(marker.read_text()) == proc.pid     # half the file is on disk when the marker appears
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()         # reaped, so its pid is free: the temporaries it left are stale
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize('target', ['network-snapshot-000000_032.pkl', 'training-state-000000_032.pt'])
def test_killed_mid_write_resumes_from_the_newest_complete_pair(setting, tmp_path, target):
    data, whole = setting
    outdir = tmp_path / 'runs'
    kill_while_writing(outdir, data, target, tmp_path)
    (killed,) = glob.glob(f'{outdir}/00000-*')
    names = sorted(os.listdir(killed))
    # The pickle of the tick being written never appears; its temporary (and the state's) stay behind.
    assert 'network-snapshot-000000_032.pkl' not in names
    assert [n for n in names if n.startswith('network-snapshot-') and n.endswith('.pkl')][-1] == \
        'network-snapshot-000000_024.pkl'
    left = leftovers(outdir)
    assert left and left[0].startswith('network-snapshot-000000_032.pkl.tmp-')
    if target.startswith('training-state-'):
        assert [n.split('.tmp-')[0] for n in left] == ['network-snapshot-000000_032.pkl', target]

    proc = run_train(f'--outdir={outdir}', f'--data={data}', *COMMON, '--resume=latest')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stdout + proc.stderr
    for name in left:
        assert f'Removed {os.path.join(killed, name)}, left over by an interrupted run.' in proc.stdout
    assert leftovers(outdir) == []
    assert f'Resuming from "{killed}/network-snapshot-000000_024.pkl" (full training state)' in proc.stdout

    a, b = load_pickle(whole), load_pickle(newest(f'{outdir}/00001-*'))
    for key in ('G', 'D', 'G_ema'):
        assert max_weight_difference(a[key], b[key]) == 0, key


def test_killed_at_the_first_snapshot_says_why_it_cannot_resume(setting, tmp_path):
    data, _whole = setting
    outdir = tmp_path / 'runs'
    kill_while_writing(outdir, data, 'network-snapshot-000000.pkl', tmp_path)
    assert len(leftovers(outdir)) == 1
    proc = run_train(f'--outdir={outdir}', f'--data={data}', *COMMON, '--resume=latest')
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stdout + proc.stderr
    assert f'--resume=latest: no network-snapshot-*.pkl in the runs under {outdir}' in ' '.join(proc.stderr.split())
    assert 'left over by an interrupted run' in proc.stdout and leftovers(outdir) == []
    assert len(os.listdir(outdir)) == 1         # the refused start created no run folder


def test_truncated_pickle_as_resume_is_reported_not_unpickled(setting, tmp_path):
    data, whole = setting
    bad = tmp_path / 'network-snapshot-000000.pkl'
    raw = open(whole, 'rb').read() # pylint: disable=consider-using-with
    bad.write_bytes(raw[:len(raw) // 3])
    proc = run_train(f'--outdir={tmp_path}/runs', f'--data={data}', *COMMON, f'--resume={bad}')
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and 'Traceback' not in output
    assert f'{bad} is a truncated or damaged pickle' in ' '.join(proc.stderr.split())
    assert '--resume accepts a network pickle' in ' '.join(proc.stderr.split())
    assert not os.path.exists(tmp_path / 'runs')
