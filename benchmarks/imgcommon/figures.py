"""PNG figures of the image benchmarks: sample grids (Pillow) and line and bar charts (matplotlib).

Charts go through `stylegan_plus.io.charts` (Agg backend, loaded on the first chart, atomic
writes); matplotlib comes with the `bench` extra (`pip install -e ".[bench]"`).
"""

import math

import numpy as np
import PIL.Image

from stylegan_plus.io import charts

_DPI = 100      # sizes below are in pixels at this resolution


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


def _figure(size):
    fig, axes = charts.panel_grid(1, cols=1, panel_size=(size[0] / _DPI, size[1] / _DPI))
    return fig, axes[0]


def line_plot(path, series, title='', xlabel='', ylabel='', size=(720, 420), log_y=False, smooth=False):
    """Line chart of series {label: (x [T], y [T])} (NaN points skipped, a dot per point); returns path.

    log_y: logarithmic y axis (non-positive values are skipped). smooth: draw each series raw
    (thin) under a centred moving average (bold), for noisy per-tick curves.
    """
    fig, ax = _figure(size)
    for i, (label, (x, y)) in enumerate(series.items()):
        color = charts.PALETTE[i % len(charts.PALETTE)]
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if log_y:
            y = np.where(y > 0, y, np.nan)
        if smooth:
            charts.raw_and_smoothed(ax, x, y, color, label=label)
        else:
            keep = np.isfinite(x) & np.isfinite(y)
            ax.plot(x[keep], y[keep], color=color, marker='o', markersize=3, linewidth=1.5, label=label)
    if log_y:
        ax.set_yscale('log')
    charts.style_axes(ax, title, xlabel, ylabel)
    if series:
        ax.legend(fontsize=7)
    return charts.save_figure(fig, path, dpi=_DPI)


def bar_plot(path, labels, values, title='', ylabel='', errors=None, size=(720, 420), reference=None):
    """Bar chart of values [K] named by labels [K], optional +-errors and a dashed reference level; returns path.

    A value of None is drawn as an empty bar (0) labelled 'n/a'.
    """
    vals = [np.nan if v is None else float(v) for v in values]
    errs = None if errors is None else [0.0 if e is None else float(e) for e in errors]
    fig, ax = _figure(size)
    positions = np.arange(len(vals))
    colors = [charts.PALETTE[i % len(charts.PALETTE)] for i in range(len(vals))]
    ax.bar(positions, np.nan_to_num(vals), yerr=errs, color=colors, capsize=4, width=0.7)
    for x, v, e in zip(positions, vals, errs or [0.0] * len(vals)):
        # Above the error bar, so the number never sits on its cap.
        top = 0.0 if np.isnan(v) else v + e
        ax.annotate('n/a' if np.isnan(v) else f'{v:.3g}', (x, top), xytext=(0, 3), textcoords='offset points',
                    ha='center', va='bottom', fontsize=7)
    if reference is not None:
        ax.axhline(reference, color='#555555', linestyle='--', linewidth=1)
    ax.set_xticks(positions, [str(label) for label in labels], fontsize=7)
    charts.style_axes(ax, title, '', ylabel)
    ax.grid(False, axis='x')
    return charts.save_figure(fig, path, dpi=_DPI)
