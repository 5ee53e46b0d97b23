"""`python -m stylegan_plus.cli.fid_folders` (computation in metrics.fid_folders): folder vs folder,
folder vs saved statistics, and writing them."""

import os
import re
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan_plus.cli import fid_folders
from tests.test_legacy import REPO
from tests.metrics.test_metrics_detectors import INCEPTION_FILE, use_tiny_detectors
from tests.metrics.test_metrics_formulas import closed_form_fid
from tests.metrics.test_metrics_pipeline import write_image_folder

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')


@pytest.fixture
def folders(tmp_path, monkeypatch):
    det_dir = use_tiny_detectors(tmp_path, monkeypatch)
    a = write_image_folder(tmp_path / 'a', 10, resolution=16, seed=0)
    b = write_image_folder(tmp_path / 'b' / 'nested', 9, resolution=16, seed=1)
    # A grayscale image of another size: read as RGB, batched on its own.
    PIL.Image.fromarray(np.random.RandomState(3).randint(0, 256, [12, 12]).astype(np.uint8)).save(tmp_path / 'b' / 'z.png')
    return dict(tmp=tmp_path, a=a, b=str(tmp_path / 'b'), det_dir=det_dir)


def independent_stats(det_dir, folder):
    net = torch.jit.load(os.path.join(det_dir, INCEPTION_FILE))
    feats = []
    for root, _dirs, names in sorted(os.walk(folder)):
        for name in sorted(names):
            pixels = np.asarray(PIL.Image.open(os.path.join(root, name)).convert('RGB'))
            feats.append(net(torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None], return_features=True)[0])
    feats = torch.stack(feats).double().numpy()
    return feats.mean(0), np.cov(feats.T, bias=True)


def parse_fid(output):
    return float(re.search(r'FID: ([0-9.eE+-]+)', output).group(1))


@pytest.mark.slow
def test_two_folders_as_a_module_subprocess(folders):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-m', 'stylegan_plus.cli.fid_folders', folders['a'], folders['b'],
                           '--batch=4', '--device=cpu'], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = closed_form_fid(*independent_stats(folders['det_dir'], folders['a']),
                               *independent_stats(folders['det_dir'], folders['b']))
    assert parse_fid(proc.stdout) == pytest.approx(expected, rel=1e-4)
    assert 'images/s' in proc.stdout


def test_saved_statistics_give_the_same_fid(folders):
    stats = folders['tmp'] / 'stats' / 'a.npz'
    result = CliRunner().invoke(fid_folders.main, [folders['a'], f'--save-stats={stats}', '--device=cpu',
                                                   '--verbose=0'])
    assert result.exit_code == 0, result.output
    with np.load(stats) as npz:
        assert sorted(npz.files) == ['mu', 'sigma']
        mu, sigma = independent_stats(folders['det_dir'], folders['a'])
        np.testing.assert_allclose(npz['mu'], mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(npz['sigma'], sigma, rtol=1e-4, atol=1e-6)
    with_folder = CliRunner().invoke(fid_folders.main, [folders['a'], folders['b'], '--device=cpu', '--verbose=0'])
    with_stats = CliRunner().invoke(fid_folders.main, [folders['b'], str(stats), '--device=cpu', '--verbose=0'])
    assert with_stats.exit_code == 0, with_stats.output
    assert parse_fid(with_stats.output) == pytest.approx(parse_fid(with_folder.output), rel=1e-6)


@pytest.mark.parametrize('make_args, message', [
    (lambda f: [f['a']], '--save-stats'),
    (lambda f: [f['a'], str(f['tmp'] / 'bad.npz')], 'cannot read "mu" and "sigma"'),
    (lambda f: [f['a'], f['b'], f'--detector-dir={f["tmp"] / "none"}'], str(os.path.join('none', INCEPTION_FILE))),
])
def test_errors_name_the_problem(folders, make_args, message):
    np.savez(folders['tmp'] / 'bad.npz', mean=np.zeros(3))
    result = CliRunner().invoke(fid_folders.main, [*make_args(folders), '--device=cpu'])
    assert result.exit_code != 0 and message in result.output, result.output
