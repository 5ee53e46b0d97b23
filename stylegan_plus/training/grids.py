"""Snapshot pictures: `reals.png`, `fakes_init.png`, `fakesNNNNNN.png`.

Images use the official grid: gw = clip(7680 // W, 7, 32) columns, gh = clip(4320 // H, 4, 32)
rows; unlabeled data shows a random (seed 0) selection of training images, labeled data one class
per row. Images smaller than 64 px are enlarged (nearest neighbour) to at least 64 px per tile,
set 2 px apart on grey (touching digits read as one strip), and their grid is limited to its top-left 16 x 16 tiles (32 x 32 tiles of 32 px make a 1024-px
picture of thumbnails nobody can read). The images shown are those of the official grid at the
same places, and the latents of the whole official grid are still drawn, so the random stream
after set-up is the official one. 2-D point data has no images: its pictures are scatter plots
of the real points and of the generator's points instead, under the same file names.

Fakes are rendered in chunks sized by `memory_budget.generation_chunk` (at most batch_gpu on
CUDA, as the official loop): a single call for the whole grid needs about 30 GB for the cifar
generator on CPU.
"""

import inspect
import os

import numpy as np
import torch

from stylegan_plus.io import images as image_files
from stylegan_plus.sampling import memory_budget

POINT_PLOT_SIZE = 512       # pixels per side of a scatter plot
POINT_PLOT_COUNT = 2000     # points drawn per scatter plot
POINT_PLOT_MARGIN = 0.1     # room around the reals in a scatter plot, a fraction of their half-extent
SMALL_GRID_MAX = 16         # columns and rows at most when the images are enlarged for display


def grid_shape(image_height, image_width):
    """(gw, gh): columns and rows of the official snapshot grid for images of this size."""
    return int(np.clip(7680 // image_width, 7, 32)), int(np.clip(4320 // image_height, 4, 32))


def display_layout(image_height, image_width):
    """(gw, gh, scale) of the grid as written: the official one, or for images under 64 px its
    top-left block of at most 16 x 16 tiles, each enlarged `scale` times."""
    gw, gh = grid_shape(image_height, image_width)
    scale = image_files.display_scale(image_height, image_width)
    if scale > 1:
        gw, gh = min(gw, SMALL_GRID_MAX), min(gh, SMALL_GRID_MAX)
    return gw, gh, scale


def block_positions(full_size, block_size):
    """Row-major positions, in a full (gw, gh) grid, of the tiles of its top-left (bw, bh) block."""
    gw, _gh = full_size
    bw, bh = block_size
    return [row * gw + col for row in range(bh) for col in range(bw)]


def select_grid_indices(dataset, gw, gh, random_seed=0):
    """Dataset indices filling a gw x gh grid, row-major.

    Without labels: a shuffled list of all indices, repeated if the set is small. With labels: the
    items grouped by raw label (label tuples in sorted order, each group shuffled); row y shows
    class y mod num_classes, and a class shown again continues where its previous row stopped.
    """
    rnd = np.random.RandomState(random_seed)
    count = gw * gh
    if not dataset.has_labels:
        indices = list(range(len(dataset)))
        rnd.shuffle(indices)
        return [indices[i % len(indices)] for i in range(count)]

    groups = {}
    for idx in range(len(dataset)):
        # Reversed flattening orders one-hot class labels by class index.
        key = tuple(dataset.get_details(idx).raw_label.flat[::-1])
        groups.setdefault(key, []).append(idx)
    classes = sorted(groups)
    for key in classes:
        rnd.shuffle(groups[key])
    chosen = []
    for row in range(gh):
        key = classes[row % len(classes)]
        members = groups[key]
        chosen.extend(members[col % len(members)] for col in range(gw))
        groups[key] = [members[(i + gw) % len(members)] for i in range(len(members))]
    return chosen


def setup_image_grid(dataset, random_seed=0):
    """((gw, gh), images uint8 [gw*gh, C, H, W], labels float32 [gw*gh, c_dim]) for the snapshots."""
    _channels, height, width = dataset.image_shape
    gw, gh = grid_shape(height, width)
    items = [dataset[i] for i in select_grid_indices(dataset, gw, gh, random_seed)]
    images, labels = zip(*items)
    return (gw, gh), np.stack(images), np.stack(labels)


def save_image_grid(images, path, drange, grid_size, scale=1):
    """Write images [gw*gh, C, H, W] (values in `drange`) as one PNG, atomically; C is 1 (L) or 3 (RGB).

    scale: integer enlargement of every tile (nearest neighbour), for display; enlarged tiles are
    spaced as `images.display_grid` spaces them, the official size (1) tiles edge to edge as the
    official grid.
    """
    lo, hi = drange
    pixels = np.asarray(images, dtype=np.float32)
    pixels = np.rint((pixels - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    if len(pixels) != gw * gh:
        raise ValueError(f'save_image_grid: {len(pixels)} images do not fill a {gw}x{gh} grid')
    image_files.save_png(image_files.display_grid(pixels.transpose(0, 2, 3, 1), cols=gw, scale=scale), path)


def _accepts_keyword(fn, name):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind == p.VAR_KEYWORD for p in params)


def forward_kwargs(G):
    """Generators that take `noise_mode` (StyleGAN2) render with constant noise, as the official loop."""
    return dict(noise_mode='const') if _accepts_keyword(G.forward, 'noise_mode') else {}


@torch.no_grad()
def generate(G, z_chunks, c_chunks):
    """Concatenated generator output for chunks of latents/labels, on CPU as numpy (see `forward_kwargs`)."""
    kwargs = forward_kwargs(G)
    return torch.cat([G(z=z, c=c, **kwargs).cpu() for z, c in zip(z_chunks, c_chunks)]).numpy()


def save_point_plot(points, path, view=None):
    """Scatter plot of points [N, 2] (`images.scatter_plot`: ticks, and a title from the file name).

    view: (centre_x, centre_y, half_width), the reals' view (`images.square_view`, margin
    POINT_PLOT_MARGIN) for the reals and every fakes plot of a run, so that they compare; default
    the points' own.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    name = os.path.splitext(os.path.basename(path))[0]
    title = f'{name}: {len(points)} points'
    pixels = image_files.scatter_plot(points, size=POINT_PLOT_SIZE, title=title, window=view or image_files.square_view(points, POINT_PLOT_MARGIN))
    image_files.save_png(pixels, path)


def grid_chunk(G, device, batch_gpu, count):
    """Items per generator call for snapshot pictures: what the memory budget allows
    (`memory_budget.generation_chunk`), at most `count`, and on CUDA at most batch_gpu (official).

    Every supported network treats samples independently in eval mode, so the pictures do not
    depend on the chunk size (beyond float rounding of batched convolutions, at most 1/255).
    """
    limit = min(batch_gpu, count) if device.type == 'cuda' else count
    return memory_budget.generation_chunk(G, device, limit=limit, **forward_kwargs(G))


class SnapshotPictures:
    """The fixed inputs of all snapshot pictures of a run, and their rendering.

    Built once (after the networks and the loss, as in the official loop, because the fixed
    latents are drawn then); `save_reals`, `save_fakes` write the PNGs on rank 0. Image grids
    keep the tiles of `display_layout`; the latents of the full official grid are drawn.
    """

    def __init__(self, dataset, hooks, device, batch_gpu, points):
        self.points = points
        self.device = device
        self.batch_gpu = batch_gpu
        self.scale = 1
        self.chunk = None       # items per generator call, found at the first save_fakes
        if points:
            self.grid_size = None
            real = dataset.points if hasattr(dataset, 'points') else np.stack([dataset[i][0] for i in range(len(dataset))])
            self.reals = real[:POINT_PLOT_COUNT]
            self.view = image_files.square_view(real, POINT_PLOT_MARGIN)
            labels = np.zeros([POINT_PLOT_COUNT, dataset.label_dim], dtype=np.float32)
            self.z = hooks.sample_z(POINT_PLOT_COUNT, device)
        else:
            full_size, reals, labels = setup_image_grid(dataset)
            _channels, height, width = dataset.image_shape
            gw, gh, self.scale = display_layout(height, width)
            self.grid_size = (gw, gh)
            shown = block_positions(full_size, self.grid_size)
            self.reals, labels = reals[shown], labels[shown]
            self.z = hooks.sample_z(len(reals), device)[shown]
        self.c = torch.from_numpy(labels).to(device)

    def save_reals(self, path):
        if self.points:
            save_point_plot(self.reals, path, self.view)
        else:
            save_image_grid(self.reals, path, drange=[0, 255], grid_size=self.grid_size, scale=self.scale)

    def save_fakes(self, G, path):
        if self.chunk is None:
            self.chunk = grid_chunk(G, self.device, self.batch_gpu, len(self.z))
        fakes = generate(G, self.z.split(self.chunk), self.c.split(self.chunk))
        if self.points:
            save_point_plot(fakes, path, self.view)
        else:
            save_image_grid(fakes, path, drange=[-1, 1], grid_size=self.grid_size, scale=self.scale)
