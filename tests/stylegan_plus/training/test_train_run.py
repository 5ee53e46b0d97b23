"""Real train.py runs (subprocesses, CPU, 16 px): every run-directory file, the snapshot layout,
stats.jsonl, and that the snapshot loads in legacy.py and renders in generate.py."""

import json
import os
import subprocess
import sys

import pytest

import legacy
from tests.stylegan_plus.training.test_train_utils import REPO, make_image_dataset, only_run_dir, run_train

OFFICIAL_SNAPSHOT_KEYS = ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe']
PROGRESS_STATS = ['Progress/tick', 'Progress/kimg', 'Timing/total_sec', 'Timing/sec_per_tick', 'Timing/sec_per_kimg',
                  'Timing/maintenance_sec', 'Resources/cpu_mem_gb', 'Resources/peak_gpu_mem_gb', 'Progress/augment',
                  'Timing/total_hours', 'Timing/total_days']

try:
    import torch.utils.tensorboard  # noqa: F401  pylint: disable=unused-import
    HAVE_TENSORBOARD = True
except ImportError:
    HAVE_TENSORBOARD = False


@pytest.fixture(scope='module')
def rand16(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp('data') / 'rand16', count=24)


def check_run_dir(run_dir, image_snapshots):
    names = set(os.listdir(run_dir))
    expected = {'training_options.json', 'log.txt', 'stats.jsonl', 'reals.png', 'fakes_init.png',
                'network-snapshot-000000.pkl'} | set(image_snapshots)
    assert expected <= names, sorted(names)
    newest = sorted(n for n in names if n.startswith('network-snapshot-'))[-1]    # names sort by progress
    assert newest.replace('network-snapshot-', 'training-state-').replace('.pkl', '.pt') in names
    assert any(n.startswith('events.out.tfevents.') for n in names) == HAVE_TENSORBOARD
    assert not [n for n in names if '.tmp' in n]     # atomic writes leave no temporaries
    with open(os.path.join(run_dir, 'network-snapshot-000000.pkl'), 'rb') as f:
        data = legacy.load_network_pkl(f)
    assert list(data)[:5] == OFFICIAL_SNAPSHOT_KEYS
    for key in ('G', 'D', 'G_ema'):
        module = data[key]
        assert not module.training and all(not p.requires_grad and p.device.type == 'cpu' for p in module.parameters())
    with open(os.path.join(run_dir, 'training_options.json')) as f:
        options = json.load(f)
    assert data['training_set_kwargs'] == options['training_set_kwargs']
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        raw = f.read()
    ticks = [json.loads(line) for line in raw.splitlines()]
    with open(os.path.join(run_dir, 'log.txt')) as f:
        log = f.read()
    return data, options, raw, ticks, log


@pytest.mark.slow
def test_tiny_dcgan_run_with_ada(rand16, tmp_path):
    result = run_train(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--cbase=128', '--batch=8',
                       '--nimg=48', '--kimg-per-tick=0.016', '--snap=2', '--aug=ada', '--metrics=none',
                       '--device=cpu', '--workers=1')
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path)
    assert os.path.basename(run_dir) == '00000-rand16-dcgan-cbase128-nimg48-batch8-ada'
    data, options, _raw, ticks, log = check_run_dir(run_dir, ['fakes000000.png'])
    assert type(data['G']).__name__ == 'Generator' and data['G'].img_resolution == 16
    assert type(data['augment_pipe']).__name__ == 'AugmentPipe'
    assert options['device'] == 'cpu' and options['ada_target'] == 0.6
    # Ticks at 0, 16, 32 and 48 images: 4 lines, loss statistics first, then the progress ones.
    assert [t['Progress/tick']['mean'] for t in ticks] == [0, 1, 2, 3]
    names = [k for k in ticks[0] if k != 'timestamp']
    assert names[:3] == ['Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss']
    first_progress = names.index('Progress/tick')
    assert names[first_progress:first_progress + len(PROGRESS_STATS)] == PROGRESS_STATS
    assert names[-3:] == ['Timing/Gboth', 'Timing/Dmain', 'Timing/Dreg']
    assert ticks[-1]['Progress/kimg']['mean'] == pytest.approx(0.048)
    assert 'tick 3     kimg 0.0' in log and 'augment 0.000' in log and 'Exiting...' in log
    assert 'fp16' not in log     # no fp16 layers to switch off


@pytest.mark.slow
def test_tiny_stylegan2_run_and_generate(rand16, tmp_path):
    result = run_train(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=auto', '--cbase=256', '--cmax=32',
                       '--batch=8', '--nimg=32', '--aug=ada', '--metrics=none', '--device=cpu', '--workers=1')
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path)
    data, options, raw, ticks, log = check_run_dir(run_dir, ['fakes000000.png'])
    assert options['G_kwargs']['synthesis_kwargs']['num_fp16_res'] == 4       # the options keep the preset
    assert data['G'].init_kwargs.synthesis_kwargs.num_fp16_res == 0          # the CPU run did not use fp16
    assert log.count('fp16 layers are switched off') == 1
    assert len(ticks) == 2
    # Greg runs at iteration 0 only (interval 4): the second tick keeps the previous statistics,
    # as the official collector does; G main statistics are fresh.
    assert ticks[0]['Loss/pl_penalty']['num'] == 4 and ticks[1]['Loss/pl_penalty'] == ticks[0]['Loss/pl_penalty']
    assert ticks[1]['Loss/G/loss']['num'] == 3 * 8
    assert raw.count('"Loss/pl_penalty"') == 2
    assert [k for k in ticks[0] if k.startswith('Timing/G') or k.startswith('Timing/D')] == \
        ['Timing/Gmain', 'Timing/Greg', 'Timing/Dmain', 'Timing/Dreg']

    outdir = tmp_path / 'generated'
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'generate.py'),
                           f'--network={run_dir}/network-snapshot-000000.pkl', '--seeds=0-1', f'--outdir={outdir}',
                           '--device=cpu'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(outdir)) == ['seed0000.png', 'seed0001.png']


def test_training_loop_keyword_interface():
    import inspect # pylint: disable=import-outside-toplevel
    import training.training_loop # pylint: disable=import-outside-toplevel
    params = inspect.signature(training.training_loop.training_loop).parameters
    official = ['run_dir', 'training_set_kwargs', 'data_loader_kwargs', 'G_kwargs', 'D_kwargs', 'G_opt_kwargs',
                'D_opt_kwargs', 'augment_kwargs', 'loss_kwargs', 'metrics', 'random_seed', 'num_gpus', 'rank',
                'batch_size', 'batch_gpu', 'ema_kimg', 'ema_rampup', 'G_reg_interval', 'D_reg_interval', 'augment_p',
                'ada_target', 'ada_interval', 'ada_kimg', 'total_kimg', 'kimg_per_tick', 'image_snapshot_ticks',
                'network_snapshot_ticks', 'resume_pkl', 'cudnn_benchmark', 'allow_tf32', 'abort_fn', 'progress_fn']
    assert list(params)[:len(official)] == official
    assert params['ada_kimg'].default == 500 and params['kimg_per_tick'].default == 4
    assert params['G_reg_interval'].default == 4 and params['D_reg_interval'].default == 16
