"""calc_metrics.py as a user runs it: a tiny snapshot in a run folder, a tiny data set, test-built detectors."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import calc_metrics
from metrics import metric_utils
from metrics import detectors
from tests.test_legacy import REPO, make_snapshot, write_pickle
from tests.metrics.test_metrics_detectors import save_tiny_detectors
from tests.metrics.test_metrics_pipeline import write_image_folder

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

OFFICIAL_LINE_KEYS = ['results', 'metric', 'total_time', 'total_time_str', 'num_gpus']
RESULT_KEYS = {
    'fid50k_full': ['fid50k_full'],
    'kid50k_full': ['kid50k_full'],
    'pr50k3_full': ['pr50k3_full_precision', 'pr50k3_full_recall'],
    'is50k': ['is50k_mean', 'is50k_std'],
    'ppl2_wend': ['ppl2_wend'],
}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('calc')
    run_dir = root / 'run'
    run_dir.mkdir()
    (run_dir / 'training_options.json').write_text(json.dumps({'run_dir': str(run_dir)}))
    pkl = write_pickle(make_snapshot(resolution=16), run_dir / 'network-snapshot-000000.pkl')
    data = write_image_folder(root / 'data', 12, resolution=16)
    return dict(root=root, run_dir=run_dir, pkl=pkl, data=data, det_dir=save_tiny_detectors(root / 'detectors'))


def run_cli(workspace, *args, cache='cache'):
    # One thread: tiny networks on a shared CPU run many times faster without OpenMP contention.
    env = dict(os.environ, DNNLIB_CACHE_DIR=str(workspace['root'] / cache), OMP_NUM_THREADS='1',
               **{detectors.OFFLINE_ENV: '1'})
    env.pop(detectors.DETECTOR_DIR_ENV, None)
    return subprocess.run([sys.executable, 'calc_metrics.py', f'--network={workspace["pkl"]}', *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_calc_metrics_writes_official_jsonl(workspace):
    proc = run_cli(workspace, f'--metrics={",".join(RESULT_KEYS)}', f'--data={workspace["data"]}',
                   f'--detector-dir={workspace["det_dir"]}', '--max-samples=10', '--device=cpu')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for metric, keys in RESULT_KEYS.items():
        lines = (workspace['run_dir'] / f'metric-{metric}.jsonl').read_text().splitlines()
        assert len(lines) == 1
        line = json.loads(lines[0])
        assert list(line)[:5] == OFFICIAL_LINE_KEYS and list(line)[-2:] == ['snapshot_pkl', 'timestamp']
        assert line['metric'] == metric and line['num_gpus'] == 1 and line['max_samples'] == 10
        assert line['snapshot_pkl'] == 'network-snapshot-000000.pkl'
        assert list(line['results']) == keys and all(isinstance(v, float) for v in line['results'].values())
        assert set(line['detectors']) <= {'inception-2015-12-05.pt', 'vgg16.pt'} and line['detectors']
    assert 'Dataset options:' in proc.stdout and 'images/s' in proc.stdout
    fid_line = json.loads((workspace['run_dir'] / 'metric-fid50k_full.jsonl').read_text())
    assert json.dumps(fid_line['results']) in proc.stdout  # the line is also printed


@pytest.mark.slow
def test_missing_detector_fails_before_loading_the_network(workspace):
    empty = workspace['root'] / 'no-detectors'
    proc = run_cli(workspace, '--metrics=kid50k_full', f'--data={workspace["data"]}', f'--detector-dir={empty}',
                   '--device=cpu', cache='empty-cache')
    assert proc.returncode == 1
    assert "'inception-2015-12-05.pt'" in proc.stderr
    assert str(empty / 'inception-2015-12-05.pt') in proc.stderr
    assert str(workspace['root'] / 'empty-cache' / 'downloads') in proc.stderr
    assert 'Traceback' not in proc.stderr and 'Loading network' not in proc.stdout


@pytest.mark.slow
def test_two_processes_gather_the_same_real_statistics(workspace, monkeypatch):
    """--gpus=2 on CPU runs two gloo processes; their all-gathered real features equal a single process's."""
    proc = run_cli(workspace, '--metrics=fid50k_full', f'--data={workspace["data"]}', '--gpus=2',
                   f'--detector-dir={workspace["det_dir"]}', '--max-samples=8', '--device=cpu', '--verbose=0',
                   cache='cache-gpus2')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = json.loads((workspace['run_dir'] / 'metric-fid50k_full.jsonl').read_text().splitlines()[-1])
    assert line['num_gpus'] == 2 and line['results']['fid50k_full'] > 0
    folder = workspace['root'] / 'cache-gpus2' / 'gan-metrics'
    (name,) = os.listdir(folder)
    with open(folder / name, 'rb') as f:
        gathered = pickle.load(f)

    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, workspace['det_dir'])
    data = dict(class_name='training.dataset.ImageFolderDataset', path=workspace['data'], resolution=16, xflip=False)
    opts = metric_utils.MetricOptions(dataset_kwargs=data, device='cpu', cache=False, max_samples=8)
    single = metric_utils.compute_feature_stats_for_dataset(opts, detectors.INCEPTION_URL, dict(return_features=True),
                                                            capture_mean_cov=True)
    assert gathered['num_items'] == single.num_items == 8
    np.testing.assert_allclose(gathered['raw_mean'], single.raw_mean, rtol=1e-6)
    np.testing.assert_allclose(gathered['raw_cov'], single.raw_cov, rtol=1e-6)


@pytest.mark.parametrize('args, message', [
    (['--metrics=fid50k_fll'], "did you mean 'fid50k_full'"),
    (['--metrics=fid50k_full', '--gpus=0'], 'use 1 or more'),
    (['--metrics=fid50k_full', '--network=/no/such.pkl'], 'does not exist'),
])
def test_usage_errors(workspace, monkeypatch, args, message):
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, workspace['det_dir'])
    network = [] if any(a.startswith('--network') for a in args) else [f'--network={workspace["pkl"]}']
    result = CliRunner().invoke(calc_metrics.calc_metrics, [*network, *args, '--device=cpu'])
    assert result.exit_code == 2 and message in result.output, result.output


def test_data_needed_when_pickle_has_no_dataset(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, workspace['det_dir'])
    snapshot = make_snapshot(resolution=16)
    snapshot['training_set_kwargs'] = None
    pkl = write_pickle(snapshot, tmp_path / 'bare.pkl')
    result = CliRunner().invoke(calc_metrics.calc_metrics, [f'--network={pkl}', '--device=cpu', '--verbose=0'])
    assert result.exit_code == 2 and '--data' in result.output
    result = CliRunner().invoke(calc_metrics.calc_metrics, [f'--network={workspace["pkl"]}', '--device=cpu'])
    assert result.exit_code == 2 and '/data/x.zip' in result.output  # the pickle's own path does not exist here


def test_metric_listing():
    result = CliRunner().invoke(calc_metrics.calc_metrics, ['--metrics=help'])
    assert result.exit_code == 0
    assert 'pr50k3_full' in result.output and 'Inception Score' in result.output


@pytest.mark.slow
def test_latent_steps_sampling_changes_the_metric_and_is_recorded(workspace, tmp_path):
    """AdvLatGAN -z: the fakes come from moved z, so FID differs from plain sampling; the line says so."""
    common = ['--metrics=fid50k_full', f'--data={workspace["data"]}', f'--detector-dir={workspace["det_dir"]}',
              '--max-samples=10', '--device=cpu']
    pkl = write_pickle(make_snapshot(resolution=16), tmp_path / 'alone.pkl')  # no run dir: printed only
    lines = []
    for extra in ([], ['--latent-steps=5', '--latent-eps=0.5']):
        proc = subprocess.run([sys.executable, 'calc_metrics.py', f'--network={pkl}', *common, *extra], cwd=REPO,
                              env=dict(os.environ, DNNLIB_CACHE_DIR=str(tmp_path / 'cache'), OMP_NUM_THREADS='1',
                                       **{detectors.OFFLINE_ENV: '1'}),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines.append(json.loads(next(l for l in proc.stdout.splitlines() if l.startswith('{"results"'))))
    plain, moved = lines
    assert 'latent_steps' not in plain
    assert moved['latent_steps'] == 5 and moved['latent_eps'] == 0.5
    assert moved['results']['fid50k_full'] != plain['results']['fid50k_full']


@pytest.mark.slow
def test_latent_steps_refuses_path_length_metrics(workspace):
    proc = run_cli(workspace, '--metrics=ppl2_wend', '--latent-steps=3', '--device=cpu')
    assert proc.returncode == 2
    assert 'ppl2_wend' in proc.stderr and '--latent-steps' in proc.stderr
