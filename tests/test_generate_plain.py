"""The inference tools on generators without a mapping network: DCGAN (`--cfg=dcgan`) and the 2-D MLP (`--cfg=toy`).

generate.py renders them as G(z, c) (points as a scatter plot), style_mixing.py, projector.py and
the path-length metrics refuse them with a usage error, and the image metrics of calc_metrics.py
run on them. The snapshots are pickled here in the layout training writes.
"""

import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import generate
import projector
import style_mixing
from metrics import perceptual_path_length
from stylegan_plus.networks import dcgan, mlp
from metrics import detectors
from stylegan_plus.cli import projection
from stylegan_plus.io import images
from tests.test_legacy import REPO, load_pickle, write_pickle
from tests.metrics.test_metrics_detectors import save_tiny_detectors
from tests.metrics.test_metrics_pipeline import write_image_folder

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

NO_SPLIT = 'needs a generator with a mapping/synthesis split (StyleGAN2); this pickle has Generator ('


def plain_snapshot(module, seed=0, **kwargs):
    """Snapshot dict (training_set_kwargs, G, D, G_ema, augment_pipe) of a tiny DCGAN or MLP."""
    torch.manual_seed(seed)
    G_kwargs = {key: kwargs[key] for key in kwargs if key != 'z_dim'}
    G = module.Generator(z_dim=kwargs.get('z_dim', 8), **G_kwargs).eval().requires_grad_(False)
    D = module.Discriminator(**G_kwargs).eval().requires_grad_(False)
    if module is dcgan:
        with torch.no_grad():
            for bn in (m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                bn.running_mean.normal_(0, 0.1)  # away from the (0, 1) defaults, so eval mode matters
                bn.running_var.uniform_(0.5, 2)
            # DCGAN's N(0, 0.02) init renders nearly flat gray; contrast makes pixel comparisons meaningful.
            G.torgb.weight.mul_(30)
            if G.c_dim > 0:
                G.embed.weight.mul_(30)
    return dict(training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path='/data/x.zip',
                                          use_labels=kwargs.get('c_dim', 0) > 0, max_size=10, xflip=False,
                                          resolution=kwargs.get('img_resolution', 1)),
                G=G, D=D, G_ema=G, augment_pipe=None)


@pytest.fixture(scope='module')
def pickles(tmp_path_factory):
    """'dcgan' (16 px gray, 3 classes), 'dcgan_rgb' (16 px RGB, unconditional), 'mlp' (2-D points)."""
    root = tmp_path_factory.mktemp('plain')
    dcgan_kwargs = dict(img_resolution=16, channel_base=128, channel_max=16)
    specs = dict(dcgan=(dcgan, dict(c_dim=3, img_channels=1, **dcgan_kwargs)),
                 dcgan_rgb=(dcgan, dict(c_dim=0, img_channels=3, **dcgan_kwargs)),
                 mlp=(mlp, dict(c_dim=0, z_dim=4, hidden_features=(16, 16))))
    pkls = {name: write_pickle(plain_snapshot(module, **kwargs), root / f'{name}.pkl')
            for name, (module, kwargs) in specs.items()}
    return dict(root=root, **pkls)


def run_tool(script, *args, env_extra=None):
    # One thread: tiny networks on a shared CPU run many times faster without OpenMP contention.
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env_extra or {}))
    return subprocess.run([sys.executable, script, *args, '--device=cpu'], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


def invoke(*args):
    return CliRunner().invoke(generate.generate_images, [*args, '--device=cpu'])


def generator_output(pkl, seeds, class_idx=None):
    """G_ema of the pickle at the official per-seed z draws: float32 [N, ...]."""
    G = load_pickle(pkl)['G_ema']
    z = torch.from_numpy(np.concatenate([images.seed_to_z(seed, G.z_dim) for seed in seeds])).float()
    c = torch.zeros([len(seeds), G.c_dim])
    if class_idx is not None:
        c[:, class_idx] = 1
    with torch.no_grad():
        return G(z, c)


def read_png(path):
    return np.asarray(PIL.Image.open(path))

#----------------------------------------------------------------------------
# generate.py


@pytest.mark.slow
def test_dcgan_images_grid_and_vectors(pickles, tmp_path):
    out = tmp_path / 'out'
    proc = run_tool('generate.py', f'--network={pickles["dcgan"]}', '--seeds=0-4', '--class=2', f'--outdir={out}',
                    '--grid=1', '--noise-mode=random', f'--vector-out={out / "vectors.npz"}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ['grid.png'] + [f'seed{s:04d}.png' for s in range(5)] + \
        ['vectors.npz']
    assert PIL.Image.open(out / 'seed0003.png').mode == 'L'
    expected = images.to_uint8(generator_output(pickles['dcgan'], range(5), class_idx=2))
    got = np.stack([read_png(out / f'seed{s:04d}.png') for s in range(5)])[..., None]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # batched vs per-seed rounding only
    other = images.to_uint8(generator_output(pickles['dcgan'], range(5), class_idx=0))
    assert np.abs(got.astype(int) - other.astype(int)).max() > 1  # the class matters
    assert read_png(out / 'grid.png').shape == (130, 196)  # 5 images -> 3 columns, 2 rows of 64 px, 2 px apart
    with np.load(out / 'vectors.npz') as vectors:
        assert sorted(vectors.files) == ['seeds', 'z']  # no w: DCGAN has no mapping network
        assert vectors['seeds'].tolist() == list(range(5))
        np.testing.assert_array_equal(vectors['z'][4], np.random.RandomState(4).randn(8))


@pytest.mark.parametrize('args, message', [
    (['--trunc=0.7'], ['Invalid value for --trunc: 0.7', 'w_avg', 'only --trunc=1 is accepted', 'DCGAN']),
    (['--projected-w=W'], ['--projected-w', 'mapping/synthesis split (StyleGAN2)', 'Generator (DCGAN']),
])
def test_dcgan_refuses_w_space_options(pickles, tmp_path, args, message):
    np.savez(tmp_path / 'w.npz', w=np.zeros([1, 4, 8], dtype=np.float32))
    args = [arg.replace('=W', f'={tmp_path / "w.npz"}') for arg in args]
    result = invoke(f'--network={pickles["dcgan_rgb"]}', '--seeds=0', f'--outdir={tmp_path / "out"}', *args)
    assert result.exit_code == 2, result.output
    for text in message:
        assert text in result.output
    assert not (tmp_path / 'out' / 'seed0000.png').exists()
    assert invoke(f'--network={pickles["dcgan_rgb"]}', '--seeds=0', '--trunc=1', f'--outdir={tmp_path}').exit_code == 0


def test_dcgan_latent_steps(pickles, tmp_path):
    result = invoke(f'--network={pickles["dcgan_rgb"]}', '--seeds=0-2', '--latent-steps=3', '--latent-eps=0.5',
                    f'--outdir={tmp_path}', f'--vector-out={tmp_path / "vectors.npz"}')
    assert result.exit_code == 0, result.output
    assert '3 latent steps of 0.5: D logit' in result.output
    with np.load(tmp_path / 'vectors.npz') as vectors:
        assert sorted(vectors.files) == ['seeds', 'z', 'z_start']
        np.testing.assert_array_equal(vectors['z_start'][1], np.random.RandomState(1).randn(8))
        moved = np.abs(vectors['z'] - vectors['z_start'])
        assert 0 < moved.max() <= 1.5 + 1e-6
        z_moved = torch.from_numpy(vectors['z']).float()
    # The images are those of the moved z, not of the seeds' draws.
    G = load_pickle(pickles['dcgan_rgb'])['G_ema']
    with torch.no_grad():
        expected = images.to_uint8(G(z_moved, torch.zeros([3, 0])))
    got = np.stack([read_png(tmp_path / f'seed{s:04d}.png') for s in range(3)])
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    drawn = images.to_uint8(generator_output(pickles['dcgan_rgb'], range(3)))
    assert np.abs(got.astype(int) - drawn.astype(int)).max() > 1


@pytest.mark.slow
def test_mlp_points_scatter_plot(pickles, tmp_path):
    out = tmp_path / 'out'
    proc = run_tool('generate.py', f'--network={pickles["mlp"]}', '--seeds=0-199', f'--outdir={out}', '--grid=1',
                    f'--vector-out={out / "vectors.npz"}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'scatter plot points.png already shows every seed' in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ['points.npz', 'points.png', 'vectors.npz']
    with np.load(out / 'points.npz') as npz:
        assert npz['seeds'].tolist() == list(range(200))
        np.testing.assert_allclose(npz['points'], generator_output(pickles['mlp'], range(200)).numpy(), atol=1e-5)
    plot = PIL.Image.open(out / 'points.png')
    assert (plot.size, plot.mode) == ((512, 512), 'RGB')
    blue = (np.asarray(plot) == [31, 119, 180]).all(axis=2)
    assert blue.sum() > 200  # the dots are drawn
    with np.load(out / 'vectors.npz') as vectors:
        assert sorted(vectors.files) == ['seeds', 'z'] and vectors['z'].shape == (200, 4)


def test_mlp_latent_steps_move_the_points(pickles, tmp_path):
    result = invoke(f'--network={pickles["mlp"]}', '--seeds=0-9', '--latent-steps=2', '--latent-eps=0.2',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / 'points.npz') as npz:
        moved = npz['points']
    assert not np.allclose(moved, generator_output(pickles['mlp'], range(10)).numpy(), atol=1e-4)


def test_scatter_plot_checks_its_input():
    pixels = images.scatter_plot(np.array([[0.0, 1.0], [np.inf, 0.0], [2.0, -1.0]]), size=128)
    assert pixels.shape == (128, 128, 3) and pixels.dtype == np.uint8
    with pytest.raises(ValueError, match=r'\[N, 2\].*\[3, 3\]'):
        images.scatter_plot(np.zeros([3, 3]))

#----------------------------------------------------------------------------
# style_mixing.py, projector.py, calc_metrics.py


@pytest.fixture
def offline_detectors(tmp_path, monkeypatch):
    """Tiny test-built detectors as the configured detector folder; no downloads (restored afterwards)."""
    det_dir = save_tiny_detectors(tmp_path / 'detectors')
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, det_dir)
    monkeypatch.setenv(detectors.OFFLINE_ENV, '1')
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    return det_dir


def assert_usage_error(result, *texts):
    """A click usage error (exit code 2, message shown), not an exception escaping as a traceback."""
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    for text in texts:
        assert text in result.output, result.output


def test_style_mixing_refuses_plain_generators(pickles, tmp_path):
    result = CliRunner().invoke(style_mixing.generate_style_mix, [f'--network={pickles["dcgan_rgb"]}', '--rows=0',
                                                                  '--cols=1', f'--outdir={tmp_path}', '--device=cpu'])
    assert_usage_error(result, 'style_mixing.py ' + NO_SPLIT + 'DCGAN')
    assert not list(tmp_path.iterdir())


def test_projector_refuses_plain_generators(pickles, tmp_path, offline_detectors):
    PIL.Image.new('RGB', (16, 16), (200, 30, 30)).save(tmp_path / 'target.png')
    result = CliRunner().invoke(projector.run_projection, [
        f'--network={pickles["mlp"]}', f'--target={tmp_path / "target.png"}', f'--outdir={tmp_path / "out"}',
        '--save-video=0', '--device=cpu'])
    assert_usage_error(result, 'projector.py ' + NO_SPLIT + 'Small fully connected')
    G = load_pickle(pickles['dcgan_rgb'])['G_ema']
    with pytest.raises(ValueError, match='mapping/synthesis split'):
        projection.project(G, torch.zeros([3, 16, 16]), num_steps=1, device='cpu')


@pytest.mark.slow
def test_calc_metrics_image_metrics_run_on_dcgan(pickles, tmp_path):
    data = write_image_folder(tmp_path / 'data', 12, resolution=16)
    det_dir = save_tiny_detectors(tmp_path / 'detectors')
    proc = run_tool('calc_metrics.py', f'--network={pickles["dcgan_rgb"]}', f'--data={data}',
                    f'--detector-dir={det_dir}', '--max-samples=10',
                    '--metrics=fid50k_full,kid50k_full,pr50k3_full,is50k',
                    env_extra={detectors.OFFLINE_ENV: '1', 'DNNLIB_CACHE_DIR': str(tmp_path / 'cache')})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for key in ('"fid50k_full":', '"kid50k_full":', '"pr50k3_full_precision":', '"is50k_mean":'):
        assert key in proc.stdout


def test_calc_metrics_refuses_path_length_on_dcgan(pickles, tmp_path, offline_detectors):
    data = write_image_folder(tmp_path / 'data', 4, resolution=16)
    result = CliRunner().invoke(calc_metrics.calc_metrics, [
        f'--network={pickles["dcgan_rgb"]}', f'--data={data}', '--metrics=ppl2_wend', '--max-samples=4',
        '--device=cpu', '--verbose=0'])
    assert_usage_error(result, 'path-length metrics (ppl*)', 'Generator (DCGAN', 'Image metrics (fid*, kid*')
    G = load_pickle(pickles['mlp'])['G_ema']
    with pytest.raises(ValueError, match='no mapping/synthesis split'):
        perceptual_path_length.check_generator(G)
