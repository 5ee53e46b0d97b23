"""dataset_tool.py run as a user runs it (a subprocess from the repo root) on tiny inputs."""

import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from stylegan_plus.data.dataset_convert import archive_name
from training.dataset import ImageFolderDataset

from tests import REPO


def run_tool(*args, env_path=None):
    env = dict(os.environ)
    if env_path is not None:   # modules placed first on the path shadow installed ones
        env['PYTHONPATH'] = os.pathsep.join([str(env_path), env.get('PYTHONPATH', '')])
    cmd = [sys.executable, 'dataset_tool.py', *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def ok(*args, **kwargs):
    result = run_tool(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result


def fails(*args, code=1, **kwargs):
    result = run_tool(*args, **kwargs)
    assert result.returncode == code, (result.stdout, result.stderr)
    return result.stderr


def rand_image(seed, size=(16, 16), channels=3):
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    return np.random.RandomState(seed).randint(0, 256, size=shape, dtype=np.uint8)


def save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = PIL.Image.fromarray(array)
    (img.convert(mode) if mode else img).save(path)


def make_folder(root, names, **kwargs):
    images = {}
    for i, name in enumerate(names):
        images[name] = rand_image(i, **kwargs)
        save(root / name, images[name])
    return images


def listing(dest):
    """Sorted relative file paths of an output folder or zip."""
    if str(dest).endswith('.zip'):
        with zipfile.ZipFile(dest) as zf:
            return sorted(zf.namelist())
    return sorted(p.relative_to(dest).as_posix() for p in Path(dest).rglob('*') if p.is_file())


def read_member(dest, name):
    if str(dest).endswith('.zip'):
        with zipfile.ZipFile(dest) as zf:
            return zf.read(name)
    return (Path(dest) / name).read_bytes()


def read_png(dest, name):
    with PIL.Image.open(io.BytesIO(read_member(dest, name))) as img:
        return img.mode, np.array(img)


def assert_nothing_left(parent, expected):
    """Only the `expected` entries remain in `parent` (no destination, no temporary sibling)."""
    assert sorted(os.listdir(parent)) == sorted(expected)


SRC_NAMES = ['b.png', 'a.jpg.png', 'nested/c.png']


@pytest.mark.slow
@pytest.mark.parametrize('dest_name', ['out', 'out.zip'])
def test_folder_conversion_layout(tmp_path, dest_name):
    images = make_folder(tmp_path / 'src', SRC_NAMES)
    (tmp_path / 'src' / 'readme.txt').write_text('ignored')
    dest = tmp_path / dest_name
    result = ok('--source', tmp_path / 'src', '--dest', dest)
    names = [archive_name(i) for i in range(3)]
    assert listing(dest) == names + ['dataset.json']
    assert read_member(dest, 'dataset.json') == b'{"labels": null}'
    for name, src in zip(names, sorted(SRC_NAMES)):
        mode, pixels = read_png(dest, name)
        assert mode == 'RGB'
        np.testing.assert_array_equal(pixels, images[src])
    if dest_name.endswith('.zip'):
        with zipfile.ZipFile(dest) as zf:
            assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}
    assert 'Done: 3 images written' in result.stdout and '0 skipped' in result.stdout
    ds = ImageFolderDataset(str(dest))
    assert len(ds) == 3 and ds.resolution == 16 and ds.num_channels == 3
    assert_nothing_left(tmp_path, ['src', dest_name])


def test_archive_names():
    assert archive_name(0) == '00000/img00000000.png'
    assert archive_name(999) == '00000/img00000999.png'
    assert archive_name(1000) == '00001/img00001000.png'
    assert archive_name(123456) == '00123/img00123456.png'


@pytest.mark.slow
def test_labels_from_source_json_and_max_images(tmp_path):
    make_folder(tmp_path / 'src', SRC_NAMES, channels=1)
    labels = {'b.png': 2, 'a.jpg.png': 0, 'nested/c.png': 1}
    (tmp_path / 'src' / 'dataset.json').write_text(json.dumps({'labels': list(map(list, labels.items()))}))
    dest = tmp_path / 'out.zip'
    result = ok('--source', tmp_path / 'src', '--dest', dest)
    expected = [[archive_name(i), labels[n]] for i, n in enumerate(sorted(SRC_NAMES))]
    assert json.loads(read_member(dest, 'dataset.json')) == {'labels': expected}
    assert read_png(dest, archive_name(0))[0] == 'L'
    assert '3 labels (3 classes)' in result.stdout
    ds = ImageFolderDataset(str(dest), use_labels=True)
    assert ds.has_onehot_labels and ds.label_dim == 3 and ds.num_channels == 1
    np.testing.assert_array_equal(ds.get_label(0), [1, 0, 0])   # a.jpg.png is class 0

    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'two', '--max-images', 2)
    assert listing(tmp_path / 'two') == [archive_name(0), archive_name(1), 'dataset.json']
    assert json.loads(read_member(tmp_path / 'two', 'dataset.json')) == {'labels': expected[:2]}


@pytest.mark.slow
def test_mixed_label_kinds_are_refused(tmp_path):
    make_folder(tmp_path / 'src', ['a.png', 'b.png'])
    (tmp_path / 'src' / 'dataset.json').write_text(json.dumps({'labels': [['a.png', 1], ['b.png', [0.5, 1.0]]]}))
    err = fails('--source', tmp_path / 'src', '--dest', tmp_path / 'out')
    assert str(tmp_path / 'src' / 'b.png') in err and 'class indices' in err
    assert_nothing_left(tmp_path, ['src'])


@pytest.mark.slow
def test_resize_and_center_crop(tmp_path):
    wide = rand_image(7, size=(24, 16))
    save(tmp_path / 'src' / 'w.png', wide)
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'crop', '--transform', 'center-crop',
       '--width', 8, '--height', 8, '--resize-filter', 'box')
    expected = np.array(PIL.Image.fromarray(wide[:, 4:20]).resize((8, 8), PIL.Image.Resampling.BOX))
    np.testing.assert_array_equal(read_png(tmp_path / 'crop', archive_name(0))[1], expected)

    square = rand_image(8, size=(16, 16))
    save(tmp_path / 'sq' / 's.png', square)
    ok('--source', tmp_path / 'sq', '--dest', tmp_path / 'small.zip', '--width', 4, '--height', 4)
    expected = np.array(PIL.Image.fromarray(square).resize((4, 4), PIL.Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(read_png(tmp_path / 'small.zip', archive_name(0))[1], expected)


@pytest.mark.slow
def test_center_crop_wide_letterboxes(tmp_path):
    save(tmp_path / 'src' / 'w.png', np.full((16, 32, 3), 200, np.uint8))
    save(tmp_path / 'src' / 'tiny.png', np.full((4, 4, 3), 200, np.uint8))
    result = ok('--source', tmp_path / 'src', '--dest', tmp_path / 'out', '--transform', 'center-crop-wide',
                '--width', 16, '--height', 8)
    assert listing(tmp_path / 'out') == [archive_name(0), 'dataset.json']   # tiny.png dropped
    pixels = read_png(tmp_path / 'out', archive_name(0))[1]
    assert pixels.shape == (16, 16, 3)
    assert (pixels[:4] == 0).all() and (pixels[12:] == 0).all() and (pixels[4:12] == 200).all()
    assert 'dropped 1 image' in result.stdout


def make_cifar(path, per_batch=2):
    rng = np.random.RandomState(0)
    data, labels = [], []
    with tarfile.open(path, 'w:gz') as tar:
        for b in range(1, 6):
            batch = {b'data': rng.randint(0, 256, (per_batch, 3072), dtype=np.uint8),
                     b'labels': [int(x) for x in rng.randint(0, 10, per_batch)]}
            data.append(batch[b'data'])
            labels += batch[b'labels']
            blob = pickle.dumps(batch)
            info = tarfile.TarInfo(f'cifar-10-batches-py/data_batch_{b}')
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


@pytest.mark.slow
def test_cifar10_tarball(tmp_path):
    images, labels = make_cifar(tmp_path / 'cifar-10-python.tar.gz')
    dest = tmp_path / 'cifar.zip'
    ok('--source', tmp_path / 'cifar-10-python.tar.gz', '--dest', dest)
    assert listing(dest) == [archive_name(i) for i in range(10)] + ['dataset.json']
    assert json.loads(read_member(dest, 'dataset.json')) == {'labels': [[archive_name(i), labels[i]] for i in range(10)]}
    for i in (0, 9):
        mode, pixels = read_png(dest, archive_name(i))
        assert mode == 'RGB'
        np.testing.assert_array_equal(pixels, images[i])
    assert ImageFolderDataset(str(dest), use_labels=True).has_labels

    (tmp_path / 'empty').mkdir()
    with tarfile.open(tmp_path / 'empty' / 'cifar-10-python.tar.gz', 'w:gz'):
        pass
    err = fails('--source', tmp_path / 'empty' / 'cifar-10-python.tar.gz', '--dest', tmp_path / 'c2.zip')
    assert "'cifar-10-batches-py/data_batch_1' is missing" in err
    assert not (tmp_path / 'c2.zip').exists()


def write_idx(path, magic, array):
    header = magic.to_bytes(4, 'big') + b''.join(n.to_bytes(4, 'big') for n in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_mnist_idx(tmp_path):
    images = np.random.RandomState(1).randint(1, 256, (3, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / 'train-images-idx3-ubyte.gz', 0x803, images)
    dest = tmp_path / 'mnist'
    assert 'labels file' in fails('--source', tmp_path / 'train-images-idx3-ubyte.gz', '--dest', dest)
    assert not dest.exists()
    write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', 0x801, np.array([7, 0, 3]))
    ok('--source', tmp_path / 'train-images-idx3-ubyte.gz', '--dest', dest)
    assert json.loads((dest / 'dataset.json').read_text())['labels'] == [[archive_name(i), v] for i, v in enumerate([7, 0, 3])]
    mode, pixels = read_png(dest, archive_name(1))
    assert mode == 'L' and pixels.shape == (32, 32)
    np.testing.assert_array_equal(pixels[2:30, 2:30], images[1])
    assert pixels[:2].sum() == 0 and pixels[:, 30:].sum() == 0


@pytest.mark.slow
def test_corrupt_image_aborts_and_skip_bad_reports(tmp_path):
    make_folder(tmp_path / 'src', ['a.png', 'c.png'])
    (tmp_path / 'src' / 'b.png').write_bytes(b'not a png at all')
    for dest_name in ['out', 'out.zip']:
        err = fails('--source', tmp_path / 'src', '--dest', tmp_path / dest_name)
        assert str(tmp_path / 'src' / 'b.png') in err and '--skip-bad' in err
    assert_nothing_left(tmp_path, ['src'])

    result = ok('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip', '--skip-bad')
    assert f'Skipped {tmp_path / "src" / "b.png"}: cannot read image' in result.stdout
    assert 'Done: 2 images written' in result.stdout and '1 skipped' in result.stdout
    assert listing(tmp_path / 'out.zip') == [archive_name(0), archive_name(1), 'dataset.json']


@pytest.mark.slow
@pytest.mark.parametrize('case', ['mixed', 'npot', 'nonsquare'])
def test_bad_sets_leave_no_destination(tmp_path, case):
    save(tmp_path / 'src' / 'a.png', rand_image(0, size=(16, 16)))
    bad = {'mixed': rand_image(1, size=(8, 8)), 'npot': rand_image(1, size=(16, 16)),
           'nonsquare': rand_image(1, size=(16, 16))}[case]
    if case == 'npot':
        save(tmp_path / 'src' / 'a.png', rand_image(0, size=(12, 12)))
    if case == 'nonsquare':
        save(tmp_path / 'src' / 'a.png', rand_image(0, size=(16, 8)))
    save(tmp_path / 'src' / 'b.png', bad)
    err = fails('--source', tmp_path / 'src', '--dest', tmp_path / 'deep' / 'out.zip')
    named = {'mixed': 'b.png', 'npot': 'a.png', 'nonsquare': 'a.png'}[case]
    assert str(tmp_path / 'src' / named) in err
    assert {'mixed': 'size and channels', 'npot': 'not a power of two', 'nonsquare': 'must be square'}[case] in err
    assert_nothing_left(tmp_path, ['src'])


@pytest.mark.slow
def test_non_empty_dest_is_refused(tmp_path):
    make_folder(tmp_path / 'src', ['a.png'])
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'keep.txt').write_text('precious')
    assert 'must be empty' in fails('--source', tmp_path / 'src', '--dest', tmp_path / 'out')
    assert listing(tmp_path / 'out') == ['keep.txt']
    assert_nothing_left(tmp_path, ['src', 'out'])
    (tmp_path / 'empty').mkdir()
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'empty')
    assert listing(tmp_path / 'empty') == [archive_name(0), 'dataset.json']


@pytest.mark.slow
def test_subfolders_as_labels(tmp_path):
    make_folder(tmp_path / 'src', ['dog/1.png', 'cat/x/2.png', 'cat/3.png', 'emu/4.png'])
    dest = tmp_path / 'out.zip'
    result = ok('--source', tmp_path / 'src', '--dest', dest, '--subfolders-as-labels')
    assert 'Class indices from sub-folders: 0=cat, 1=dog, 2=emu' in result.stdout
    assert '4 labels (3 classes)' in result.stdout
    meta = json.loads(read_member(dest, 'dataset.json'))
    assert meta == {'labels': [[archive_name(i), c] for i, c in enumerate([0, 0, 1, 2])],
                    'class_names': ['cat', 'dog', 'emu']}
    ds = ImageFolderDataset(str(dest), use_labels=True)
    assert ds.label_dim == 3

    save(tmp_path / 'src' / 'loose.png', rand_image(5))
    assert 'loose.png' in fails('--source', tmp_path / 'src', '--dest', tmp_path / 'o2', '--subfolders-as-labels')


@pytest.mark.slow
def test_rgba_and_palette_are_converted(tmp_path):
    rgba = rand_image(0, channels=4)
    save(tmp_path / 'src' / 'a.png', rgba)
    save(tmp_path / 'src' / 'b.png', rand_image(1), mode='P')
    save(tmp_path / 'src' / 'c.png', rand_image(2))
    result = ok('--source', tmp_path / 'src', '--dest', tmp_path / 'out')
    assert result.stdout.count('Notice: converted') == 1
    assert 'converted 2 image(s) to RGB or L (P: 1, RGBA: 1)' in result.stdout
    assert '2 converted' in result.stdout
    mode, pixels = read_png(tmp_path / 'out', archive_name(0))
    assert mode == 'RGB'
    np.testing.assert_array_equal(pixels, rgba[:, :, :3])


@pytest.mark.slow
def test_option_errors_are_usage_errors(tmp_path):
    make_folder(tmp_path / 'src', ['a.png'])
    dest = tmp_path / 'out'
    assert 'needs the output size: --resolution=WxH, or both --width and --height' in ' '.join(
        fails('--source', tmp_path / 'src', '--dest', dest, '--transform', 'center-crop', '--width', 8, code=2).split())
    assert '--width 24 is not a power of two' in fails('--source', tmp_path / 'src', '--dest', dest,
                                                       '--width', 24, '--height', 24, code=2)
    assert "'bicubic' is not one of" in fails('--source', tmp_path / 'src', '--dest', dest,
                                             '--resize-filter', 'bicubic', code=2)
    assert 'no such file or folder' in fails('--source', tmp_path / 'nope', '--dest', dest)
    assert_nothing_left(tmp_path, ['src'])


@pytest.mark.slow
def test_lsun_without_packages(tmp_path):
    stubs = tmp_path / 'stubs'
    stubs.mkdir()
    for module in ['lmdb', 'cv2']:
        (stubs / f'{module}.py').write_text(f'raise ImportError("No module named {module!r}")\n')
    (tmp_path / 'cat_lmdb').mkdir()
    err = fails('--source', tmp_path / 'cat_lmdb', '--dest', tmp_path / 'out.zip', env_path=stubs)
    assert '"lmdb"' in err and '"opencv-python"' in err and 'pip install lmdb opencv-python' in err
    assert_nothing_left(tmp_path, ['stubs', 'cat_lmdb'])


# Minimal stand-ins for the lmdb and cv2 APIs that the LSUN reader uses; the "database" is a
# pickled list of (key, value) pairs inside the lmdb folder.
FAKE_LMDB = '''
import io, os, pickle
class _Txn:
    def __init__(self, rows): self.rows = rows
    def __enter__(self): return self
    def __exit__(self, *exc): pass
    def cursor(self): return iter(self.rows)
class _Env:
    def __init__(self, path):
        with io.open(os.path.join(path, "rows.pkl"), "rb") as f: self.rows = pickle.load(f)
    def stat(self): return {"entries": len(self.rows)}
    def begin(self, write=False): return _Txn(self.rows)
    def close(self): pass
def open(path, **kwargs): return _Env(path)
'''
FAKE_CV2 = '''
import io
import numpy as np, PIL.Image
IMREAD_COLOR, COLOR_BGR2RGB = 1, 4
def imdecode(buf, flags):
    try: return np.array(PIL.Image.open(io.BytesIO(buf.tobytes())).convert("RGB"))[:, :, ::-1]
    except Exception: return None
def cvtColor(img, code): return np.ascontiguousarray(img[:, :, ::-1])
'''


@pytest.mark.slow
def test_lsun_reader_with_stand_in_packages(tmp_path):
    stubs = tmp_path / 'stubs'
    stubs.mkdir()
    (stubs / 'lmdb.py').write_text(FAKE_LMDB)
    (stubs / 'cv2.py').write_text(FAKE_CV2)
    images = [rand_image(i, size=(16, 16)) for i in range(2)]
    rows = []
    for i, img in enumerate(images):
        buf = io.BytesIO()
        PIL.Image.fromarray(img).save(buf, format='png')
        rows.append((f'key{i}'.encode(), buf.getvalue()))
    rows.insert(1, (b'broken', b'garbage'))
    (tmp_path / 'cat_lmdb').mkdir()
    (tmp_path / 'cat_lmdb' / 'rows.pkl').write_bytes(pickle.dumps(rows))
    dest = tmp_path / 'out.zip'
    result = ok('--source', tmp_path / 'cat_lmdb', '--dest', dest, env_path=stubs)
    assert 'Skipped' in result.stdout and '1 skipped' in result.stdout   # LSUN skips bad entries
    assert listing(dest) == [archive_name(0), archive_name(1), 'dataset.json']
    for i, img in enumerate(images):
        np.testing.assert_array_equal(read_png(dest, archive_name(i))[1], img)


def no_traceback(err):
    assert 'Traceback' not in err
    return ' '.join(err.split())    # click wraps long lines


@pytest.mark.slow
def test_existing_zip_is_kept_unless_overwrite(tmp_path):
    make_folder(tmp_path / 'src', ['a.png', 'b.png'])
    dest = tmp_path / 'out.zip'
    dest.write_bytes(b'precious')
    err = no_traceback(fails('--source', tmp_path / 'src', '--dest', dest))
    assert f'--dest {dest}: the file exists and is kept; add --overwrite to replace it' in err
    assert dest.read_bytes() == b'precious'
    assert_nothing_left(tmp_path, ['src', 'out.zip'])
    ok('--source', tmp_path / 'src', '--dest', dest, '--overwrite')
    assert listing(dest) == [archive_name(0), archive_name(1), 'dataset.json']
    assert_nothing_left(tmp_path, ['src', 'out.zip'])


def test_zip_created_during_the_conversion_is_not_replaced(tmp_path):
    from stylegan_plus.data import dataset_writer # pylint: disable=import-outside-toplevel
    make_folder(tmp_path / 'src', ['a.png'])
    dest = tmp_path / 'out.zip'
    writer = dataset_writer.DatasetWriter(str(dest))
    writer.add(archive_name(0), b'x')
    dest.write_bytes(b'arrived meanwhile')
    with pytest.raises(dataset_writer.DatasetToolError, match='the file exists and is kept'):
        with writer:
            writer.commit()
    assert dest.read_bytes() == b'arrived meanwhile'
    assert_nothing_left(tmp_path, ['src', 'out.zip'])


@pytest.mark.slow
@pytest.mark.parametrize('name', ['x.tar', 'x.tar.gz', 'images.png', 'cifar10.v2'])
def test_unsupported_extensions_are_refused(tmp_path, name):
    make_folder(tmp_path / 'src', ['a.png'])
    ext = os.path.splitext(name)[1]
    err = no_traceback(fails('--source', tmp_path / 'src', '--dest', tmp_path / name, code=2))
    assert f"{tmp_path / name}: dataset_tool writes a .zip file or a folder, not '{ext}'" in err
    assert f'end it with a slash ({tmp_path / name}{os.sep})' in err
    assert_nothing_left(tmp_path, ['src'])


@pytest.mark.slow
def test_trailing_slash_and_existing_folders_keep_their_names(tmp_path):
    make_folder(tmp_path / 'src', ['a.png'])
    ok('--source', tmp_path / 'src', '--dest', f'{tmp_path / "x.tar"}{os.sep}')
    assert listing(tmp_path / 'x.tar') == [archive_name(0), 'dataset.json']
    (tmp_path / 'set.v2').mkdir()
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'set.v2')
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'ffhq-1.0')     # '.0' is no extension
    assert_nothing_left(tmp_path, ['src', 'x.tar', 'set.v2', 'ffhq-1.0'])


@pytest.mark.slow
@pytest.mark.parametrize('dest_name', ['out.zip', 'out'])
def test_destination_under_a_file_names_that_file(tmp_path, dest_name):
    make_folder(tmp_path / 'src', ['a.png'])
    (tmp_path / 'notes.txt').write_text('keep')
    dest = tmp_path / 'notes.txt' / 'deeper' / dest_name
    err = no_traceback(fails('--source', tmp_path / 'src', '--dest', dest))
    assert f'--dest {dest}: cannot be created inside {tmp_path / "notes.txt"}, which is a file, not a folder' in err
    assert (tmp_path / 'notes.txt').read_text() == 'keep'
    assert_nothing_left(tmp_path, ['src', 'notes.txt'])


@pytest.mark.slow
def test_resolution_is_width_and_height(tmp_path):
    make_folder(tmp_path / 'src', ['a.png', 'b.png'], size=(16, 12))
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'r.zip', '--transform', 'center-crop',
       '--resolution', '8x8')
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'wh.zip', '--transform', 'center-crop',
       '--width', 8, '--height', 8, '--resolution=8X8')     # both spellings, agreeing
    for name in (archive_name(0), archive_name(1)):
        assert read_member(tmp_path / 'r.zip', name) == read_member(tmp_path / 'wh.zip', name)
        assert read_png(tmp_path / 'r.zip', name)[1].shape == (8, 8, 3)
    err = no_traceback(fails('--source', tmp_path / 'src', '--dest', tmp_path / 'x.zip', '--resolution=8x8',
                             '--width=16', code=2))
    assert '--resolution=8x8 and --width=16 disagree' in err
    err = no_traceback(fails('--source', tmp_path / 'src', '--dest', tmp_path / 'x.zip', '--resolution=big',
                             code=2))
    assert "'big' is not a size; expected WIDTHxHEIGHT such as 256x256" in err
    assert_nothing_left(tmp_path, ['src', 'r.zip', 'wh.zip'])


def test_parse_resolution():
    # pylint: disable-next=import-outside-toplevel
    from stylegan_plus.data.dataset_transforms import OptionError, merge_resolution, parse_resolution
    assert parse_resolution('512x384') == (512, 384) and parse_resolution(' 64 X 64 ') == (64, 64)
    assert parse_resolution('32') == (32, 32) and parse_resolution('16,8') == (16, 8)
    for bad in ('0x4', '4x', 'x4', '4x4x4', '-4', ''):
        with pytest.raises(OptionError):
            parse_resolution(bad)
    assert merge_resolution(None, 8, None) == (8, None) and merge_resolution((8, 8), 8, None) == (8, 8)
