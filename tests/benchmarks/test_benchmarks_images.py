"""The digit-image and performance benchmarks (Q4, Q6, Q7, P2, P3, P4) run end to end in smoke mode.

Each script runs as a user runs it (a subprocess, `--smoke`: seconds, one tiny train.py run per
loss, meaningless numbers) and must write results.json with the documented keys, the recorded
train.py commands, a paper-vs-ours table and readable PNG figures, so the scripts cannot rot.
Their domain helpers (`benchmarks/common`: digits, classifier) are also checked on hand-made cases.
"""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from benchmarks.common import REPO_ROOT, classifier, digits, report

COMMON_KEYS = set(report.LAYOUTS['image'].keys)


def run_benchmark(module, out, *extra, by_path=False):
    """Run `python -m benchmarks.<module> --smoke` from the repository root, or (by_path) the script by its
    path from another folder, as `python benchmarks/<module>.py` works from anywhere."""
    if by_path:
        argv, cwd = [sys.executable, os.path.join(REPO_ROOT, 'benchmarks', f'{module}.py')], str(out)
    else:
        argv, cwd = [sys.executable, '-m', f'benchmarks.{module}'], REPO_ROOT
    proc = subprocess.run(argv + ['--smoke', f'--out={out}', *extra], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(os.path.join(out, 'results.json'), encoding='utf-8') as f:
        data = json.load(f)
    assert COMMON_KEYS <= set(data), sorted(data)
    assert data['mode'] == 'smoke' and data['benchmark'] == module
    assert data['command'].startswith(f'python -m benchmarks.{module} --smoke')
    assert data['comparison'] and all({'what', 'paper', 'ours', 'goal', 'met'} <= set(row) for row in data['comparison'])
    assert data['figures']
    for name in data['figures']:
        with PIL.Image.open(os.path.join(out, name)) as img:
            assert img.format == 'PNG' and img.width > 10 and img.height > 10
    assert 'paper vs ours' in proc.stdout and 'wall time' in proc.stdout
    return data, proc.stdout


def train_commands(data):
    return [cmd for cmd in data['commands'] if 'train.py' in cmd]


@pytest.mark.slow
def test_q4_pair_mining(tmp_path):
    data, _ = run_benchmark('q4_advlat_pairs', tmp_path, by_path=True)
    ratios = data['results']['ratios']
    assert set(ratios) == {'start', 'mined', 'inverse'}
    assert all(r['batch_ratio_mean'] > 0 and r['num_pairs'] == 64 for r in ratios.values())
    assert data['results']['inverse_over_mined'] > 0
    assert set(data['figures']) == {'pairs.png', 'ratios.png', 'ratio_vs_steps.png'}
    assert len(train_commands(data)) == 1 and '--cfg=dcgan' in data['commands'][0]


@pytest.mark.slow
def test_q6_clr_digits(tmp_path):
    data, stdout = run_benchmark('q6_clr_digits', tmp_path, '--families=dcgan')
    family = data['results']['per_family']['dcgan']
    # The smoke run snapshots at its start and its end, both within kimg 0 (the second named ..._NNN).
    assert set(family['fd_mean']) == {'stylegan2', 'clr'} and family['kimg'] == [0, 0]
    assert all(np.isfinite(v[0]) and v[0] >= 0 for v in family['fd_mean'].values())
    trend = family['clr_trends'][0]
    assert trend['latent_mse_first'] > 0 and trend['rec_l1_first'] > 0
    assert [c.split('--loss=')[1].split()[0] for c in train_commands(data)] == ['stylegan2', 'clr']
    assert {'fd_dcgan.png', 'clr_terms_dcgan.png', 'samples_dcgan_clr.png'} <= set(data['figures'])
    assert 'FD-digits' in stdout


@pytest.mark.slow
def test_q7_dist_stacked(tmp_path):
    data, _ = run_benchmark('q7_dist_stacked', tmp_path)
    width = data['results']['per_width']['K/4']
    assert set(width) == {'stylegan2', 'dist'}
    assert all(1 <= w['modes_mean'] <= 1000 and w['kl_mean'] >= 0 for w in width.values())
    assert data['results']['real_stacks']['true_modes'] > 1
    assert all('--cbase=512' in c for c in train_commands(data))
    assert 'modes.png' in data['figures']


@pytest.mark.slow
def test_train_speed(tmp_path):
    data, stdout = run_benchmark('train_speed', tmp_path)
    runs = data['results']['runs']['dcgan']
    assert set(runs) == {'stylegan2', 'clr'}
    assert all(r['sec_per_kimg'] > 0 and r['peak_mem_mb'] > 10 for r in runs.values())
    assert data['results']['ratios']['dcgan']['clr']['time_ratio'] > 0
    assert 'overhead_dcgan.png' in data['figures'] and 's/kimg' in stdout


@pytest.mark.slow
def test_cpu_precision(tmp_path):
    data, _ = run_benchmark('cpu_precision', tmp_path)
    res = data['results']
    assert res['block_dtypes']['forced_fp16']['b32'] == 'torch.float16'   # the fp16 side really ran fp16
    assert set(res['block_dtypes']['ours'].values()) == {'torch.float32'}
    assert len(res['notices']) == 1 and 'fp32' in res['notices'][0]
    for timings in (res['native'], res['avx2_limited']):     # the AVX2-limited child ran too
        assert timings['ours_ms'] > 0 and timings['fp16_ms'] > 0
    assert set(res['speedup_vs_forced_fp16']) == {'native', 'avx2_limited'}
    assert 0 < res['max_abs_diff'] < 0.1


@pytest.mark.slow
def test_tools_speed(tmp_path):
    data, _ = run_benchmark('tools_speed', tmp_path)
    res = data['results']
    for key in ('generate_images_per_s', 'projector_steps_per_s', 'features_real_images_per_s',
                'features_generated_images_per_s'):
        assert res[key] > 0, key
    assert res['detectors'] in ('official', 'tiny')
    assert os.path.isfile(os.path.join(tmp_path, 'generated', 'seed0000.png'))

#----------------------------------------------------------------------------
# Helpers on hand-made cases.


def test_mode_coverage_and_frechet_distance():
    covered, kl = classifier.mode_coverage(np.arange(1000))
    assert covered == 1000 and kl == pytest.approx(0.0, abs=1e-12)
    covered, kl = classifier.mode_coverage(np.zeros(50, dtype=np.int64))
    assert covered == 1 and kl == pytest.approx(np.log(1000))
    feats = np.random.RandomState(0).randn(500, 4)
    assert classifier.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert classifier.frechet_distance(feats, feats + 2.0) == pytest.approx(16.0, rel=1e-6)  # ||mu shift||^2 = 4 * 2^2


def test_stacked_digits_and_halves():
    pixels = np.arange(10, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    stacks, modes = digits.stacked_digits(pixels, np.arange(10), count=20, seed=1)
    assert stacks.shape == (20, 4, 4, 3)
    assert np.array_equal(modes, stacks[:, 0, 0, 0].astype(int) * 100 + stacks[:, 0, 0, 1] * 10 + stacks[:, 0, 0, 2])
    a, b = digits.halves(11)
    assert len(a) == 6 and len(b) == 5 and not set(a) & set(b)
