"""Helpers for the train.py tests, and unit tests of the small training modules.

Covers the resumable sampler (same order as InfiniteSampler, exact restart), atomic snapshot
writes, finding the newest snapshot, snapshot grid rules and the digits data-set builder (the
loss plots: test_plot_stats.py).
"""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from stylegan_plus.data import make_digits
import dnnlib
from stylegan_plus.io import atomic, images as image_files
from stylegan_plus.training import data as data_lib, grids, progress, resume as resume_lib, snapshots
from stylegan_plus.data.dataset import ImageFolderDataset
from torch_utils import misc
import tests

REPO = str(tests.REPO)

# --- helpers shared by the test_train_* files -------------------------------------------------


def make_image_dataset(root, count=24, resolution=16, channels=3, labels=None, seed=0):
    """A folder data set of random images (uint8 PNGs) with an optional int label per image."""
    rnd = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, '00000'), exist_ok=True)
    entries = []
    for idx in range(count):
        shape = (resolution, resolution, channels) if channels == 3 else (resolution, resolution)
        name = f'00000/img{idx:08d}.png'
        PIL.Image.fromarray(rnd.randint(0, 256, size=shape).astype(np.uint8)).save(os.path.join(root, name))
        entries.append([name, int(labels[idx])] if labels is not None else None)
    with open(os.path.join(root, 'dataset.json'), 'w') as f:
        json.dump({'labels': entries if labels is not None else None}, f)
    return str(root)


def make_point_dataset(path, count=256, seed=0):
    """A .npy file of 2-D points on a ring of 8 Gaussians."""
    rnd = np.random.RandomState(seed)
    angles = rnd.randint(8, size=count) * (2 * np.pi / 8)
    points = np.stack([2 * np.cos(angles), 2 * np.sin(angles)], axis=1) + 0.05 * rnd.randn(count, 2)
    np.save(path, points.astype(np.float32))
    return str(path)


def run_train(*args, timeout=300):
    """Run train.py in a subprocess from the repository root; returns CompletedProcess (text)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.run([sys.executable, os.path.join(REPO, 'train.py'), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def only_run_dir(outdir):
    runs = sorted(d for d in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, d)))
    return os.path.join(outdir, runs[-1])


def load_pickle(path):
    from stylegan_plus.io.legacy_tf import load_network_pkl # pylint: disable=import-outside-toplevel
    with open(path, 'rb') as f:
        return load_network_pkl(f)


def max_weight_difference(a, b):
    """Largest absolute difference over all same-named parameters/buffers of two modules."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].numel())

# --- unit tests -----------------------------------------------------------------------------------


class _Sized:
    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


@pytest.mark.parametrize('size,replicas', [(37, 1), (50, 2), (3, 1)])
def test_sampler_matches_official_order_and_restarts_exactly(size, replicas):
    for rank in range(replicas):
        reference = list(itertools.islice(misc.InfiniteSampler(_Sized(size), rank=rank, num_replicas=replicas,
                                                               seed=7), 400))
        sampler = data_lib.ResumableSampler(_Sized(size), rank=rank, num_replicas=replicas, seed=7, stride=8,
                                            history=16)
        stream = iter(sampler)
        assert [next(stream) for _ in range(400)] == reference
        # The loader runs ahead: recover a boundary a few batches behind the read position.
        position = 8 * ((400 * replicas) // 8 - 3)
        state = sampler.state_at(position)
        restarted = data_lib.ResumableSampler(_Sized(size), rank=rank, num_replicas=replicas, seed=7, stride=8,
                                              state=state)
        skip = len([p for p in range(position) if p % replicas == rank])
        longer = list(itertools.islice(misc.InfiniteSampler(_Sized(size), rank=rank, num_replicas=replicas, seed=7),
                                       skip + 50))
        assert list(itertools.islice(iter(restarted), 50)) == longer[skip:]
        with pytest.raises(RuntimeError, match='recoverable'):
            sampler.state_at(8)


def test_rank_slices_take_each_process_block():
    z = torch.arange(24).reshape(12, 2)     # 2 executions x batch 6
    assert [t[:, 0].tolist() for t in data_lib.rank_slices(z, 2, 3, 1)] == [[4, 6], [16, 18]]
    assert torch.equal(torch.cat(data_lib.rank_slices(z, 2, 1, 0)), z)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / 'network-snapshot-000004.pkl'
    snapshots.write_snapshot(str(path), {'a': 1})

    def crash(_f):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(str(path), crash)
    assert load_plain_pickle(path) == {'a': 1}
    assert os.listdir(tmp_path) == [path.name]      # no temporary file left behind
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)


def load_plain_pickle(path):
    import pickle # pylint: disable=import-outside-toplevel
    with open(path, 'rb') as f:
        return pickle.load(f)


def test_find_latest_snapshot_and_state_file(tmp_path):
    assert resume_lib.find_latest_snapshot(str(tmp_path)) is None
    for run, kimg in [('00000-a', 8), ('00001-b', 2), ('00001-b', 4), ('00002-c', None)]:
        os.makedirs(tmp_path / run, exist_ok=True)
        if kimg is not None:
            (tmp_path / run / f'network-snapshot-{kimg:06d}.pkl').write_bytes(b'x')
    latest = resume_lib.find_latest_snapshot(str(tmp_path))
    assert latest == str(tmp_path / '00001-b' / 'network-snapshot-000004.pkl')
    assert snapshots.state_name_for(latest).endswith('00001-b/training-state-000004.pt')
    assert resume_lib.state_file_for(latest) is None
    (tmp_path / '00001-b' / 'training-state-000004.pt').write_bytes(b'x')
    assert resume_lib.state_file_for(latest) == snapshots.state_name_for(latest)
    assert resume_lib.state_file_for('https://example.com/network-snapshot-000004.pkl') is None


def test_grid_rules(tmp_path):
    assert grids.grid_shape(32, 32) == (32, 32)
    assert grids.grid_shape(1024, 1024) == (7, 4)
    labels = [0, 1, 2] * 4
    dataset = ImageFolderDataset(make_image_dataset(tmp_path / 'lab', count=12, labels=labels), use_labels=True)
    chosen = grids.select_grid_indices(dataset, gw=5, gh=4)
    rows = [[labels[i] for i in chosen[r * 5:(r + 1) * 5]] for r in range(4)]
    assert rows == [[0] * 5, [1] * 5, [2] * 5, [0] * 5]     # one class per row, classes in order
    images = np.zeros([20, 3, 4, 4], dtype=np.uint8)
    images[7] = 255
    grids.save_image_grid(images, str(tmp_path / 'g.png'), drange=[0, 255], grid_size=(5, 4))
    png = np.asarray(PIL.Image.open(tmp_path / 'g.png'))
    assert png.shape == (16, 20, 3) and png[4:8, 8:12].min() == 255 and png.sum() == 255 * 48


def test_make_digits_writes_a_training_set(tmp_path):
    images = np.zeros([3, 8, 8])
    images[:, 2:6, 3:5] = 16
    pixels = make_digits.digits_to_pixels(images, 16)
    assert pixels.shape == (3, 16, 16) and pixels.dtype == np.uint8 and pixels.max() > 200 and pixels[0, 0, 0] == 0
    make_digits.write_digits(str(tmp_path / 'd'), pixels, labels=[4, 5, 6])
    dataset = ImageFolderDataset(str(tmp_path / 'd'), use_labels=True)
    assert len(dataset) == 3 and dataset.image_shape == [1, 16, 16] and dataset.label_dim == 7
    assert np.array_equal(dataset[1][0][0], pixels[1])


def test_stats_lines_write_bare_nan(tmp_path):
    logs = progress.RunLogs(str(tmp_path), enabled=True)
    stats = dnnlib.EasyDict({'Loss/G/loss': dnnlib.EasyDict(num=2, mean=0.5, std=0.1),
                             'Timing/Greg': dnnlib.EasyDict(num=0, mean=float('nan'), std=float('nan'))})
    logs.write(stats, {}, cur_nimg=1000, start_time=0)
    logs.close()
    line = (tmp_path / 'stats.jsonl').read_text()
    assert line.startswith('{"Loss/G/loss": {"num": 2, "mean": 0.5, "std": 0.1}, '
                           '"Timing/Greg": {"num": 0, "mean": NaN, "std": NaN}, "timestamp": ')
    assert line.endswith('}\n') and line.count('\n') == 1


def test_tensorboard_events_when_importable(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def __init__(self, log_dir):
            calls.append(('init', log_dir))

        def add_scalar(self, name, value, global_step, walltime):
            calls.append((name, value, global_step))

        def flush(self):
            calls.append('flush')

        def close(self):
            calls.append('close')

    fake = type(sys)('torch.utils.tensorboard')
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', fake)
    logs = progress.RunLogs(str(tmp_path), enabled=True)
    logs.write(dnnlib.EasyDict({'Loss/G/loss': dnnlib.EasyDict(num=1, mean=0.25, std=0.0)}), {'fid50k_full': 12.5},
               cur_nimg=4000, start_time=0)
    logs.close()
    assert calls == [('init', str(tmp_path)), ('Loss/G/loss', 0.25, 4), ('Metrics/fid50k_full', 12.5, 4), 'flush',
                     'close']


def test_prune_states_keeps_the_newest(tmp_path):
    for kimg in (0, 4, 8, 12):
        (tmp_path / f'training-state-{kimg:06d}.pt').write_bytes(b'x')
        (tmp_path / f'network-snapshot-{kimg:06d}.pkl').write_bytes(b'x')
    snapshots.prune_states(str(tmp_path), keep=2)
    assert sorted(os.listdir(tmp_path)) == ['network-snapshot-000000.pkl', 'network-snapshot-000004.pkl',
                                            'network-snapshot-000008.pkl', 'network-snapshot-000012.pkl',
                                            'training-state-000008.pt', 'training-state-000012.pt']
    snapshots.prune_states(str(tmp_path), keep=None)
    assert len(os.listdir(tmp_path)) == 6


def test_point_view_holds_the_points_with_a_margin():
    view = image_files.square_view
    points = np.array([[0.0, 0.0], [1.0, 0.5], [np.nan, 9.0]])
    assert view(points, grids.POINT_PLOT_MARGIN) == pytest.approx((0.5, 0.25, 0.55))
    assert view(np.zeros([0, 2]), grids.POINT_PLOT_MARGIN) == pytest.approx((0.0, 0.0, 1.1))    # none: a unit view
    assert view(np.ones([3, 2]), grids.POINT_PLOT_MARGIN) == pytest.approx((1.0, 1.0, 1.1))     # one place: the same
