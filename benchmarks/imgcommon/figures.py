"""PNG figures drawn with PIL alone (no matplotlib needed): sample grids, line charts, bar charts."""

import math

import numpy as np
import PIL.Image
import PIL.ImageDraw

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127)]
_MARGIN = dict(left=70, right=20, top=34, bottom=46)


def save_grid(pixels, path, cols=None, scale=2, pad=1):
    """Tile uint8 images [N, H, W] or [N, H, W, C] (C = 1 or 3) into one PNG; returns path."""
    arr = np.asarray(pixels)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    n, h, w, _ = arr.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    canvas = np.full([rows * (h + pad) + pad, cols * (w + pad) + pad, 3], 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arr[i]
    img = PIL.Image.fromarray(canvas)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), PIL.Image.NEAREST)
    img.save(path, optimize=True)
    return path


def _nice_range(values, include_zero=False):
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    return lo - 0.05 * span, hi + 0.05 * span


class _Axes:
    """Maps data coordinates to pixels inside a fixed-margin plot area and draws the frame."""

    def __init__(self, draw, size, xr, yr):
        self.draw, self.size, self.xr, self.yr = draw, size, xr, yr
        self.x0, self.y0 = _MARGIN['left'], _MARGIN['top']
        self.x1, self.y1 = size[0] - _MARGIN['right'], size[1] - _MARGIN['bottom']

    def px(self, x, y):
        fx = (x - self.xr[0]) / (self.xr[1] - self.xr[0])
        fy = (y - self.yr[0]) / (self.yr[1] - self.yr[0])
        return self.x0 + fx * (self.x1 - self.x0), self.y1 - fy * (self.y1 - self.y0)

    def frame(self, title, xlabel, ylabel, xticks=True):
        d = self.draw
        d.rectangle([self.x0, self.y0, self.x1, self.y1], outline=(0, 0, 0))
        d.text((self.x0, 8), title, fill=(0, 0, 0))
        d.text(((self.x0 + self.x1) / 2 - 3 * len(xlabel), self.y1 + 28), xlabel, fill=(0, 0, 0))
        d.text((4, self.y0 - 14), ylabel, fill=(0, 0, 0))
        for k in range(5):
            yv = self.yr[0] + (self.yr[1] - self.yr[0]) * k / 4
            _, py = self.px(self.xr[0], yv)
            d.line([self.x0 - 4, py, self.x0, py], fill=(0, 0, 0))
            d.text((4, py - 6), f'{yv:.3g}', fill=(0, 0, 0))
            if xticks:
                xv = self.xr[0] + (self.xr[1] - self.xr[0]) * k / 4
                px, _ = self.px(xv, self.yr[0])
                d.line([px, self.y1, px, self.y1 + 4], fill=(0, 0, 0))
                d.text((px - 10, self.y1 + 8), f'{xv:.3g}', fill=(0, 0, 0))


def line_plot(path, series, title='', xlabel='', ylabel='', size=(720, 420), log_y=False):
    """Line chart of series {label: (x [T], y [T])} (NaN points skipped, one dot per point); returns path."""
    if log_y:
        series = {k: (x, np.log10(np.maximum(np.asarray(y, dtype=np.float64), 1e-12))) for k, (x, y) in series.items()}
        ylabel = f'log10 {ylabel}'
    xs = [v for x, _ in series.values() for v in np.asarray(x, dtype=np.float64)]
    ys = [v for _, y in series.values() for v in np.asarray(y, dtype=np.float64)]
    img = PIL.Image.new('RGB', size, (255, 255, 255))
    draw = PIL.ImageDraw.Draw(img)
    axes = _Axes(draw, size, _nice_range(xs), _nice_range(ys))
    axes.frame(title, xlabel, ylabel)
    for idx, (label, (x, y)) in enumerate(series.items()):
        color = COLORS[idx % len(COLORS)]
        points = [axes.px(a, b) for a, b in zip(np.asarray(x, float), np.asarray(y, float)) if np.isfinite(a) and np.isfinite(b)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
        draw.text((axes.x1 - 190, axes.y0 + 6 + 14 * idx), f'-- {label}', fill=color)
    img.save(path, optimize=True)
    return path


def bar_plot(path, labels, values, title='', ylabel='', errors=None, size=(720, 420), reference=None):
    """Bar chart of values [K] named by labels [K], optional +-errors and a dashed reference level."""
    vals = [0.0 if v is None else float(v) for v in values]
    errs = [0.0 if e is None else float(e) for e in (errors or [0.0] * len(vals))]
    tops = [v + e for v, e in zip(vals, errs)] + ([reference] if reference is not None else [])
    img = PIL.Image.new('RGB', size, (255, 255, 255))
    draw = PIL.ImageDraw.Draw(img)
    axes = _Axes(draw, size, (0, len(vals)), (0.0, max(tops + [1e-9]) * 1.08))
    axes.frame(title, '', ylabel, xticks=False)
    for i, (label, v, e) in enumerate(zip(labels, vals, errs)):
        (x0, y0), (x1, y1) = axes.px(i + 0.15, 0), axes.px(i + 0.85, v)
        draw.rectangle([x0, y1, x1, y0], fill=COLORS[i % len(COLORS)])
        if e > 0:
            cx = (x0 + x1) / 2
            _, ylo = axes.px(0, v - e)
            _, yhi = axes.px(0, v + e)
            draw.line([cx, ylo, cx, yhi], fill=(0, 0, 0), width=2)
        draw.text((x0, axes.y1 + 8), str(label), fill=(0, 0, 0))
        draw.text((x0, y1 - 13), f'{v:.3g}', fill=(0, 0, 0))
    if reference is not None:
        _, ry = axes.px(0, reference)
        for x in range(int(axes.x0), int(axes.x1), 12):
            draw.line([x, ry, x + 6, ry], fill=(90, 90, 90))
    img.save(path, optimize=True)
    return path
