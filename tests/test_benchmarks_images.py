"""The digit-image and performance benchmarks (Q4, Q6, Q7, P2, P3, P4) run end to end in smoke mode.

Each script runs as a user runs it (a subprocess, `--smoke`: seconds, one tiny train.py run per
loss, meaningless numbers) and must write results.json with the documented keys, the recorded
train.py commands, a paper-vs-ours table and readable PNG figures, so the scripts cannot rot.
Shared helpers of `benchmarks/imgcommon` are also checked directly on hand-made cases.
"""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))
from imgcommon import classifier, digits, runinfo, trainer  # noqa: E402  pylint: disable=wrong-import-position

COMMON_KEYS = {'benchmark', 'title', 'mode', 'command', 'seeds', 'versions', 'threads', 'settings', 'results',
               'comparison', 'commands', 'figures', 'wall_time_s'}


def run_benchmark(script, out, *extra):
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'benchmarks', script), '--smoke', f'--out={out}',
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(os.path.join(out, 'results.json')) as f:
        data = json.load(f)
    assert COMMON_KEYS <= set(data), sorted(data)
    assert data['mode'] == 'smoke' and data['benchmark'] == script[:-3]
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
    data, _ = run_benchmark('q4_advlat_pairs.py', tmp_path)
    ratios = data['results']['ratios']
    assert set(ratios) == {'start', 'mined', 'inverse'}
    assert all(r['batch_ratio_mean'] > 0 and r['num_pairs'] == 64 for r in ratios.values())
    assert data['results']['inverse_over_mined'] > 0
    assert set(data['figures']) == {'pairs.png', 'ratios.png', 'ratio_vs_steps.png'}
    assert len(train_commands(data)) == 1 and '--cfg=dcgan' in data['commands'][0]


@pytest.mark.slow
def test_q6_clr_digits(tmp_path):
    data, stdout = run_benchmark('q6_clr_digits.py', tmp_path, '--families=dcgan')
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
    data, _ = run_benchmark('q7_dist_stacked.py', tmp_path)
    width = data['results']['per_width']['K/4']
    assert set(width) == {'stylegan2', 'dist'}
    assert all(1 <= w['modes_mean'] <= 1000 and w['kl_mean'] >= 0 for w in width.values())
    assert data['results']['real_stacks']['true_modes'] > 1
    assert all('--cbase=512' in c for c in train_commands(data))
    assert 'modes.png' in data['figures']


@pytest.mark.slow
def test_train_speed(tmp_path):
    data, stdout = run_benchmark('train_speed.py', tmp_path)
    runs = data['results']['runs']['dcgan']
    assert set(runs) == {'stylegan2', 'clr'}
    assert all(r['sec_per_kimg'] > 0 and r['peak_mem_mb'] > 10 for r in runs.values())
    assert data['results']['ratios']['dcgan']['clr']['time_ratio'] > 0
    assert 'overhead_dcgan.png' in data['figures'] and 's/kimg' in stdout


@pytest.mark.slow
def test_cpu_precision(tmp_path):
    data, _ = run_benchmark('cpu_precision.py', tmp_path)
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
    data, _ = run_benchmark('tools_speed.py', tmp_path)
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


def test_stats_timing_and_json(tmp_path):
    records = [{'Progress/kimg': {'mean': k}, 'Timing/sec_per_tick': {'mean': s}, 'Loss/x': {'mean': k * 2}}
               for k, s in [(0.064, 9.0), (0.5, 4.0), (1.0, 1.0), (1.5, 2.0)]]
    assert trainer.training_sec_per_kimg(records, skip_ticks=2) == pytest.approx(3.0)   # 3 s over 1 kimg
    assert trainer.training_sec_per_kimg(records[:2], skip_ticks=2) is None
    kimg, values = trainer.series(records, 'Loss/x')
    assert np.allclose(values, kimg * 2)
    assert runinfo.to_jsonable({'a': np.float32(1.5), 'b': [np.int64(2), float('nan')]}) == {'a': 1.5, 'b': [2, None]}
