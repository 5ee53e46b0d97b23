"""Full resume: N iterations in one run equal N/2 + resume + N/2 (same losses, same weights), with a
loss plugin that adds a network, a phase, a prior and state; and the official weights-only resume."""

import json
import os
import shutil

import pytest
import torch

from tests.test_train_utils import load_pickle, make_image_dataset, max_weight_difference, only_run_dir, run_train

PLUGIN = 'tests.plugins_for_tests.ExtraNetLoss'
COMMON = ['--cfg=dcgan', '--cbase=128', '--batch=8', '--aug=ada', '--metrics=none', '--device=cpu', '--workers=1',
          '--kimg-per-tick=0.008', '--snap=100', f'--loss={PLUGIN}', '--testx-prior=uniform']


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


def read_ticks(run_dir):
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_resumed_run_equals_uninterrupted_run(runs):
    _root, _data, dirs = runs
    a = load_pickle(os.path.join(dirs['A'], 'network-snapshot-000000.pkl'))
    b = load_pickle(os.path.join(dirs['B2'], 'network-snapshot-000000.pkl'))
    assert list(a) == ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe', 'H']   # plugin network last
    for key in ('G', 'D', 'G_ema', 'H', 'augment_pipe'):
        assert max_weight_difference(a[key], b[key]) <= 1e-6, key
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
    state_a = torch.load(os.path.join(dirs['A'], 'training-state-000000.pt'), weights_only=True)
    state_b = torch.load(os.path.join(dirs['B2'], 'training-state-000000.pt'), weights_only=True)
    assert (state_b['cur_nimg'], state_b['batch_idx']) == (96, 12)
    assert set(state_b['optimizers']) == {'G', 'D', 'H'}
    # The plugin's state: 12 iterations x 1 round of its Hmain phase, in both runs.
    assert int(state_a['loss'][0]['h_calls']) == int(state_b['loss'][0]['h_calls']) == 12
    assert float(state_a['loss'][0]['h_loss_avg']) == pytest.approx(float(state_b['loss'][0]['h_loss_avg']), rel=1e-6)
    assert torch.equal(state_a['sampler']['order'], state_b['sampler']['order'])
    with open(os.path.join(dirs['B2'], 'training_options.json')) as f:
        options = json.load(f)
    assert options['resume_state'].endswith('training-state-000000.pt') and options['ada_kimg'] == 500
    assert options['g_steps'] == 2 and options['loss_kwargs']['testx_prior'] == 'uniform'
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
                     f'--resume={dirs["B2"]}/network-snapshot-000000.pkl')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'nothing to train' in proc.stdout
    assert not any(n.startswith('network-snapshot') for n in os.listdir(only_run_dir(tmp_path)))
