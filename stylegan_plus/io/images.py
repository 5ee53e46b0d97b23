"""Pixels and image files shared by the inference tools, the metrics and the training grids.

Everything here is independent of the network code: conversion of generator output to uint8,
writing PNGs (RGB or grayscale) and .npz files atomically (through `stylegan_plus.io.atomic`),
tiling images into a grid and enlarging small images for display, a scatter plot for generators
of 2-D points (drawn with PIL alone), and the official latent of a seed. The option types of the
tools (`num_range`, finite floats) and the checks of their output paths live in `stylegan_plus.cli`.
"""

import math

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

from . import atomic

DISPLAY_MIN_TILE = 64  # smaller images are enlarged (nearest neighbour) to at least this many pixels in grids
DISPLAY_GUTTER = 2      # pixels between enlarged images in a grid
DISPLAY_GUTTER_GREY = 128


def to_uint8(img: 'torch.Tensor') -> np.ndarray:
    """Generator output to displayable pixels.

    img: [N, C, H, W] float, nominally in [-1, 1] (values outside are clamped).
    Returns [N, H, W, C] uint8 numpy array, computed as clamp(x * 127.5 + 128, 0, 255).
    """
    import torch  # pylint: disable=import-outside-toplevel  (this module stays torch-free for --help)
    pixels = img.permute(0, 2, 3, 1) * 127.5 + 128
    return pixels.clamp(0, 255).to(torch.uint8).cpu().numpy()


def to_pil(pixels: np.ndarray) -> PIL.Image.Image:
    """One [H, W, C] uint8 image with C = 1 (mode 'L') or C = 3 (mode 'RGB') to a PIL image."""
    channels = pixels.shape[2]
    if channels == 1:
        return PIL.Image.fromarray(pixels[:, :, 0], 'L')
    if channels == 3:
        return PIL.Image.fromarray(pixels, 'RGB')
    raise ValueError(f'cannot save an image with {channels} channels as PNG; expected 1 (L) or 3 (RGB)')


def save_png(pixels: np.ndarray, path) -> None:
    """Write one [H, W, C] uint8 image (C = 1 or 3) to `path`, atomically (no half-written file)."""
    image = to_pil(pixels)
    atomic.write_atomic(path, lambda f: image.save(f, format='PNG'))


def save_npz(path, **arrays) -> None:
    """`np.savez(path, **arrays)`, atomically; `path` is used as given (no `.npz` is appended)."""
    atomic.write_atomic(path, lambda f: np.savez(f, **arrays))


def display_scale(height: int, width: int, min_tile: int = DISPLAY_MIN_TILE) -> int:
    """Integer factor that enlarges an image of this size to at least `min_tile` pixels per side (1 if it is)."""
    return max(1, math.ceil(min_tile / max(min(height, width), 1)))


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """[H, W, ...] pixels repeated `factor` times along H and W (nearest neighbour); factor 1 returns them as is."""
    if factor == 1:
        return pixels
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1)


def tile(images, cols: int = None, gap: int = 0, gap_value: int = 0, border: bool = False) -> np.ndarray:
    """Lay equally sized images out row by row.

    images: sequence of [H, W, C] uint8 arrays. cols: images per row (default: ceil(sqrt(N)),
    so the grid is about square). gap: pixels between neighbouring images (and around the grid
    with `border`), of value `gap_value`, which also fills unused cells. Returns uint8
    [rows*H + (rows-1)*gap, cols*W + (cols-1)*gap, C] (2*gap more each way with `border`).
    """
    images = list(images)
    if not images:
        raise ValueError('cannot build a grid from zero images')
    height, width, channels = images[0].shape
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    edge = gap if border else 0
    canvas = np.full([rows * (height + gap) - gap + 2 * edge, cols * (width + gap) - gap + 2 * edge, channels],
                     gap_value, dtype=np.uint8)
    for idx, pixels in enumerate(images):
        top, left = (edge + k * (size + gap) for k, size in zip(divmod(idx, cols), (height, width)))
        canvas[top:top + height, left:left + width] = pixels
    return canvas


def display_grid(images, cols: int = None, scale: int = None) -> np.ndarray:
    """`tile` for people to look at: images under DISPLAY_MIN_TILE px are enlarged (nearest
    neighbour, `display_scale`) and then set DISPLAY_GUTTER px apart on grey, because enlarged
    thumbnails that touch (digits filling their frame) read as one continuous strip. Images of
    DISPLAY_MIN_TILE px and more are tiled edge to edge as given. images: [N, H, W, C] uint8.
    scale: the enlargement when the caller has fixed it (1: edge to edge, as given)."""
    images = list(images)
    if not images:
        raise ValueError('cannot build a grid from zero images')
    scale = display_scale(*images[0].shape[:2]) if scale is None else scale
    if scale == 1:
        return tile(images, cols)
    return tile([enlarge(pixels, scale) for pixels in images], cols, gap=DISPLAY_GUTTER, gap_value=DISPLAY_GUTTER_GREY)


def _tick_values(lo: float, hi: float, target: int = 5):
    """About `target` round tick positions (steps of 1, 2 or 5 times a power of ten) inside [lo, hi]."""
    raw = (hi - lo) / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    decimals = max(0, -int(math.floor(math.log10(step))))
    first = math.ceil(lo / step)
    return [(k * step, f'{k * step:.{decimals}f}') for k in range(first, int(math.floor(hi / step)) + 1)]


def _label_font(pixels):
    """PIL's default font at `pixels` height (Pillow >= 10.1); older Pillow has one small size only."""
    try:
        return PIL.ImageFont.load_default(size=pixels)
    except TypeError:
        return PIL.ImageFont.load_default()


def square_view(points: np.ndarray, margin: float) -> tuple:
    """(centre_x, centre_y, half_width) of the smallest square holding the finite points of [N, 2],
    widened by `margin` (a fraction of the half-width). Points with no extent (none, or all in one
    place) get a unit half-width, widened the same way, around their centre (0 when there are none)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    finite = points[np.isfinite(points).all(axis=1)]
    center = (finite.min(axis=0) + finite.max(axis=0)) / 2 if len(finite) else np.zeros(2)
    extent = float(np.ptp(finite, axis=0).max()) if len(finite) else 0.0
    half = (extent / 2 if extent > 1e-6 else 1.0) * (1 + margin)
    return float(center[0]), float(center[1]), half


def scatter_plot(points: np.ndarray, size: int = 512, title: str = None, window=None) -> np.ndarray:
    """Draw 2-D points as a scatter plot with equal axis scales, ticks and an optional title.

    points: [N, 2] float array (x, y); rows with NaN/inf are left out (and counted in the title).
    window: (centre_x, centre_y, half_width) of a fixed square view, so that several plots share
    one scale; points outside it are counted in the title. Default: the points' own
    (`square_view` with an 8 % margin).
    Returns the plot as [size, size, 3] uint8 RGB pixels (white background, y pointing up).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f'scatter_plot needs points of shape [N, 2], got {list(points.shape)}')
    finite = points[np.isfinite(points).all(axis=1)]
    canvas = PIL.Image.new('RGB', (size, size), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(canvas)
    font = _label_font(max(11, size // 36))
    left, top, right, bottom = 56, 28, size - 12, size - 36  # room for tick labels and the title
    # One square data window for both axes, so circles stay circles.
    window = square_view(finite, margin=0.08) if window is None else window
    center, half = np.array(window[:2], dtype=np.float64), float(window[2])
    if not half > 0:
        raise ValueError(f'scatter_plot window half-width must be > 0, got {window!r}')
    inside = finite[(np.abs(finite - center) <= half).all(axis=1)]
    scale = min(right - left, bottom - top) / (2 * half)

    def to_px(x, y):
        return left + (x - center[0] + half) * scale, bottom - (y - center[1] + half) * scale

    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    for value, label in _tick_values(center[0] - half, center[0] + half):
        x, _ = to_px(value, center[1])
        draw.line([x, bottom, x, bottom + 4], fill=(0, 0, 0))
        draw.text((x, bottom + 6), label, fill=(0, 0, 0), font=font, anchor='mt')
    for value, label in _tick_values(center[1] - half, center[1] + half):
        _, y = to_px(center[0], value)
        draw.line([left - 4, y, left, y], fill=(0, 0, 0))
        draw.text((left - 6, y), label, fill=(0, 0, 0), font=font, anchor='rm')
    radius = 2 if len(finite) >= 1000 else 3
    for x, y in (to_px(px, py) for px, py in inside):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(31, 119, 180))
    caption = title or f'{len(finite)} point{"" if len(finite) == 1 else "s"}'
    if len(finite) < len(points):
        caption += f' ({len(points) - len(finite)} non-finite left out)'
    if len(inside) < len(finite):
        caption += f' ({len(finite) - len(inside)} outside the view)'
    draw.text((size // 2, top // 2), caption, fill=(0, 0, 0), font=font, anchor='mm')
    return np.asarray(canvas)


def seed_to_z(seed: int, z_dim: int, z_dist: str = 'normal') -> np.ndarray:
    """The latent of one seed: [1, z_dim] float64 from np.random.RandomState(seed).

    seed: int in [0, 2**32 - 1] (what np.random.RandomState accepts). z_dist: the prior the
    snapshot records ('normal': N(0, 1), exactly the official tools' draw; 'uniform': U[-1, 1]).
    """
    from stylegan_plus.sampling import prior  # pylint: disable=import-outside-toplevel  (keeps this module torch-free)
    return prior.z_for_seed(z_dist, seed, z_dim)
