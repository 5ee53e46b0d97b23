"""PNG figures drawn with Pillow: scatter panels (real vs generated 2-D points) and line charts.

Pillow ships with the project; matplotlib is not required. Figures are small (a few hundred
pixels per panel) so that the ones the README shows can be committed.
"""

import math

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]
REAL_COLOR = (190, 190, 190)
CENTRE_COLOR = (0, 0, 0)
BACKGROUND = (255, 255, 255)
MARGIN = 28         # pixels above a panel for its title
CAPTION = 18        # pixels below a scatter panel for its caption


def _font(size=12):
    try:
        return PIL.ImageFont.load_default(size=size)
    except TypeError:   # Pillow < 10.1: a fixed bitmap font
        return PIL.ImageFont.load_default()


def _grid_layout(count, max_cols):
    cols = max(1, min(count, max_cols))
    return cols, int(math.ceil(count / cols))


def _cell_origins(count, max_cols, cell, title, pad):
    """A white figure of `count` cells (w, h) in rows of `max_cols`, with the title on top.

    Returns (image, draw, [(x, y) top-left corner of each cell's drawing area]).
    """
    cols, rows = _grid_layout(count, max_cols)
    head = 26 if title else 0
    image = PIL.Image.new('RGB', (cols * cell[0] + 2 * pad, rows * cell[1] + head + pad), BACKGROUND)
    draw = PIL.ImageDraw.Draw(image)
    if title:
        draw.text((pad, 6), title, fill=(0, 0, 0), font=_font(14))
    origins = [(pad + (i % cols) * cell[0], head + (i // cols) * cell[1] + MARGIN) for i in range(count)]
    return image, draw, origins


def _nice_ticks(lo, hi, count=5):
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(value, step):
    """Tick label with as many decimals as the tick spacing needs."""
    if abs(value) < step * 1e-6:
        return '0'
    if abs(value) >= 1e5 or step < 1e-4:
        return f'{value:.2e}'
    decimals = max(0, -int(math.floor(math.log10(step))))
    return f'{value:.{decimals}f}'


def _tick_labels(lo, hi):
    ticks = _nice_ticks(lo, hi)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else max(abs(hi - lo), 1e-12)
    return [(tick, _fmt(tick, step)) for tick in ticks]

#----------------------------------------------------------------------------
# Scatter panels.


def _draw_scatter(draw, box, panel, font):
    x0, y0, size = box
    xmin, xmax, ymin, ymax = panel['extent']

    def to_px(points):
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        px = x0 + (pts[:, 0] - xmin) / (xmax - xmin) * (size - 1)
        py = y0 + (ymax - pts[:, 1]) / (ymax - ymin) * (size - 1)
        keep = (px >= x0) & (px < x0 + size) & (py >= y0) & (py < y0 + size)
        return px[keep], py[keep]

    draw.rectangle([x0, y0, x0 + size - 1, y0 + size - 1], outline=(120, 120, 120))
    for points, color, radius in [(panel.get('reals'), REAL_COLOR, 1), (panel.get('points'), panel['color'], 1)]:
        if points is None or len(points) == 0:
            continue
        for x, y in zip(*to_px(points)):
            draw.rectangle([x - radius, y - radius, x + radius, y + radius], fill=color)
    for x, y in zip(*to_px(panel.get('centres', np.zeros([0, 2])))):
        draw.line([x - 4, y, x + 4, y], fill=CENTRE_COLOR)
        draw.line([x, y - 4, x, y + 4], fill=CENTRE_COLOR)
    draw.text((x0, y0 - MARGIN + 4), panel.get('title', ''), fill=(0, 0, 0), font=font)
    draw.text((x0, y0 + size + 3), panel.get('caption', ''), fill=(60, 60, 60), font=font)


def scatter_figure(path, panels, title='', panel_size=260, max_cols=4):
    """Write a PNG with one scatter panel per entry of `panels`.

    Each panel: dict(title str, points [N, 2] generated (drawn in `color`), reals [M, 2] or None
    (light grey, underneath), centres [K, 2] (black crosses), extent (xmin, xmax, ymin, ymax),
    caption str below, color RGB tuple (default: palette by position)).
    """
    font = _font(12)
    cell = (panel_size + 20, panel_size + MARGIN + CAPTION + 6)
    image, draw, origins = _cell_origins(len(panels), max_cols, cell, title, pad=12)
    for i, (panel, (x, y)) in enumerate(zip(panels, origins)):
        panel = dict(panel)
        panel.setdefault('color', PALETTE[i % len(PALETTE)])
        _draw_scatter(draw, (x, y, panel_size), panel, font)
    image.save(path, optimize=True)
    return path

#----------------------------------------------------------------------------
# Line charts.


def _series_range(series, index):
    values = [v for s in series for v in s[index] if v is not None and math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def _draw_chart(draw, box, chart, font, colors):
    x0, y0, width, height = box
    series = chart['series']    # list of (label, xs, ys)
    left, bottom = 52, 30
    px0, py0, pw, ph = x0 + left, y0, width - left - 8, height - bottom
    xlo, xhi = _series_range(series, 1)
    ylo, yhi = _series_range(series, 2)

    def sx(x):
        return px0 + (x - xlo) / (xhi - xlo) * pw

    def sy(y):
        return py0 + (yhi - y) / (yhi - ylo) * ph

    draw.rectangle([px0, py0, px0 + pw, py0 + ph], outline=(120, 120, 120))
    for tick, text in _tick_labels(ylo, yhi):
        draw.line([px0 - 3, sy(tick), px0, sy(tick)], fill=(0, 0, 0))
        draw.text((x0 + 2, sy(tick) - 6), text, fill=(0, 0, 0), font=font)
    for tick, text in _tick_labels(xlo, xhi):
        draw.line([sx(tick), py0 + ph, sx(tick), py0 + ph + 3], fill=(0, 0, 0))
        draw.text((sx(tick) - 10, py0 + ph + 5), text, fill=(0, 0, 0), font=font)
    draw.text((px0 + pw // 2 - 20, py0 + ph + 17), chart.get('xlabel', ''), fill=(0, 0, 0), font=font)
    draw.text((x0 + 2, y0 - MARGIN + 4), chart.get('title', ''), fill=(0, 0, 0), font=font)
    for i, (label, xs, ys) in enumerate(series):
        color = colors[label]
        pts = [(sx(x), sy(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=color)
        draw.text((px0 + 6, py0 + 4 + 13 * i), label, fill=color, font=font)


def chart_figure(path, charts, title='', chart_size=(360, 220), max_cols=3):
    """Write a PNG with one line chart per entry of `charts`.

    Each chart: dict(title str, xlabel str, series list of (label, xs, ys)); a label keeps one
    colour in every chart (palette order of first appearance) and is written in the top-left corner.
    """
    colors = {}
    for chart in charts:
        for label, _xs, _ys in chart['series']:
            colors.setdefault(label, PALETTE[len(colors) % len(PALETTE)])
    font = _font(11)
    width, height = chart_size
    image, draw, origins = _cell_origins(len(charts), max_cols, (width + 16, height + MARGIN + 8), title, pad=10)
    for chart, (x, y) in zip(charts, origins):
        _draw_chart(draw, (x, y, width, height), chart, font, colors)
    image.save(path, optimize=True)
    return path
