"""generate.py and style_mixing.py as a user runs them, on tiny snapshots written by the test."""

import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
import style_mixing
from stylegan_plus.networks.inference import prepare_generator
from stylegan_plus.io import atomic, images
from tests.test_legacy import REPO, load_pickle, make_snapshot, render, write_pickle


@pytest.fixture(scope='module')
def pickles(tmp_path_factory):
    """Snapshot pickles: 'uncond' (16 px RGB), 'cond' (3 classes), 'fp16' (2 fp16 resolutions), 'gray' (1 channel)."""
    root = tmp_path_factory.mktemp('pickles')
    specs = dict(uncond={}, cond=dict(c_dim=3, seed=1), fp16=dict(num_fp16_res=2, seed=2), gray=dict(img_channels=1))
    return {name: write_pickle(make_snapshot(**kwargs), root / f'{name}.pkl') for name, kwargs in specs.items()}


def run_script(script, *args):
    proc = subprocess.run([sys.executable, script, *args, '--device=cpu'], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def invoke(command, *args):
    return CliRunner().invoke(command, [*args, '--device=cpu'])


def read_png(path):
    return np.asarray(PIL.Image.open(path))


def expected_pixels(pkl, seed, class_idx=None, psi=1.0):
    G = load_pickle(pkl)['G_ema']
    return images.to_uint8(render(G, seed, class_idx=class_idx, psi=psi))[0]

#----------------------------------------------------------------------------
# generate.py

@pytest.mark.slow
def test_generate_seeds_grid_and_vectors(pickles, tmp_path):
    out = tmp_path / 'out'
    stdout = run_script('generate.py', f'--network={pickles["uncond"]}', '--seeds=0-2', '--trunc=0.7',
                        f'--outdir={out}', '--grid=1', f'--vector-out={out / "vectors.npz"}')
    assert 'Generating image for seed 2 (2/3)' in stdout
    assert sorted(p.name for p in out.iterdir()) == ['grid.png', 'seed0000.png', 'seed0001.png', 'seed0002.png',
                                                    'vectors.npz']
    seed1 = PIL.Image.open(out / 'seed0001.png')
    assert (seed1.size, seed1.mode) == ((16, 16), 'RGB')
    np.testing.assert_array_equal(read_png(out / 'seed0001.png'), expected_pixels(pickles['uncond'], 1, psi=0.7))
    grid = read_png(out / 'grid.png')  # 3 images -> 2x2 cells of 64 px (16 px enlarged 4x), 2 px apart on grey
    assert grid.shape == (130, 130, 3)
    np.testing.assert_array_equal(grid[66:, :64:4][::4], read_png(out / 'seed0002.png'))
    np.testing.assert_array_equal(grid[66:70, :4], np.broadcast_to(read_png(out / 'seed0002.png')[0, 0], (4, 4, 3)))
    assert (grid[64:66] == 128).all() and (grid[:, 64:66] == 128).all()   # the gutters
    assert (grid[66:, 66:] == 128).all()                                    # the unused cell
    with np.load(out / 'vectors.npz') as vectors:
        assert sorted(vectors.files) == ['seeds', 'w', 'z']
        assert vectors['seeds'].tolist() == [0, 1, 2]
        np.testing.assert_array_equal(vectors['z'][2], np.random.RandomState(2).randn(8))
        assert vectors['w'].shape == (3, 6, 8)


def test_generate_conditional_class(pickles, tmp_path):
    result = invoke(generate.generate_images, f'--network={pickles["cond"]}', '--seeds=5', '--class=2',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_png(tmp_path / 'seed0005.png'), expected_pixels(pickles['cond'], 5, class_idx=2))
    other = expected_pixels(pickles['cond'], 5, class_idx=0)
    assert not np.array_equal(read_png(tmp_path / 'seed0005.png'), other)  # the label matters


def test_generate_projected_w(pickles, tmp_path):
    ws = torch.randn([2, 6, 8]).numpy()
    np.savez(tmp_path / 'projected_w.npz', w=ws)
    result = invoke(generate.generate_images, f'--network={pickles["uncond"]}', '--seeds=1',
                    f'--projected-w={tmp_path / "projected_w.npz"}', f'--outdir={tmp_path / "out"}')
    assert result.exit_code == 0, result.output
    assert 'warn: --seeds is ignored' in result.output
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['proj00.png', 'proj01.png']
    np.savez(tmp_path / 'bad.npz', w=ws[:, :4])
    result = invoke(generate.generate_images, f'--network={pickles["uncond"]}', f'--projected-w={tmp_path / "bad.npz"}',
                    f'--outdir={tmp_path / "out"}')
    assert result.exit_code == 2 and '[2, 4, 8]' in result.output and '[N, 6, 8]' in result.output


def test_generate_grayscale_and_fp16_on_cpu(pickles, tmp_path):
    result = invoke(generate.generate_images, f'--network={pickles["gray"]}', '--seeds=3', f'--outdir={tmp_path}')
    assert result.exit_code == 0, result.output
    gray = PIL.Image.open(tmp_path / 'seed0003.png')
    assert (gray.size, gray.mode) == ((16, 16), 'L')
    result = invoke(generate.generate_images, f'--network={pickles["fp16"]}', '--seeds=0,1', f'--outdir={tmp_path}')
    assert result.exit_code == 0, result.output
    assert result.output.count('fp32 instead') == 1


def test_prepare_generator_runs_fp16_nets_in_fp32_on_cpu():
    G = make_snapshot(num_fp16_res=2)['G_ema']
    notes = []
    G32 = prepare_generator(G, torch.device('cpu'), log=notes.append)
    assert len(notes) == 1 and G32.init_kwargs.synthesis_kwargs.num_fp16_res == 0
    z, c = torch.randn([2, 8]), torch.zeros([2, 0])
    with torch.no_grad():
        torch.testing.assert_close(G32(z, c, noise_mode='const'), G(z, c, noise_mode='const', force_fp32=True))
    plain = make_snapshot()['G_ema']
    assert prepare_generator(plain, torch.device('cpu'), log=notes.append) is plain and len(notes) == 1


@pytest.mark.parametrize('args, message', [
    ([], '--seeds'),
    (['--seeds=4294967296'], 'seed 4294967296 is out of range: accepted are 0..4294967295'),
    (['--seeds=-1'], 'seed -1 is out of range'),
    (['--seeds=3-1'], "range '3-1' is empty"),
    (['--seeds=1,x'], "'1,x' is not a number list"),
    (['--seeds=0', '--network=/no/such/file.pkl'], "'/no/such/file.pkl' does not exist"),
    (['--seeds=0', '--device=tpu'], "'tpu' is not"),
])
def test_generate_usage_errors(pickles, tmp_path, args, message):
    if not any(a.startswith('--network') for a in args):
        args = args + [f'--network={pickles["uncond"]}']
    result = CliRunner().invoke(generate.generate_images, [*args, f'--outdir={tmp_path}'])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_generate_class_errors(pickles, tmp_path):
    result = invoke(generate.generate_images, f'--network={pickles["cond"]}', '--seeds=0', f'--outdir={tmp_path}')
    assert result.exit_code == 2 and 'conditional with 3 classes' in result.output and '0..2' in result.output
    result = invoke(generate.generate_images, f'--network={pickles["cond"]}', '--seeds=0', '--class=3',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 2 and '3 is out of range' in result.output and '0..2' in result.output
    result = invoke(generate.generate_images, f'--network={pickles["uncond"]}', '--seeds=0', '--class=1',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 0 and 'warn: --class=1 ignored' in result.output


def test_generate_corrupt_pickle(tmp_path):
    (tmp_path / 'broken.pkl').write_bytes(b'\x80\x04garbage')
    result = invoke(generate.generate_images, f'--network={tmp_path / "broken.pkl"}', '--seeds=0',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 2
    assert 'cannot load network pickle' in result.output and 'broken.pkl' in result.output

#----------------------------------------------------------------------------
# style_mixing.py

@pytest.mark.slow
def test_style_mixing_files_and_grid(pickles, tmp_path):
    run_script('style_mixing.py', f'--network={pickles["uncond"]}', '--rows=0,1', '--cols=2,3,4', '--styles=0-2',
               '--trunc=0.8', f'--outdir={tmp_path}')
    names = {p.name for p in tmp_path.iterdir()}
    pairs = {f'{r}-{c}.png' for r in (0, 1) for c in (2, 3, 4)}
    assert names == pairs | {f'{s}-{s}.png' for s in range(5)} | {'grid.png'}
    grid = read_png(tmp_path / 'grid.png')         # 16 px cells enlarged 4x, 2 px apart (images.display_grid)
    assert grid.shape == (64 * 3 + 2 * 2, 64 * 4 + 3 * 2, 3)
    cell = lambda row, col: grid[66 * row:66 * row + 64:4, 66 * col:66 * col + 64:4]  # noqa: E731
    assert not cell(0, 0).any()
    np.testing.assert_array_equal(cell(0, 1), read_png(tmp_path / '2-2.png'))
    np.testing.assert_array_equal(cell(2, 0), read_png(tmp_path / '1-1.png'))
    np.testing.assert_array_equal(cell(2, 3), read_png(tmp_path / '1-4.png'))

    # The mix takes ws 0..2 from the column seed and the rest from the row seed.
    G = load_pickle(pickles['uncond'])['G_ema']
    with torch.no_grad():
        w = [G.mapping(torch.from_numpy(np.random.RandomState(s).randn(1, 8)).float(), None) for s in (1, 4)]
        w = [G.mapping.w_avg + (x - G.mapping.w_avg) * 0.8 for x in w]
        mixed = torch.cat([w[1][:, :3], w[0][:, 3:]], dim=1)
        expected = images.to_uint8(G.synthesis(mixed, noise_mode='const'))[0]
    np.testing.assert_array_equal(read_png(tmp_path / '1-4.png'), expected)


def test_style_mixing_errors(pickles, tmp_path):
    result = invoke(style_mixing.generate_style_mix, f'--network={pickles["uncond"]}', '--rows=0', '--cols=1',
                    '--styles=0-6', f'--outdir={tmp_path}')  # this net has 6 ws
    assert result.exit_code == 2 and 'style index 6 is out of range' in result.output and '0..5' in result.output
    result = invoke(style_mixing.generate_style_mix, f'--network={pickles["cond"]}', '--rows=0', '--cols=1',
                    '--styles=0-1', f'--outdir={tmp_path}')
    assert result.exit_code == 2 and '--class' in result.output
    result = invoke(style_mixing.generate_style_mix, f'--network={pickles["cond"]}', '--rows=0', '--cols=1',
                    '--styles=0-1', '--class=1', f'--outdir={tmp_path}')
    assert result.exit_code == 0, result.output
    assert (tmp_path / '0-1.png').is_file() and (tmp_path / 'grid.png').is_file()
    result = invoke(style_mixing.generate_style_mix, f'--network={tmp_path / "none.pkl"}', '--rows=0', '--cols=1',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 2 and 'none.pkl' in result.output


def test_style_mixing_default_styles_fit_a_small_network(pickles, tmp_path):
    """Without --styles: ws 0-6 limited to the network's 6 ws, so the column seed gives every layer."""
    result = invoke(style_mixing.generate_style_mix, f'--network={pickles["uncond"]}', '--rows=0', '--cols=1',
                    f'--outdir={tmp_path}')
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_png(tmp_path / '0-1.png'), read_png(tmp_path / '1-1.png'))
    assert not np.array_equal(read_png(tmp_path / '0-1.png'), read_png(tmp_path / '0-0.png'))

#----------------------------------------------------------------------------
# Bad values: a usage error naming the value, no traceback, nothing written.

def _tool_args(tool, pickles):
    if tool is generate.generate_images:
        return [f'--network={pickles["uncond"]}', '--seeds=0']
    return [f'--network={pickles["uncond"]}', '--rows=0', '--cols=1', '--styles=0-1']


def _assert_refused(result, *texts):
    assert result.exit_code == 2, result.output
    for text in texts:
        assert text in result.output
    assert 'Traceback' not in result.output
    assert isinstance(result.exception, SystemExit)  # click's usage error, not an exception escaping the tool


@pytest.mark.parametrize('tool', [generate.generate_images, style_mixing.generate_style_mix])
@pytest.mark.parametrize('value', ['nan', 'inf', '-inf', '1e999'])
def test_non_finite_truncation_is_refused(pickles, tmp_path, tool, value):
    out = tmp_path / 'out'
    result = invoke(tool, *_tool_args(tool, pickles), f'--trunc={value}', f'--outdir={out}')
    _assert_refused(result, '--trunc', f"'{value}' is not a finite number")
    assert not out.exists()


@pytest.mark.parametrize('tool', [generate.generate_images, style_mixing.generate_style_mix])
@pytest.mark.parametrize('where', ['file', 'under file'])
def test_outdir_that_is_or_lies_under_a_file(pickles, tmp_path, tool, where):
    blocker = tmp_path / 'taken.txt'
    blocker.write_text('my notes')
    outdir = blocker if where == 'file' else blocker / 'sub' / 'out'
    result = invoke(tool, *_tool_args(tool, pickles), f'--outdir={outdir}')
    expected = 'is a file' if where == 'file' else f"lies under '{blocker}', which is a file"
    _assert_refused(result, '--outdir', f"'{outdir}' {expected}")
    assert blocker.read_text() == 'my notes' and sorted(p.name for p in tmp_path.iterdir()) == ['taken.txt']


def test_vector_out_that_is_a_folder(pickles, tmp_path):
    result = invoke(generate.generate_images, *_tool_args(generate.generate_images, pickles),
                    f'--outdir={tmp_path / "out"}', f'--vector-out={tmp_path}')
    _assert_refused(result, '--vector-out', f"'{tmp_path}' is a folder")
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_bad_outdir_in_a_real_process_has_no_traceback(pickles, tmp_path):
    blocker = tmp_path / 'taken'
    blocker.write_bytes(b'')
    proc = subprocess.run([sys.executable, 'generate.py', f'--network={pickles["uncond"]}', '--seeds=0',
                           f'--outdir={blocker}', '--trunc=0.5', '--device=cpu'], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and f"'{blocker}' is a file" in proc.stderr and 'Traceback' not in proc.stderr


def test_writes_are_atomic(tmp_path):
    target = tmp_path / 'seed0000.png'
    images.save_png(np.full([4, 4, 3], 7, dtype=np.uint8), target)
    before = target.read_bytes()

    def fail_halfway(f):
        f.write(b'\x89PNG half')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        atomic.write_atomic(target, fail_halfway)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ['seed0000.png']
    images.save_npz(tmp_path / 'v', z=np.arange(3))     # the name is kept as given (no .npz appended)
    with np.load(tmp_path / 'v') as npz:
        assert npz['z'].tolist() == [0, 1, 2]
