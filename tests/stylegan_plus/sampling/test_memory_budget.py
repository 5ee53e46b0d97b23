"""Generation in chunks sized by a memory budget (`stylegan_plus.sampling.memory_budget`), and the
snapshot grids that use it: enlarged, capped for small images, same images as the official grid."""

import numpy as np
import PIL.Image
import pytest
import torch

from stylegan_plus.sampling import memory_budget
from stylegan_plus.training import grids
from stylegan_plus.data.dataset import ImageFolderDataset
from tests.test_legacy import make_snapshot
from tests.stylegan_plus.training.test_train_utils import make_image_dataset
from training import networks


class Widening(torch.nn.Module):
    """Toy generator: its largest per-sample tensor is z repeated `width` times (known size), and it
    also makes a larger tensor that does not grow with the batch (which must not count)."""

    def __init__(self, z_dim=4, width=1000, use_item=False):
        super().__init__()
        self.z_dim, self.c_dim, self.width, self.use_item = z_dim, 0, width, use_item
        self.scale = torch.nn.Parameter(torch.ones([]))
        self.calls = 0      # state a forward pass changes (like a generator replaying a bank of images)

    def forward(self, z, c=None):
        self.calls += 1
        torch.randn([3])    # draws from the global stream, which the probe must leave alone
        fixed = torch.zeros([8 * self.z_dim * self.width], device=z.device)
        if self.use_item:
            fixed = fixed + float(self.scale.item())  # impossible on the meta device: the probe falls back
        return z.repeat(1, self.width) * self.scale + fixed.sum()


@pytest.mark.parametrize('use_item', [False, True])
def test_sample_bytes_counts_the_largest_per_sample_tensor(use_item):
    net = Widening(use_item=use_item)
    rng = torch.get_rng_state()
    per_sample = memory_budget.sample_bytes(net)
    assert per_sample == memory_budget.LIVE_TENSOR_FACTOR * 4 * 4 * 1000
    assert torch.equal(torch.get_rng_state(), rng) and net.calls == 0


def test_sample_bytes_follow_the_channel_widths():
    """StyleGAN2's per-sample modulated weights grow with the square of the widths."""
    def G(channel_max, resolution=16):
        return networks.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3,
                                  mapping_kwargs=dict(num_layers=1),
                                  synthesis_kwargs=dict(channel_base=4096, channel_max=channel_max)).eval()
    narrow, wide = (memory_budget.sample_bytes(G(width), noise_mode='const') for width in (16, 64))
    assert wide == memory_budget.LIVE_TENSOR_FACTOR * 64 * 64 * 3 * 3 * 4  # one layer's float32 weights per sample
    # 16 channels at 16 px, padded for the 2x up (the padding shared by both sides runs inside the FIR conv)
    assert narrow == memory_budget.LIVE_TENSOR_FACTOR * 16 * 17 * 17 * 4
    assert memory_budget.sample_bytes(G(64, resolution=32), noise_mode='const') > wide


def test_cifar_generator_is_split_into_budget_sized_calls():
    """The official cifar G (512 channels at 32 px): one call for a whole grid would need ~30 GB."""
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=32, img_channels=3,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=32768, channel_max=512, conv_clamp=256)).eval()
    per_sample = memory_budget.sample_bytes(G, noise_mode='const')
    assert 34 * 2**20 <= per_sample <= 80 * 2**20           # measured peak: 34 MiB per image
    assert per_sample * 1024 > 30 * 2**30
    chunk = memory_budget.generation_chunk(G, torch.device('cpu'), limit=1024, budget=memory_budget.CPU_BUDGET_CAP,
                                           noise_mode='const')
    assert 8 <= chunk <= 30 and chunk * per_sample <= memory_budget.CPU_BUDGET_CAP


def test_budget_is_a_capped_fraction_of_free_memory(monkeypatch):
    class Memory:
        def __init__(self, available):
            self.available, self.total = available, 2 * available
    monkeypatch.setattr(memory_budget.psutil, 'virtual_memory', lambda: Memory(2 * 2**30))
    assert memory_budget.generation_budget('cpu') == int(2 * 2**30 * memory_budget.CPU_BUDGET_FRACTION)
    monkeypatch.setattr(memory_budget.psutil, 'virtual_memory', lambda: Memory(200 * 2**30))
    assert memory_budget.generation_budget('cpu') == memory_budget.CPU_BUDGET_CAP
    assert memory_budget.memory_status('cpu') == (200 * 2**30, 400 * 2**30)


def test_chunk_for_bounds():
    assert memory_budget.chunk_for(10, 95) == 9
    assert memory_budget.chunk_for(10, 95, limit=4) == 4
    assert memory_budget.chunk_for(100, 5) == 1            # never zero: one sample is always tried
    assert memory_budget.chunk_for(0, 5, limit=None) == 5

#----------------------------------------------------------------------------
# Snapshot grids.

def test_display_layout():
    assert grids.display_layout(32, 32) == (16, 16, 2)        # official 32x32 tiles, capped and enlarged
    assert grids.display_layout(16, 16) == (16, 16, 4)
    assert grids.display_layout(8, 8) == (16, 16, 8)
    assert grids.display_layout(64, 64) == (32, 32, 1)        # already readable: the official layout
    assert grids.display_layout(1024, 1024) == (7, 4, 1)
    assert grids.block_positions((5, 4), (2, 3)) == [0, 1, 5, 6, 10, 11]


class Hooks:
    def __init__(self, z_dim):
        self.z_dim = z_dim

    def sample_z(self, n, device):
        return torch.randn([n, self.z_dim], device=device)


class CallSizes(torch.nn.Module):
    """Wraps a generator and records the batch size of every call."""

    def __init__(self, G):
        super().__init__()
        self.G, self.z_dim, self.c_dim, self.sizes = G, G.z_dim, G.c_dim, []

    def forward(self, z, c, noise_mode='random'):
        self.sizes.append(z.shape[0])   # the memory probe runs on a copy: its calls do not appear here
        return self.G(z, c, noise_mode=noise_mode)


@pytest.fixture
def one_thread():
    # Tiny networks on a shared CPU: many small calls are many times faster without OpenMP contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def small_images(tmp_path_factory):
    """A 16-px data set of 40 images: official grid 32x32, shown as its top-left 16x16 block at 4x."""
    return ImageFolderDataset(make_image_dataset(tmp_path_factory.mktemp('grid'), count=40, resolution=16))


def test_grid_shows_the_official_images_at_the_same_places(small_images, tmp_path):
    torch.manual_seed(3)
    pictures = grids.SnapshotPictures(small_images, Hooks(8), torch.device('cpu'), batch_gpu=4, points=False)
    after = torch.get_rng_state()
    torch.manual_seed(3)
    official_z = torch.randn([32 * 32, 8])
    assert torch.equal(torch.get_rng_state(), after)          # the official draw count: training sees the same stream
    shown = grids.block_positions((32, 32), (16, 16))
    assert torch.equal(pictures.z, official_z[shown])

    pictures.save_reals(str(tmp_path / 'reals.png'))
    reals = np.asarray(PIL.Image.open(tmp_path / 'reals.png'))
    assert reals.shape == (16 * 64 + 15 * 2,) * 2 + (3,)     # 16 x 16 tiles of 64 px, 2 px grey gutters
    official = grids.select_grid_indices(small_images, 32, 32)
    tile = reals[66:130, 198:262]                              # row 1, column 3 of the shown block
    assert (reals[64:66] == 128).all() and (reals[:, 196:198] == 128).all()
    expected = small_images[official[1 * 32 + 3]][0].transpose(1, 2, 0)
    np.testing.assert_array_equal(tile[::4, ::4], expected)
    assert (tile[1::4, 2::4] == expected).all()               # nearest neighbour: 4x4 blocks


def test_grid_chunks_follow_the_budget(small_images, tmp_path, monkeypatch, one_thread):
    G = make_snapshot(resolution=16)['G_ema']
    per_sample = memory_budget.sample_bytes(G, noise_mode='const')
    renders = []
    for samples in (100, 7):
        monkeypatch.setattr(memory_budget, 'generation_budget', lambda device, s=samples: s * per_sample)
        torch.manual_seed(0)
        pictures = grids.SnapshotPictures(small_images, Hooks(8), torch.device('cpu'), batch_gpu=4, points=False)
        wrapped = CallSizes(G)
        pictures.save_fakes(wrapped, str(tmp_path / f'fakes{samples}.png'))
        assert max(wrapped.sizes) == samples and sum(wrapped.sizes) == 256
        renders.append(np.asarray(PIL.Image.open(tmp_path / f'fakes{samples}.png')))
    # The chunk size does not change the picture (beyond float rounding of batched convolutions).
    assert np.abs(renders[0].astype(int) - renders[1].astype(int)).max() <= 1
    with torch.no_grad():
        first = G(pictures.z[:1], pictures.c[:1], noise_mode='const')
    pixels = np.rint((first[0].numpy().transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)
    assert np.abs(renders[1][:64:4, :64:4].astype(int) - pixels.astype(int)).max() <= 1


def test_dry_run_shows_the_machine_memory_beside_the_peak():
    from stylegan_plus.training import estimate
    est = estimate.Estimate(device='cpu', precision='fp32', batch_gpu=8, params=dict(G=10, D=20), peak_bytes=3 * 2**30,
                            sec_per_kimg=1.0, measured=True, detail='measured', free_bytes=20 * 2**30,
                            total_bytes=24 * 2**30)
    lines = estimate.format_estimate(est)
    assert lines[1].endswith('(fp32, --batch-gpu=8); this machine: 20.00 GiB free of 24.00 GiB RAM')
    assert len(lines) == 4
    est.free_bytes = 2 * 2**30
    assert estimate.format_estimate(est)[-1].startswith('Warning:            the estimated peak (3.00 GiB) exceeds '
                                                        'the 2.00 GiB free on cpu')
