"""projector.py on real photos shipped with scikit-image (an FFHQ-like face and an AFHQ-like cat),
with a tiny generator and the test-built VGG16-like detector."""

import os
import re
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from skimage import data as skimage_data  # real photos bundled with scikit-image

from metrics import detectors
from stylegan_plus.cli import projection
from tests.test_legacy import REPO, load_pickle, make_snapshot, write_pickle
from tests.metrics.test_metrics_detectors import TinyVGG16, save_tiny_detectors

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

STEPS = 40


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('proj')
    PIL.Image.fromarray(skimage_data.astronaut()).save(root / 'astronaut.png')         # 512x512 RGB
    PIL.Image.fromarray(skimage_data.chelsea()).save(root / 'chelsea.jpg', quality=95)  # 451x300 RGB
    return dict(root=root, pkl=write_pickle(make_snapshot(resolution=16), root / 'G.pkl'),
                det_dir=save_tiny_detectors(root / 'detectors'))


def run_projector(workspace, *args, env_extra=None):
    # One thread: tiny networks on a shared CPU run many times faster without OpenMP contention.
    env = dict(os.environ, DNNLIB_CACHE_DIR=str(workspace['root'] / 'cache'), OMP_NUM_THREADS='1',
               **{detectors.OFFLINE_ENV: '1'}, **(env_extra or {}))
    cmd = [sys.executable, 'projector.py', f'--network={workspace["pkl"]}', f'--detector-dir={workspace["det_dir"]}',
           '--device=cpu', *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def step_distances(stdout):
    """Per-target lists of the `dist` values printed for every step."""
    runs, current = [], None
    for line in stdout.splitlines():
        match = re.match(r'step +(\d+)/(\d+): dist ([0-9.]+)', line)
        if match:
            if match.group(1) == '1':
                current = []
                runs.append(current)
            current.append(float(match.group(3)))
    return runs


def expected_target(path, crop_box):
    with PIL.Image.open(path) as img:
        return np.asarray(img.convert('RGB').crop(crop_box).resize((16, 16), PIL.Image.LANCZOS))


@pytest.mark.slow
def test_projector_two_photos_writes_every_output(workspace):
    out = workspace['root'] / 'out'
    stdout = run_projector(workspace, f'--target={workspace["root"] / "astronaut.png"}',
                           f'--target={workspace["root"] / "chelsea.jpg"}', f'--num-steps={STEPS}', '--seed=5',
                           f'--outdir={out}')
    G = load_pickle(workspace['pkl'])['G_ema']
    crops = {'astronaut': (0, 0, 512, 512), 'chelsea': (75, 0, 375, 300)}  # center square of 451x300
    sources = {'astronaut': 'astronaut.png', 'chelsea': 'chelsea.jpg'}
    has_video, _notice = projection.video_support()
    for name, crop in crops.items():
        folder = out / name
        assert sorted(os.listdir(folder)) == ['compare.png'] + ['proj.mp4'] * has_video + \
            ['proj.png', 'projected_w.npz', 'target.png']
        np.testing.assert_array_equal(np.asarray(PIL.Image.open(folder / 'target.png')),
                                      expected_target(workspace['root'] / sources[name], crop))
        with np.load(folder / 'projected_w.npz') as npz:
            assert list(npz.files) == ['w']
            w = npz['w']
        assert w.shape == (1, G.num_ws, G.w_dim)
        assert np.allclose(w[0], w[0, :1])  # W, not W+: one vector broadcast to every layer
        rendered = projection.render(G, torch.from_numpy(w))[0]
        np.testing.assert_array_equal(np.asarray(PIL.Image.open(folder / 'proj.png')), rendered)
        compare = np.asarray(PIL.Image.open(folder / 'compare.png'))   # 16 px enlarged 4x, 2 px apart
        assert compare.shape == (64, 64 + 2 + 64, 3)
        np.testing.assert_array_equal(compare[::4, :64:4], np.asarray(PIL.Image.open(folder / 'target.png')))
        np.testing.assert_array_equal(compare[::4, 66::4], rendered)
        if has_video:
            import imageio
            with imageio.get_reader(folder / 'proj.mp4') as video:
                frames = [frame for frame in video]
            assert len(frames) == STEPS and frames[0].shape == (16, 32, 3)

    distances = step_distances(stdout)
    assert [len(d) for d in distances] == [STEPS, STEPS]
    for dist in distances:
        assert np.mean(dist[-5:]) < 0.8 * np.mean(dist[:5]), dist
    assert stdout.count('steps/s') == 2


@pytest.mark.slow
def test_video_notice_without_imageio(workspace, tmp_path):
    blocker = tmp_path / 'blocker' / 'imageio_ffmpeg'
    blocker.mkdir(parents=True)
    (blocker / '__init__.py').write_text('raise ImportError("blocked for the test")\n')
    out = tmp_path / 'out'
    stdout = run_projector(workspace, f'--target={workspace["root"] / "chelsea.jpg"}', '--num-steps=2',
                           f'--outdir={out}', env_extra=dict(PYTHONPATH=str(tmp_path / 'blocker')))
    assert 'pip install imageio imageio-ffmpeg' in stdout
    assert sorted(os.listdir(out)) == ['compare.png', 'proj.png', 'projected_w.npz', 'target.png']


@pytest.mark.slow
def test_projector_missing_detector_names_the_file(workspace, tmp_path):
    env = dict(os.environ, DNNLIB_CACHE_DIR=str(tmp_path / 'cache'), **{detectors.OFFLINE_ENV: '1'})
    proc = subprocess.run([sys.executable, 'projector.py', f'--network={workspace["pkl"]}', f'--outdir={tmp_path}',
                           f'--target={workspace["root"] / "chelsea.jpg"}', f'--detector-dir={tmp_path / "none"}',
                           '--device=cpu'], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and str(tmp_path / 'none' / 'vgg16.pt') in proc.stderr


@pytest.mark.slow
def test_w_plus_gives_one_w_per_layer(workspace):
    G = make_snapshot(resolution=16)['G_ema']
    target = torch.from_numpy(projection.prepare_target(PIL.Image.fromarray(skimage_data.chelsea()), 16, 3))
    target = target.permute(2, 0, 1)
    vgg16 = TinyVGG16()
    ws = {}
    for w_plus in [False, True]:
        torch.manual_seed(0)
        ws[w_plus] = projection.project(G, target, num_steps=6, w_avg_samples=200, device='cpu', w_plus=w_plus,
                                        vgg16=vgg16)
        assert ws[w_plus].shape == (6, G.num_ws, G.w_dim)
    assert torch.equal(ws[False][:, :1].expand_as(ws[False]), ws[False])
    assert not torch.allclose(ws[True][-1, 0], ws[True][-1, -1])


@pytest.mark.parametrize('mode, size', [('L', (40, 30)), ('RGBA', (30, 50)), ('P', (20, 20)), ('RGB', (17, 17))])
def test_prepare_target_handles_any_photo(mode, size):
    rng = np.random.RandomState(0)
    img = PIL.Image.fromarray(rng.randint(0, 256, [size[1], size[0], 3]).astype(np.uint8)).convert(mode)
    rgb = projection.prepare_target(img, 8, 3)
    gray = projection.prepare_target(img, 8, 1)
    assert rgb.shape == (8, 8, 3) and gray.shape == (8, 8, 1) and rgb.dtype == gray.dtype == np.uint8
    if mode == 'L':
        assert (rgb[..., 0] == rgb[..., 1]).all()


def test_prepare_target_puts_transparency_on_white():
    img = PIL.Image.new('RGBA', (10, 10), (0, 0, 0, 0))
    assert (projection.prepare_target(img, 4, 3) == 255).all()


def test_schedule_matches_official_formulas():
    assert projection.learning_rate(0.0) == 0
    assert projection.learning_rate(0.05) == pytest.approx(0.1)
    assert projection.learning_rate(0.5) == pytest.approx(0.1)
    assert projection.learning_rate(0.875) == pytest.approx(0.1 * (0.5 - 0.5 * np.cos(0.5 * np.pi)))
    assert projection.w_noise_scale(0.0, 2.0) == pytest.approx(0.1)
    assert projection.w_noise_scale(0.375, 2.0) == pytest.approx(0.1 * 0.25)
    assert projection.w_noise_scale(0.8, 2.0) == 0


@pytest.mark.parametrize('where', ['file', 'under file'])
def test_outdir_that_is_or_lies_under_a_file(workspace, tmp_path, where):
    import projector
    from click.testing import CliRunner
    blocker = tmp_path / 'taken.txt'
    blocker.write_text('my notes')
    outdir = blocker if where == 'file' else blocker / 'out'
    result = CliRunner().invoke(projector.run_projection, [
        f'--network={workspace["pkl"]}', f'--target={workspace["root"] / "astronaut.png"}', f'--outdir={outdir}',
        '--device=cpu', '--num-steps=1'])
    assert result.exit_code == 2, result.output
    assert '--outdir' in result.output and f"'{outdir}'" in result.output and 'Traceback' not in result.output
    assert blocker.read_text() == 'my notes' and sorted(p.name for p in tmp_path.iterdir()) == ['taken.txt']
