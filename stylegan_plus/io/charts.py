"""matplotlib helpers shared by `plot_stats` and the benchmarks' figures.

matplotlib is optional (the `demo`, `test` and `bench` extras install it): it is imported on the
first call of `pyplot()`, never at module import, so training and the tools that do not plot
never need it. The Agg backend is selected before pyplot loads, so no display is ever opened.
Figures are written atomically (temporary file beside the target, then rename), so an
interrupted plot never leaves a truncated PNG where a good one was.
"""

import math

import numpy as np

from stylegan_plus.io import atomic

# Colours by role, so a statistic keeps its colour across panels and figures (matplotlib's tab10).
PALETTE = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
           '#17becf')


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def pyplot():
    """matplotlib.pyplot on the Agg backend; PlotUnavailable when matplotlib is missing."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise PlotUnavailable('matplotlib is needed for plots: pip install matplotlib '
                              '(or pip install -e ".[demo]")') from None
    # Files only: a display backend would fail on a headless machine (CI, a training server).
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    return plt


def save_figure(fig, path, dpi=110):
    """Write `fig` as a PNG to `path` atomically and close it; returns path."""
    plt = pyplot()
    try:
        atomic.write_atomic(path, lambda f: fig.savefig(f, format='png', dpi=dpi))
    finally:
        plt.close(fig)
    return path


def smooth(values, window=None):
    """Centred moving average of float [T] that skips NaN/inf; float64 [T] (NaN where no finite value is near).

    window: odd number of points; default about a tenth of the series, at least 3. A window of 1
    (or fewer than 4 points) returns the values unchanged.
    """
    y = np.asarray(values, dtype=np.float64)
    if window is None:
        window = max(3, int(round(len(y) / 10)))
    window = max(1, int(window) | 1)
    if window == 1 or len(y) < 4:
        return y.copy()
    finite = np.isfinite(y)
    half = window // 2
    # Running sums of the finite values and their count give every window's mean in O(T).
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, y, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    lo = np.clip(np.arange(len(y)) - half, 0, len(y))
    hi = np.clip(np.arange(len(y)) + half + 1, 0, len(y))
    n = counts[hi] - counts[lo]
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def raw_and_smoothed(ax, x, y, color, label=None, window=None):
    """Draw y over x as thin raw points/lines plus the bold smoothed line (only when it differs)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    smoothed = smooth(y, window)
    has_smooth = keep.sum() >= 4
    ax.plot(x[keep], y[keep], color=color, alpha=0.35 if has_smooth else 1.0, linewidth=0.9, marker='.',
            markersize=3, label=None if has_smooth else label)
    if has_smooth:
        ax.plot(x[keep], smoothed[keep], color=color, linewidth=1.8, label=label)


def style_axes(ax, title, xlabel, ylabel):
    """Title, labelled axes and a light grid on one panel."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3, linewidth=0.6)


def panel_grid(count, cols=3, panel_size=(3.6, 2.5), title=None):
    """(figure, flat list of `count` axes) in rows of `cols`; surplus cells are hidden."""
    plt = pyplot()
    cols = max(1, min(cols, count))
    rows = max(1, math.ceil(count / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows + (0.4 if title else 0)),
                             squeeze=False, layout='constrained')
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, flat[:count]
