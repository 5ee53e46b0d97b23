"""Multi-process training on CPU: 2 gloo processes, spawned by `--gpus=2 --device=cpu` or started by
torchrun (env:// initialisation, as on several nodes), give the same weights as 1 process with the
same total batch."""

import json
import os
import subprocess
import sys

import pytest

from tests.stylegan_plus.training.test_train_utils import (REPO, load_pickle, make_point_dataset, max_weight_difference, only_run_dir,
                                    run_train)

pytestmark = pytest.mark.slow  # every test starts torch.distributed processes

COMMON = ['--cfg=toy', '--batch=16', '--nimg=128', '--metrics=none', '--device=cpu', '--workers=1', '--snap=100']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    data = make_point_dataset(root / 'ring.npy', count=200)
    dirs = {}
    for gpus in (1, 2):
        proc = run_train(f'--outdir={root}/gpus{gpus}', f'--data={data}', *COMMON, f'--gpus={gpus}')
        assert proc.returncode == 0, proc.stdout + proc.stderr
        dirs[gpus] = only_run_dir(f'{root}/gpus{gpus}')
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')}
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node=2',
                           os.path.join(REPO, 'train.py'), f'--outdir={root}/torchrun', f'--data={data}', *COMMON],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dirs['torchrun'] = only_run_dir(f'{root}/torchrun')
    return dirs


@pytest.mark.parametrize('launcher', [2, 'torchrun'])
def test_two_gloo_processes_match_one_process(runs, launcher):
    one = load_pickle(os.path.join(runs[1], 'network-snapshot-000000_128.pkl'))     # the final one, at 128 images
    two = load_pickle(os.path.join(runs[launcher], 'network-snapshot-000000_128.pkl'))
    for key in ('G', 'D', 'G_ema'):
        scale = max(float(p.abs().max()) for p in one[key].parameters())
        assert max_weight_difference(one[key], two[key]) <= 1e-5 * max(scale, 1), key
    with open(os.path.join(runs[launcher], 'training_options.json')) as f:
        options = json.load(f)
    assert options['num_gpus'] == 2 and options['batch_gpu'] == 8


def test_two_process_run_files(runs):
    with open(os.path.join(runs[2], 'log.txt')) as f:
        log = f.read()
    assert log.count('tick 0 ') == 1        # only rank 0 prints the status lines
    with open(os.path.join(runs[2], 'stats.jsonl')) as f:
        ticks = [json.loads(line) for line in f]
    with open(os.path.join(runs[1], 'stats.jsonl')) as f:
        ticks_one = [json.loads(line) for line in f]
    # Statistics are reduced over both processes: the same counts and losses as one process.
    assert ticks[-1]['Loss/G/loss']['num'] == ticks_one[-1]['Loss/G/loss']['num']
    assert ticks[-1]['Loss/D/loss']['mean'] == pytest.approx(ticks_one[-1]['Loss/D/loss']['mean'], rel=1e-4)
    assert ticks[-1]['Progress/kimg']['mean'] == pytest.approx(0.128)
