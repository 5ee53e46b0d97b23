"""Bad images are found when an image dataset opens (issue 15 item 4), in folders and zips.

The start-up check reads headers only; these tests cover each problem it reports (truncated,
wrong size, wrong mode, unsupported mode, unreadable), `skip_bad`, errors raised later while
decoding (also from DataLoader workers), and train.py end to end: clean errors naming the files,
`--skip-bad` training, and a file going bad in the middle of a run.
"""

import io
import os
import pickle
import subprocess
import sys
import time
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from stylegan_plus.data.datasets import image_check
from tests.stylegan_plus.training.test_train_utils import REPO, load_pickle, make_image_dataset, only_run_dir, run_train
from training.dataset import DatasetError, ImageFolderDataset

RES = 8


def _png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array).save(path)


def _truncate(path, keep=0.5):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


def _rgb(seed, res=RES):
    return np.random.RandomState(seed).randint(0, 256, size=(res, res, 3), dtype=np.uint8)


def _as_zip(folder, zip_path, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(zip_path, 'w', compression=compression) as zf:
        for name in sorted(os.listdir(folder)):
            zf.write(os.path.join(folder, name), name)
    return str(zip_path)


@pytest.fixture
def mixed(tmp_path):
    """Six good RGB images plus one of each problem: truncated, wrong size, grayscale."""
    root = tmp_path / 'mixed'
    for idx in range(6):
        _png(str(root / f'good{idx}.png'), _rgb(idx))
    _png(str(root / 'cut.png'), _rgb(10))
    _truncate(str(root / 'cut.png'))
    _png(str(root / 'narrow.png'), _rgb(11)[:, :6])
    _png(str(root / 'gray.png'), _rgb(12)[:, :, 0])
    return root


PROBLEMS = {
    'cut.png': 'truncated/unreadable (the PNG end chunk is missing)',
    'narrow.png': 'size 6x8, expected 8x8',
    'gray.png': 'mode L among RGB images',
}


@pytest.fixture(params=['dir', 'zip-stored', 'zip-deflated'])
def mixed_source(request, mixed, tmp_path):
    if request.param == 'dir':
        return str(mixed)
    compression = zipfile.ZIP_STORED if request.param == 'zip-stored' else zipfile.ZIP_DEFLATED
    return _as_zip(mixed, tmp_path / 'mixed.zip', compression)


def test_every_bad_file_is_listed_in_one_error(mixed_source):
    with pytest.raises(DatasetError) as info:
        ImageFolderDataset(mixed_source)
    message = str(info.value)
    assert message.startswith(f'{mixed_source}: 3 of 9 image files cannot be used:\n')
    for name, problem in PROBLEMS.items():
        assert f'\n  {name}: {problem}' in message
    assert 'good' not in message and 'skip_bad=True' in message and 'other 6 image' in message


def test_skip_bad_keeps_the_good_files_and_says_so_once(mixed_source, capsys):
    ds = ImageFolderDataset(mixed_source, skip_bad=True)
    assert len(ds) == 6 and ds.image_shape == [3, RES, RES]
    assert dict(ds.skipped_files) == PROBLEMS
    np.testing.assert_array_equal(ds[0][0], _rgb(0).transpose(2, 0, 1))   # good0.png
    out = capsys.readouterr().out
    assert out.startswith(f'{mixed_source}: skipping 3 of 9 image files (--skip-bad); using 6:\n')
    assert all(f'  {name}: {problem}' in out for name, problem in PROBLEMS.items())
    ImageFolderDataset(mixed_source, skip_bad=True)
    assert capsys.readouterr().out == ''          # said once per process


def test_majority_decides_and_ties_go_to_the_first_file(tmp_path):
    root = tmp_path / 'gray'
    for idx in range(3):
        _png(str(root / f'g{idx}.png'), _rgb(idx)[:, :, 0])
    _png(str(root / 'z_color.png'), _rgb(5))
    with pytest.raises(DatasetError, match=r'z_color\.png: mode RGB among L images'):
        ImageFolderDataset(str(root))
    assert ImageFolderDataset(str(root), skip_bad=True).num_channels == 1

    tie = tmp_path / 'tie'
    _png(str(tie / 'a.png'), _rgb(0, res=4))
    _png(str(tie / 'b.png'), _rgb(1))
    with pytest.raises(DatasetError, match=r'b\.png: size 8x8, expected 4x4'):
        ImageFolderDataset(str(tie))


def test_unsupported_and_unreadable_files(tmp_path):
    root = tmp_path / 'odd'
    for idx in range(2):
        _png(str(root / f'ok{idx}.png'), _rgb(idx))
    PIL.Image.fromarray(np.zeros((RES, RES), np.uint16)).save(str(root / 'deep.png'))
    (root / 'fake.png').write_bytes(b'not an image at all')
    (root / 'header_only.png').write_bytes((root / 'ok0.png').read_bytes()[:20])
    with pytest.raises(DatasetError) as info:
        ImageFolderDataset(str(root))
    message = str(info.value)
    assert 'deep.png: mode I;16 is not 8-bit' in message
    assert 'fake.png: truncated/unreadable (UnidentifiedImageError' in message
    assert 'header_only.png: truncated/unreadable' in message


def test_nothing_readable_and_format_errors(tmp_path):
    root = tmp_path / 'none'
    root.mkdir()
    (root / 'a.png').write_bytes(b'x')
    (root / 'b.jpg').write_bytes(b'y')
    with pytest.raises(DatasetError, match=r'none of the 2 image files can be read:\n  a\.png: .*\n  b\.jpg: '):
        ImageFolderDataset(str(root), skip_bad=True)
    _png(str(tmp_path / 'rect' / 'r.png'), _rgb(0)[:4])
    with pytest.raises(DatasetError, match=r'square, found 8x4 \(r\.png\)'):
        ImageFolderDataset(str(tmp_path / 'rect'))


def test_png_end_check_reads_only_the_tail_of_stored_zip_members(tmp_path, monkeypatch):
    root = tmp_path / 'big'
    _png(str(root / 'a.png'), np.random.RandomState(0).randint(0, 256, (256, 256, 3), dtype=np.uint8))
    path = _as_zip(root, tmp_path / 'big.zip')
    with zipfile.ZipFile(path) as zf, open(path, 'rb') as archive:
        info = zf.getinfo('a.png')
        member = zf.read('a.png')
        assert image_check.stored_member_tail(archive, info, 100) == member[-100:]
        assert image_check.stored_member_tail(archive, info, 10 ** 9) == member
    # The check must not read the member through zipfile (which would read all of it).
    monkeypatch.setattr(image_check, 'stream_tail', lambda *args: pytest.fail('read through zipfile'))
    assert len(ImageFolderDataset(path)) == 1


def test_trailing_bytes_after_the_png_end_are_tolerated(tmp_path):
    root = tmp_path / 'tail'
    _png(str(root / 'a.png'), _rgb(0))
    with open(root / 'a.png', 'ab') as f:
        f.write(b'\0' * 1000)
    assert len(ImageFolderDataset(str(root))) == 1
    header = image_check.read_header(io.BytesIO((root / 'a.png').read_bytes()), 'a.png')
    assert (header.width, header.height, header.mode, header.problem, header.channels) == (RES, RES, 'RGB', '', 3)


def test_decode_error_later_names_the_file_also_from_a_worker(tmp_path):
    root = tmp_path / 'later'
    for idx in range(4):
        _png(str(root / f'{idx}.png'), _rgb(idx))
    ds = ImageFolderDataset(str(root))
    _truncate(str(root / '2.png'), keep=0.8)      # header intact, pixel data cut
    expected = f'{os.path.join(str(root), "2.png")}: cannot decode image'
    with pytest.raises(DatasetError, match='cannot decode') as direct:
        ds[2]
    assert str(direct.value).startswith(expected)
    loader = torch.utils.data.DataLoader(pickle.loads(pickle.dumps(ds)), batch_size=4, num_workers=1)
    with pytest.raises(DatasetError) as from_worker:
        next(iter(loader))
    # torch puts the worker's traceback into the message; only the original text is kept.
    assert str(from_worker.value) == str(direct.value)
    assert 'Traceback' not in str(from_worker.value)


# ---- train.py ------------------------------------------------------------------------------------

TRAIN_ARGS = ['--cfg=dcgan', '--cbase=128', '--batch=8', '--metrics=none', '--device=cpu', '--workers=1']


def _break(root, problem):
    name = '00000/img00000003.png'
    path = os.path.join(root, name)
    if problem == 'truncated':
        _truncate(path)
    elif problem == 'size':
        _png(path, _rgb(0, res=16)[:, :12])
    else:
        _png(path, _rgb(0, res=16)[:, :, 0])
    return name


@pytest.mark.slow
@pytest.mark.parametrize('problem, text', [('truncated', 'truncated/unreadable'), ('size', 'size 12x16, expected 16x16'),
                                           ('gray', 'mode L among RGB images')])
def test_train_stops_before_starting_and_names_the_file(tmp_path, problem, text):
    data = make_image_dataset(tmp_path / 'data', count=8)
    name = _break(data, problem)
    outdir = tmp_path / 'runs'
    result = run_train(f'--outdir={outdir}', f'--data={data}', '--nimg=16', *TRAIN_ARGS)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f'  {name}: {text}' in output and '1 of 8 image files cannot be used' in output
    assert '--skip-bad' in output and 'Traceback' not in output
    assert not outdir.exists() or not os.listdir(outdir)     # no run folder was started


@pytest.mark.slow
def test_train_skip_bad_trains_on_the_good_images(tmp_path):
    data = make_image_dataset(tmp_path / 'data', count=8)
    name = _break(data, 'truncated')
    result = run_train(f'--outdir={tmp_path / "runs"}', f'--data={data}', '--nimg=16', '--skip-bad', *TRAIN_ARGS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f'{data}: skipping 1 of 8 image files (--skip-bad); using 7:\n  {name}: truncated' in output
    assert 'Traceback' not in output
    run_dir = only_run_dir(tmp_path / 'runs')
    assert 'Number of items: 7;' in open(os.path.join(run_dir, 'log.txt')).read()
    kwargs = load_pickle(os.path.join(run_dir, 'network-snapshot-000000.pkl'))['training_set_kwargs']
    assert kwargs['skip_bad'] is True and kwargs['max_size'] == 7


@pytest.mark.slow
def test_file_going_bad_during_training_stops_cleanly(tmp_path):
    data = make_image_dataset(tmp_path / 'data', count=16)
    outdir = tmp_path / 'runs'
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    # Long enough that the file is read again after it was cut; the error ends the run early.
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data}',
                             '--nimg=100000', '--snap=100000', *TRAIN_ARGS], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while not (outdir.exists() and os.listdir(outdir)
                   and os.path.exists(os.path.join(only_run_dir(outdir), 'training-state-000000.pt'))):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        bad = os.path.join(data, '00000', 'img00000005.png')
        _truncate(bad)
        output = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output
    assert f'Error: {bad}: cannot decode image' in output and 'Training stopped.' in output
    assert 'Traceback' not in output
    run_dir = only_run_dir(outdir)
    assert f'{bad}: cannot decode image' in open(os.path.join(run_dir, 'log.txt')).read()
    assert not [n for n in os.listdir(run_dir) if '.tmp' in n]
    assert load_pickle(os.path.join(run_dir, 'network-snapshot-000000.pkl'))['G'] is not None
