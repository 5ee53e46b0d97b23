"""Full resume: N iterations in one run equal N/2 + resume + N/2 (same losses, same weights), with a
loss plugin that adds a network, a phase, a prior and state; the official weights-only resume; and
what `--resume` does with a snapshot whose training state belongs to another one (refused, or
skipped by `latest` with a note), with states of older versions, and with networks that do not fit."""

import glob
import json
import os
import shutil

import pytest
import torch
from click.testing import CliRunner

import train
from stylegan_plus.training import snapshots
from tests.stylegan_plus.training.test_train_utils import load_pickle, make_image_dataset, max_weight_difference, only_run_dir, run_train

pytestmark = pytest.mark.slow  # every test runs train.py as a subprocess

PLUGIN = 'tests.plugins_for_tests.ExtraNetLoss'
COMMON = ['--cfg=dcgan', '--cbase=128', '--batch=8', '--aug=ada', '--metrics=none', '--device=cpu', '--workers=1',
          '--kimg-per-tick=0.008', '--snap=100', f'--loss={PLUGIN}', '--testx-prior=uniform',
          '--lr-schedule=step:0.5:5']     # rates halve at iterations 5 and 10: B resumes at 6, between them


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Run A (96 images) and B = B1 (48 images) + B2 (--resume=latest, 96 images)."""
    root = tmp_path_factory.mktemp('resume')
    data = make_image_dataset(root / 'rand16', count=20)
    results = {}
    for name, outdir, extra in [('A', root / 'A', ['--nimg=96']), ('B1', root / 'B', ['--nimg=48']),
                                ('B2', root / 'B', ['--nimg=96', '--resume=latest'])]:
        proc = run_train(f'--outdir={outdir}', f'--data={data}', *COMMON, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results[name] = only_run_dir(outdir)
    return root, data, results


def last_snapshot(run_dir):
    """The newest network-snapshot-*.pkl of a run (code-point order of the names is the order of writing)."""
    return sorted(glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')))[-1]


def read_ticks(run_dir):
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_resumed_run_equals_uninterrupted_run(runs):
    _root, _data, dirs = runs
    assert os.path.basename(last_snapshot(dirs['A'])) == 'network-snapshot-000000_096.pkl'
    a = load_pickle(last_snapshot(dirs['A']))
    b = load_pickle(last_snapshot(dirs['B2']))
    # Plugin network after the official keys, then the prior the plugin chose for the run (--testx-prior).
    assert list(a) == ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe', 'H', 'z_dist']
    assert a['z_dist'] == b['z_dist'] == 'uniform'
    for key in ('G', 'D', 'G_ema', 'H', 'augment_pipe'):
        assert max_weight_difference(a[key], b[key]) == 0, key
    assert float(a['augment_pipe'].p) > 0      # ADA moved p, and the resumed run moved it the same way

    # Per-iteration ticks: the losses after the resume point are those of the uninterrupted run.
    ticks_a = {round(t['Progress/kimg']['mean'] * 1000): t for t in read_ticks(dirs['A'])}
    ticks_b = {round(t['Progress/kimg']['mean'] * 1000): t for t in read_ticks(dirs['B2'])}
    assert sorted(ticks_b) == [56, 64, 72, 80, 88, 96]
    for nimg, tick in ticks_b.items():
        for name in ('Loss/G/loss', 'Loss/D/loss', 'Loss/testx/latent', 'Loss/signs/real'):
            assert tick[name]['mean'] == pytest.approx(ticks_a[nimg][name]['mean'], rel=1e-5, abs=1e-6), (nimg, name)


def test_training_state_contents(runs):
    _root, _data, dirs = runs
    state_a = torch.load(snapshots.state_name_for(last_snapshot(dirs['A'])), weights_only=True)
    state_b = torch.load(snapshots.state_name_for(last_snapshot(dirs['B2'])), weights_only=True)
    assert (state_b['cur_nimg'], state_b['batch_idx']) == (96, 12)
    assert set(state_b['optimizers']) == {'G', 'D', 'H'}
    # The plugin's state: 12 iterations x 1 round of its Hmain phase, in both runs.
    assert int(state_a['loss'][0]['h_calls']) == int(state_b['loss'][0]['h_calls']) == 12
    assert float(state_a['loss'][0]['h_loss_avg']) == pytest.approx(float(state_b['loss'][0]['h_loss_avg']), rel=1e-6)
    assert torch.equal(state_a['sampler']['order'], state_b['sampler']['order'])
    with open(os.path.join(dirs['B2'], 'training_options.json')) as f:
        options = json.load(f)
    assert options['resume_state'].endswith('training-state-000000_048.pt') and options['ada_kimg'] == 500
    # The state records the pickle written with it.
    assert state_b['snapshot'] == os.path.basename(last_snapshot(dirs['B2']))
    assert state_b['snapshot_bytes'] == os.path.getsize(last_snapshot(dirs['B2']))
    assert options['g_steps'] == 2 and options['loss_kwargs']['testx_prior'] == 'uniform'
    assert options['z_dist'] == 'uniform' and options['lr_schedule'] == 'step:0.5:5'
    with open(os.path.join(dirs['B2'], 'stats.jsonl')) as f:
        factors = [json.loads(line)['Progress/lr_factor']['mean'] for line in f]
    assert factors[-1] == 0.25      # at the end (iteration 12): two halvings, derived from the iteration count
    with open(os.path.join(dirs['B2'], 'log.txt')) as f:
        assert '(full training state)' in f.read()


def test_official_pickle_resumes_weights_only(runs, tmp_path):
    _root, data, dirs = runs
    official = tmp_path / 'official.pkl'     # a snapshot without its training-state file
    shutil.copy(os.path.join(dirs['B1'], 'network-snapshot-000000.pkl'), official)
    proc = run_train(f'--outdir={tmp_path}/runs', f'--data={data}', *COMMON, '--nimg=8', f'--resume={official}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(f'{tmp_path}/runs')
    assert os.path.basename(run_dir).endswith('-resumecustom')
    with open(os.path.join(run_dir, 'training_options.json')) as f:
        options = json.load(f)
    assert options['ada_kimg'] == 100 and options['ema_rampup'] is None and 'resume_state' not in options
    with open(os.path.join(run_dir, 'log.txt')) as f:
        log = f.read()
    assert 'weights only, as the official trainer' in log
    state = torch.load(os.path.join(run_dir, 'training-state-000000.pt'), weights_only=True)
    assert state['cur_nimg'] == 8       # counting restarts from zero


def test_nothing_to_train_when_already_done(runs, tmp_path):
    _root, data, dirs = runs
    proc = run_train(f'--outdir={tmp_path}', f'--data={data}', *COMMON, '--nimg=48',
                     f'--resume={last_snapshot(dirs["B2"])}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'nothing to train' in proc.stdout
    assert not any(n.startswith('network-snapshot') for n in os.listdir(only_run_dir(tmp_path)))


# --- Pairs that do not belong together -------------------------------------------------------------


def dry_run_resume(outdir, data, resume):
    """(exit code, output, options dict or None) of `train.py --dry-run --resume=...` run in-process."""
    argv = [f'--outdir={outdir}', f'--data={data}', *COMMON, '--nimg=96', f'--resume={resume}', '--dry-run']
    result = CliRunner().invoke(train.build_command(argv), argv)
    options = None
    if result.exit_code == 0:
        text = result.output.split('Training options:\n', 1)[1]
        options = json.JSONDecoder().raw_decode(text)[0]
    return result.exit_code, result.output, options


@pytest.fixture
def copied_b1(runs, tmp_path):
    """A copy of run B1 (snapshots at 8 and 48 images, each with its state) in tmp_path/runs."""
    _root, _data, dirs = runs
    run_dir = tmp_path / 'runs' / os.path.basename(dirs['B1'])
    shutil.copytree(dirs['B1'], run_dir)
    assert sorted(n for n in os.listdir(run_dir) if n.startswith(('network-', 'training-state-'))) == [
        'network-snapshot-000000.pkl', 'network-snapshot-000000_048.pkl',
        'training-state-000000.pt', 'training-state-000000_048.pt']
    return run_dir


def test_latest_skips_a_pickle_whose_state_belongs_to_another(runs, copied_b1):
    """The bug this pairing fixes: the pickle of one tick beside the state of another."""
    _root, data, _dirs = runs
    shutil.copy(copied_b1 / 'network-snapshot-000000.pkl', copied_b1 / 'network-snapshot-000000_048.pkl')
    code, output, options = dry_run_resume(copied_b1.parent, data, 'latest')
    assert code == 0, output
    assert options['resume_pkl'] == str(copied_b1 / 'network-snapshot-000000.pkl')
    assert options['resume_state'] == str(copied_b1 / 'training-state-000000.pt')
    text = ' '.join(output.split())
    assert 'training-state-000000_048.pt was written with another pickle' in text
    assert f'continuing from {copied_b1 / "network-snapshot-000000.pkl"}' in text

    # Named explicitly, the mismatched pair is refused with what to do instead.
    code, output, _options = dry_run_resume(copied_b1.parent, data, copied_b1 / 'network-snapshot-000000_048.pkl')
    text = ' '.join(output.split())
    assert code == 2 and 'Traceback' not in output
    assert 'training-state-000000_048.pt was written with another pickle' in text
    assert 'move training-state-000000_048.pt away' in text


def test_latest_says_why_when_no_pair_fits(runs, copied_b1):
    _root, data, _dirs = runs
    (copied_b1 / 'training-state-000000.pt').write_bytes(b'garbage')
    shutil.copy(copied_b1 / 'network-snapshot-000000.pkl', copied_b1 / 'network-snapshot-000000_048.pkl')
    code, output, _options = dry_run_resume(copied_b1.parent, data, 'latest')
    text = ' '.join(output.split())
    assert code == 2 and 'Traceback' not in output
    assert f'no snapshot of {copied_b1} can be resumed' in text
    assert 'cannot read its training state' in text and 'was written with another pickle' in text


def test_state_of_an_older_version_still_resumes(runs, copied_b1):
    """States written before pairing record no pickle: accepted (full resume) with a note."""
    _root, data, _dirs = runs
    state_path = copied_b1 / 'training-state-000000_048.pt'
    state = torch.load(state_path, weights_only=True)
    for key in ('snapshot_bytes', 'snapshot_sha256'):
        del state[key]
    torch.save(state, state_path)
    code, output, options = dry_run_resume(copied_b1.parent, data, 'latest')
    assert code == 0, output
    assert options['resume_state'] == str(state_path) and options['ada_kimg'] == 500
    assert 'comes from an older version that did not record its pickle' in ' '.join(output.split())


def test_networks_that_do_not_fit_fail_cleanly_and_leave_no_run_folder(runs, tmp_path):
    _root, data, dirs = runs
    pkl = last_snapshot(dirs['B1'])
    args = [a for a in COMMON if not a.startswith('--cbase')]
    proc = run_train(f'--outdir={tmp_path}/runs', f'--data={data}', *args, '--cbase=64', '--nimg=8',
                     f'--resume={pkl}')
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stdout + proc.stderr
    assert f'the networks of {pkl} do not fit' in ' '.join(proc.stderr.split())
    assert 'Removed the run folder' in proc.stderr
    assert os.listdir(tmp_path / 'runs') == []      # the folder the failed run created is gone


# --- Options the resumed run recorded ----------------------------------------------------------------

# The run's own options without the prior and the schedule (which the runs above were trained with).
PLAIN = [a for a in COMMON if not a.startswith(('--testx-prior', '--lr-schedule'))]


def dry_run(outdir, data, *args):
    """(exit code, output with lines joined, options dict or None) of an in-process `train.py --dry-run`."""
    argv = [f'--outdir={outdir}', f'--data={data}', *PLAIN, '--nimg=96', *args, '--dry-run']
    result = CliRunner().invoke(train.build_command(argv), argv)
    options = None
    if result.exit_code == 0:
        options = json.JSONDecoder().raw_decode(result.output.split('Training options:\n', 1)[1])[0]
    return result.exit_code, ' '.join(result.output.split()), options


def test_resume_without_the_flags_keeps_the_recorded_prior_and_schedule(runs, copied_b1):
    _root, data, _dirs = runs
    pkl = copied_b1 / 'network-snapshot-000000_048.pkl'
    code, output, options = dry_run(copied_b1.parent, data, '--resume=latest')
    assert code == 0, output
    assert options['resume_state'] == str(copied_b1 / 'training-state-000000_048.pt')
    assert options['z_dist'] == 'uniform' and options['lr_schedule'] == 'step:0.5:5' and options['g_steps'] == 2
    assert output.count('Note: resuming with') == 1
    assert (f'Note: resuming with --z-dist=uniform, --g-steps=2, --d-steps=1, --g-batch-factor=1, '
            f'--lr-schedule=step:0.5:5, as {pkl} '
            f'records (give an option to change it).') in output

    # Given explicitly: another schedule is the user's choice (noted); another prior is refused.
    code, output, options = dry_run(copied_b1.parent, data, '--resume=latest', '--lr-schedule=none', '--d-steps=2')
    assert code == 0, output
    assert 'lr_schedule' not in options and options['d_steps'] == 2 and options['z_dist'] == 'uniform'
    assert f'{pkl} was trained with other settings (--d-steps 1 -> 2, --lr-schedule step:0.5:5 -> none)' in output
    code, output, _options = dry_run(copied_b1.parent, data, f'--resume={pkl}', '--z-dist=normal')
    assert code == 2 and 'Traceback' not in output
    assert f'--z-dist=normal: {pkl} was trained on the uniform prior' in output and 'leave --z-dist out' in output


def test_weights_only_resume_takes_the_prior_of_the_pickle(runs, tmp_path):
    _root, data, dirs = runs
    pkl = tmp_path / 'no-state.pkl'      # no training state beside it: weights only
    shutil.copy(last_snapshot(dirs['B1']), pkl)
    code, output, options = dry_run(tmp_path / 'runs', data, f'--resume={pkl}')
    assert code == 0, output
    assert 'resume_state' not in options and options['z_dist'] == 'uniform' and 'lr_schedule' not in options
    assert f'Note: resuming with --z-dist=uniform, as {pkl} records' in output
    # A new run from these weights may pick another prior: said, not refused (the loop says it again).
    code, output, options = dry_run(tmp_path / 'runs', data, f'--resume={pkl}', '--z-dist=normal')
    assert code == 0, output
    assert 'z_dist' not in options and f'{pkl} was trained with other settings (--z-dist uniform -> normal)' in output
