"""Snapshot names, the pickle/state pairing, stale temporaries and the --resume file checks, on
small hand-made files (no training)."""

import os
import pickle
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch

from stylegan_plus.training import run_dirs
from stylegan_plus.training import resume as resume_lib
from stylegan_plus.training import snapshots

SNAPSHOT = {'training_set_kwargs': None, 'G': 1, 'D': 2, 'G_ema': 3}


def test_names_are_unique_and_sort_in_writing_order():
    nimgs = [8, 16, 992, 1000, 1008, 2004, 2996, 4032, 8064, 8128]
    names, previous = [], None
    for nimg in nimgs:
        names.append(snapshots.snapshot_name(nimg, previous))
        previous = nimg
    assert names[:6] == ['network-snapshot-000000.pkl', 'network-snapshot-000000_016.pkl',
                         'network-snapshot-000000_992.pkl', 'network-snapshot-000001.pkl',
                         'network-snapshot-000001_008.pkl', 'network-snapshot-000002.pkl']
    assert names[-2:] == ['network-snapshot-000008.pkl', 'network-snapshot-000008_128.pkl']
    assert len(set(names)) == len(names) and sorted(names) == names
    assert [snapshots.parse_snapshot_name(n) for n in names[:2]] == [(0, -1), (0, 16)]
    assert snapshots.parse_snapshot_name('network-snapshot-000001.pkl.tmp-1-ab-host') is None
    assert snapshots.state_name_for('/r/network-snapshot-000000_016.pkl') == '/r/training-state-000000_016.pt'


def test_pair_records_the_pickle_and_is_checked(tmp_path):
    pkl = tmp_path / 'network-snapshot-000004.pkl'
    snapshots.write_pair(str(pkl), SNAPSHOT, {'version': resume_lib.STATE_VERSION, 'cur_nimg': 4000})
    assert sorted(os.listdir(tmp_path)) == ['network-snapshot-000004.pkl', 'training-state-000004.pt']
    state, note = resume_lib.check_pair(str(pkl), snapshots.state_name_for(str(pkl)))
    assert note is None and state['cur_nimg'] == 4000 and state['snapshot_bytes'] == os.path.getsize(pkl)

    with open(pkl, 'wb') as f:     # same size, other content: only the checksum tells
        pickle.dump({**SNAPSHOT, 'G': 9}, f)
    assert os.path.getsize(pkl) == state['snapshot_bytes']
    with pytest.raises(resume_lib.ResumeError, match='written with another pickle'):
        resume_lib.check_pair(str(pkl), snapshots.state_name_for(str(pkl)))
    with pytest.raises(resume_lib.ResumeError, match='move training-state-000004.pt away'):
        resume_lib.resolve_local(str(pkl))


def test_a_failed_pickle_write_leaves_neither_file(tmp_path):
    pkl = tmp_path / 'network-snapshot-000004.pkl'

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('boom')
    with pytest.raises(RuntimeError, match='boom'):
        snapshots.write_pair(str(pkl), {**SNAPSHOT, 'G': Unpicklable()}, {'version': 1})
    assert os.listdir(tmp_path) == []


def make_run(folder, kimgs, states=True):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kimg in kimgs:
        pkl = str(folder / f'network-snapshot-{kimg:06d}.pkl')
        if states:
            snapshots.write_pair(pkl, {**SNAPSHOT, 'G': kimg}, {'version': 1, 'cur_nimg': kimg * 1000})
        else:
            snapshots.write_snapshot(pkl, {**SNAPSHOT, 'G': kimg})
        paths.append(pkl)
    return paths


def test_choose_latest_takes_the_newest_consistent_pair(tmp_path):
    make_run(tmp_path / '00000-old', [0, 4, 8, 12])          # an older run is not looked at
    p0, p4, p8 = make_run(tmp_path / '00001-new', [0, 4, 8])
    os.remove(snapshots.state_name_for(p8))                  # newest: no state
    shutil.copy(p0, p4)                                      # next: the pickle of another tick
    pkl, state_path, state, notes = resume_lib.choose_latest(str(tmp_path))
    assert (pkl, state_path, state['cur_nimg']) == (p0, snapshots.state_name_for(p0), 0)
    assert len(notes) == 3 and 'no training state beside it' in notes[0]
    assert f'{p4}: its training state {snapshots.state_name_for(p4)} was written with another pickle' in notes[1]
    assert notes[2].startswith(f'Note: continuing from {p0}')


def test_choose_latest_notes_and_errors(tmp_path):
    run = tmp_path / '00003-run'
    _p0, p4, p8 = make_run(run, [0, 4, 8])
    os.remove(snapshots.state_name_for(p8))
    pkl, state_path, state, notes = resume_lib.choose_latest(str(tmp_path))
    assert (pkl, state_path, state['cur_nimg']) == (p4, snapshots.state_name_for(p4), 4000)
    assert notes == [f'Note: skipped {p8} has no training state beside it.',
                     f'Note: continuing from {p4}, the newest snapshot with its own training state.']

    with open(p4, 'r+b') as f:          # damage the pickle: truncated
        f.truncate(os.path.getsize(p4) // 2)
    pkl, _state_path, state, notes = resume_lib.choose_latest(str(tmp_path))
    assert state['cur_nimg'] == 0 and f'{p4} is a truncated or damaged pickle' in notes[1]

    for name in os.listdir(run):
        if name.startswith('training-state-'):
            (run / name).write_bytes(b'not a state')
    with pytest.raises(resume_lib.ResumeError, match=f'no snapshot of {run} can be resumed: .*cannot read its'):
        resume_lib.choose_latest(str(tmp_path))


def test_choose_latest_without_states_resumes_weights_only(tmp_path):
    paths = make_run(tmp_path / '00000-official', [0, 4], states=False)
    assert resume_lib.choose_latest(str(tmp_path)) == (paths[-1], None, None, [])
    with pytest.raises(resume_lib.ResumeError, match='no network-snapshot-'):
        resume_lib.choose_latest(str(tmp_path / 'empty'))


@pytest.mark.parametrize('kind', ['truncated', 'text', 'state', 'npy', 'empty', 'list', 'zip'])
def test_check_snapshot_file_names_what_the_file_is(tmp_path, kind):
    path = tmp_path / ('training-state-000004.pt' if kind == 'state' else f'file.{kind}')
    if kind == 'truncated':
        data = pickle.dumps({**SNAPSHOT, 'G': list(range(1000))})
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'text':
        path.write_text('G = generator\n')
    elif kind == 'state':
        torch.save({'version': 1}, path)
    elif kind == 'npy':
        import numpy as np # pylint: disable=import-outside-toplevel
        np.save(path, np.zeros(3))     # file.npy: the name already ends in .npy
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'list':
        path.write_bytes(pickle.dumps([1, 2]))
    else:
        import zipfile # pylint: disable=import-outside-toplevel
        with zipfile.ZipFile(path, 'w') as archive:
            archive.writestr('00000/img00000000.png', b'x')
    expected = {'truncated': 'is a truncated or damaged pickle', 'text': "is a text file (it starts with 'G = gen",
                'state': 'is a training-state file', 'npy': 'is not a pickle (it starts with the bytes 93 4e',
                'empty': 'is an empty file', 'list': 'is a pickle of a list, not a network snapshot',
                'zip': 'is a zip archive (a data set?)'}[kind]
    with pytest.raises(resume_lib.ResumeError) as info:
        resume_lib.check_snapshot_file(str(path))
    assert str(info.value).startswith(f'{path} {expected}')
    if kind == 'state':
        assert str(tmp_path / 'network-snapshot-000004.pkl') in str(info.value)


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_checking_a_pickle_runs_none_of_its_code(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps({'G': _RunsCommand(marker), 'D': 1, 'G_ema': 2}))
    resume_lib.check_snapshot_file(str(path))        # reads as a snapshot-shaped dict ...
    assert not marker.exists()                       # ... without running os.system


def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_stale_temporaries(tmp_path):
    host = socket.gethostname()
    names = {
        'dead': f'network-snapshot-000004.pkl.tmp-{_dead_pid()}-0a1b2c3d-{host}',
        'alive': f'training-state-000004.pt.tmp-{os.getpid()}-0a1b2c3d-{host}',
        'remote_new': 'network-snapshot-000008.pkl.tmp-1-0a1b2c3d-other-host.example',
        'remote_old': 'network-snapshot-000012.pkl.tmp-1-0a1b2c3d-other-host.example',
        'old_format_old': 'training-state-000000.pt.tmpab_12cd3',
        'unrelated_old': 'notes.txt.tmp-1-0a1b2c3d-other-host',
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b'partial')
    long_ago = time.time() - 2 * snapshots.STALE_AFTER_S
    for key in ('remote_old', 'old_format_old', 'unrelated_old'):
        os.utime(tmp_path / names[key], (long_ago, long_ago))
    removed = snapshots.remove_stale_temps([str(tmp_path)])
    assert sorted(removed) == sorted(str(tmp_path / names[k]) for k in ('dead', 'remote_old', 'old_format_old'))
    assert sorted(os.listdir(tmp_path)) == sorted(names[k] for k in ('alive', 'remote_new', 'unrelated_old'))


@pytest.mark.slow
def test_stale_temporaries_are_looked_for_in_run_folders_and_beside_the_resumed_pickle(tmp_path):
    stale = f'network-snapshot-000004.pkl.tmp-{_dead_pid()}-0a1b2c3d-{socket.gethostname()}'
    for folder in ('runs/00002-x', 'runs/notarun', 'elsewhere'):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / stale).write_bytes(b'')
    removed = run_dirs.remove_stale_temps(str(tmp_path / 'runs'), str(tmp_path / 'elsewhere' / 'a.pkl'))
    assert sorted(removed) == [str(tmp_path / 'elsewhere' / stale), str(tmp_path / 'runs' / '00002-x' / stale)]
    assert os.listdir(tmp_path / 'runs' / 'notarun') == [stale]


def test_failed_run_folder_is_removed_only_when_ours_and_worthless(tmp_path):
    outdir = tmp_path / 'runs'
    (outdir / '00000-before').mkdir(parents=True)
    before = run_dirs.folder_entries(str(outdir))

    def make(name, files):
        run_dir = outdir / name
        run_dir.mkdir()
        (run_dir / 'training_options.json').write_text(f'{{"run_dir": "{run_dir}"}}')
        for fname, content in files.items():
            (run_dir / fname).write_bytes(content)
        return str(run_dir)

    worthless = make('00001-a', {'log.txt': b'Traceback', 'reals.png': b'x', 'stats.jsonl': b''})
    snapshot = make('00002-b', {'log.txt': b'', 'network-snapshot-000000.pkl': b'x'})
    stats = make('00003-c', {'stats.jsonl': b'{}\n'})
    assert run_dirs.remove_failed_run_dir(worthless, before) and not os.path.exists(worthless)
    assert not run_dirs.remove_failed_run_dir(snapshot, before) and os.path.isdir(snapshot)
    assert not run_dirs.remove_failed_run_dir(stats, before) and os.path.isdir(stats)
    assert not run_dirs.remove_failed_run_dir(str(outdir / '00000-before'), before)
    other = make('00004-d', {})
    (outdir / '00004-d' / 'training_options.json').write_text('{"run_dir": "somewhere/else"}')
    assert not run_dirs.remove_failed_run_dir(other, before) and os.path.isdir(other)
    assert not run_dirs.remove_failed_run_dir(None, before)


def test_recorded_options_come_from_the_pickle_and_the_state(tmp_path, capsys):
    from stylegan_plus.training import resolve  # pylint: disable=import-outside-toplevel
    take = resolve._take_recorded_options  # pylint: disable=protected-access
    from stylegan_plus.training.options import UserError  # pylint: disable=import-outside-toplevel
    pkl = str(tmp_path / 'network-snapshot-000004.pkl')
    options = dict(z_dist='normal', g_steps=2, d_steps=1, lr_schedule='none', batch_size=8)
    snapshots.write_pair(pkl, dict(SNAPSHOT, z_dist='uniform'), {'version': resume_lib.STATE_VERSION,
                                                                  'options': options})
    state, _note = resume_lib.check_pair(pkl, snapshots.state_name_for(pkl))
    # The pickle's prior wins over the state's: the weights were trained on it.
    assert resume_lib.recorded_options(pkl, state) == dict(z_dist='uniform', g_steps=2, d_steps=1, lr_schedule='none')
    assert resume_lib.recorded_options(pkl, None) == dict(z_dist='uniform')
    official = tmp_path / 'official.pkl'
    with open(official, 'wb') as f:
        pickle.dump(SNAPSHOT, f)
    assert resume_lib.recorded_options(str(official), None) == {}
    assert resume_lib.recorded_options('https://example.com/x.pkl', None) == {}

    values = dict(z_dist=None, g_steps=None, d_steps=3, lr_schedule=None)
    take(values, resume_lib.recorded_options(pkl, state), pkl, full=True)
    assert values == dict(z_dist='uniform', g_steps=2, d_steps=3, lr_schedule='none')
    out = capsys.readouterr().out
    assert f'resuming with --z-dist=uniform, --g-steps=2, --lr-schedule=none, as {pkl} records' in out
    assert '(--d-steps 1 -> 3)' in out
    with pytest.raises(UserError, match=r'--z-dist=normal: .* was trained on the uniform prior'):
        take(dict(z_dist='gaussian'), dict(z_dist='uniform'), pkl, full=True)
    with pytest.raises(UserError, match=r"--z-dist recorded by .*=cauchy: accepted are normal, uniform"):
        take({}, dict(z_dist='cauchy'), pkl, full=False)
