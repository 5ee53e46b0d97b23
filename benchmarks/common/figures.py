"""The benchmarks' PNG figures: scatter panels, line and bar charts (matplotlib), sample grids (Pillow).

Charts go through `stylegan_plus.io.charts` (Agg backend, matplotlib loaded on the first chart,
atomic writes); matplotlib comes with the `bench` extra (`pip install -e ".[bench]"`). Figures
are small (a few hundred pixels per panel) so that the ones the docs show can be committed.
Sizes below are in pixels at `DPI`.

Also the figures the 2-D benchmarks share: mode-coverage captions and the training statistics
of a seed's runs.
"""

import numpy as np
import PIL.Image

from stylegan_plus.io import atomic, charts, images

from . import runs

DPI = 100
PALETTE = charts.PALETTE
REAL_COLOR = '#bebebe'
CENTRE_COLOR = '#808080'
# Statistics worth plotting for the 2-D runs (whatever a run reported of these is drawn).
LOSS_KEYS = ('Loss/G/loss', 'Loss/D/loss', 'Loss/dist/rec', 'Loss/dist/latent_reg', 'Loss/dist/gp',
             'Loss/logan-b/E', 'Loss/logan-b/rec', 'Loss/rf/ae', 'Loss/advlat/qua_logits_start')

#----------------------------------------------------------------------------
# Scatter panels of 2-D points.


def _xy(points):
    return np.zeros([0, 2]) if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _draw_scatter(ax, panel):
    # Generated points last: where samples sit right on a centre (AdvLatGAN's std-0.0025 grid after
    # -z) a cross drawn over them hid them.
    layers = [('real', panel.get('reals'), dict(s=2, color=REAL_COLOR, linewidths=0)),
              ('mode centre', panel.get('centres'), dict(s=30, marker='+', color=CENTRE_COLOR, linewidths=0.8)),
              ('generated', panel.get('points'), dict(s=4, color=panel['color'], linewidths=0))]
    for label, points, style in layers:
        xy = _xy(points)
        if len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], label=label, **style)
    xmin, xmax, ymin, ymax = panel['extent']
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect('equal')
    charts.style_axes(ax, panel.get('title', ''), panel.get('caption', ''), '')


def scatter_figure(path, panels, title='', panel_size=260, max_cols=4):
    """Write a PNG with one scatter panel per entry of `panels`; returns path.

    Each panel: dict(title str, points [N, 2] generated (drawn in `color`), reals [M, 2] or None
    (light grey, underneath), centres [K, 2] (black crosses), extent (xmin, xmax, ymin, ymax),
    caption str (under the x axis), color (default: the palette by position)).
    """
    side = panel_size / DPI
    fig, axes = charts.panel_grid(len(panels), cols=max_cols, panel_size=(side, side + 0.45), title=title)
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        _draw_scatter(ax, dict(panel, color=panel.get('color', PALETTE[i % len(PALETTE)])))
    if panels:
        axes[0].legend(fontsize=6, loc='upper right', markerscale=3)
    return charts.save_figure(fig, path, dpi=DPI)

#----------------------------------------------------------------------------
# Line and bar charts.


def _draw_line(ax, x, y, color, label, smooth):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if smooth:
        charts.raw_and_smoothed(ax, x, y, color, label=label)
        return
    keep = np.isfinite(x) & np.isfinite(y)
    ax.plot(x[keep], y[keep], color=color, marker='o', markersize=3, linewidth=1.5, label=label)


def chart_figure(path, charts_spec, title='', chart_size=(360, 220), max_cols=3):
    """Write a PNG with one line chart per entry of `charts_spec`; returns path.

    Each chart: dict(title, xlabel, ylabel (default 'tick mean'), series [(label, xs, ys)],
    smooth (default True: each series raw and thin under a centred moving average, for noisy
    per-tick curves; False: points joined by lines), log_y (default False; values <= 0 skipped)).
    A label keeps one colour in every chart (palette order of first appearance); NaN points are skipped.
    """
    colors = {}
    for chart in charts_spec:
        for label, _xs, _ys in chart['series']:
            colors.setdefault(label, PALETTE[len(colors) % len(PALETTE)])
    size = (chart_size[0] / DPI, chart_size[1] / DPI)
    fig, axes = charts.panel_grid(max(len(charts_spec), 1), cols=max_cols, panel_size=size, title=title or None)
    for ax, chart in zip(axes, charts_spec):
        log_y = chart.get('log_y', False)
        for label, xs, ys in chart['series']:
            ys = np.asarray(ys, dtype=np.float64)
            _draw_line(ax, xs, np.where(ys > 0, ys, np.nan) if log_y else ys, colors[label], label,
                       chart.get('smooth', True))
        if log_y:
            ax.set_yscale('log')
        charts.style_axes(ax, chart.get('title', ''), chart.get('xlabel', ''), chart.get('ylabel', 'tick mean'))
        if chart['series']:
            ax.legend(fontsize=6)
    return charts.save_figure(fig, path, dpi=DPI)


def line_plot(path, series, title='', xlabel='', ylabel='', size=(720, 420), log_y=False, smooth=False):
    """One line chart of series {label: (x [T], y [T])} (a dot per point unless `smooth`); returns path."""
    chart = dict(title=title, xlabel=xlabel, ylabel=ylabel, log_y=log_y, smooth=smooth,
                 series=[(label, x, y) for label, (x, y) in series.items()])
    return chart_figure(path, [chart], chart_size=size, max_cols=1)


def bar_plot(path, labels, values, title='', ylabel='', errors=None, size=(720, 420), reference=None):
    """Bar chart of values [K] named by labels [K], optional +-errors and a dashed reference level; returns path.

    A value of None is drawn as an empty bar labelled 'n/a'.
    """
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    errs = np.zeros(len(vals)) if errors is None else np.array([0.0 if e is None else float(e) for e in errors])
    fig, (ax,) = charts.panel_grid(1, cols=1, panel_size=(size[0] / DPI, size[1] / DPI))
    positions = np.arange(len(vals))
    ax.bar(positions, np.nan_to_num(vals), yerr=None if errors is None else errs, capsize=4, width=0.7,
           color=[PALETTE[i % len(PALETTE)] for i in range(len(vals))])
    for x, value, err in zip(positions, vals, errs):
        # The number sits above the error bar, never on its cap.
        top = 0.0 if np.isnan(value) else value + err
        ax.annotate('n/a' if np.isnan(value) else f'{value:.3g}', (x, top), xytext=(0, 3),
                    textcoords='offset points', ha='center', va='bottom', fontsize=7)
    if reference is not None:
        ax.axhline(reference, color='#555555', linestyle='--', linewidth=1)
    ax.set_xticks(positions, [str(label) for label in labels], fontsize=7)
    charts.style_axes(ax, title, '', ylabel)
    ax.grid(False, axis='x')
    return charts.save_figure(fig, path, dpi=DPI)

#----------------------------------------------------------------------------
# Sample grids.


def save_grid(pixels, path, cols=None, scale=2, pad=1):
    """Tile uint8 images [N, H, W] or [N, H, W, C] (C = 1 or 3) on white, `pad` pixels apart, each
    pixel enlarged `scale` times; write the PNG atomically; returns path."""
    arr = np.asarray(pixels)
    arr = arr[..., None] if arr.ndim == 3 else arr
    arr = np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr
    canvas = images.tile(arr, cols, gap=pad, gap_value=255, border=True)
    grid = PIL.Image.fromarray(images.enlarge(canvas, scale))
    atomic.write_atomic(path, lambda f: grid.save(f, format='PNG', optimize=True))
    return path

#----------------------------------------------------------------------------
# What the 2-D benchmarks share.


def extent_of(centres, pad=1.0):
    """Square plot extent (xmin, xmax, ymin, ymax) around the mode centres."""
    centres = np.asarray(centres)
    lo, hi = float(centres.min()) - pad, float(centres.max()) + pad
    return lo, hi, lo, hi


def coverage_caption(metrics, num_modes):
    """'modes 8/8, reg. 1234, HQ 91.2%' from mode_coverage/high_quality results (the keys that exist)."""
    parts = []
    if 'modes_covered' in metrics:
        parts.append(f'modes {metrics["modes_covered"]}/{num_modes}')
    if 'registered_points' in metrics:
        parts.append(f'reg. {metrics["registered_points"]}')
    if 'hq_share' in metrics:
        parts.append(f'HQ {100 * metrics["hq_share"]:.1f}%')
    return ', '.join(parts)


def real_subset(points, count=2000, seed=0):
    """A random subset of the training points for the grey background of the scatter plots."""
    idx = np.random.RandomState(seed).choice(len(points), size=min(count, len(points)), replace=False)
    return np.asarray(points)[idx]


def loss_curves_figure(path, labelled_runs, title, keys=LOSS_KEYS):
    """One chart per statistic in `keys`, a line per run: labelled_runs = [(label, run_dir)]."""
    by_key = {}
    for label, run_dir in labelled_runs:
        for key, (xs, ys) in runs.loss_curves(run_dir, keys).items():
            by_key.setdefault(key, []).append((label, xs, ys))
    ordered = [dict(title=key, xlabel='kimg', series=by_key[key]) for key in keys if key in by_key]
    return chart_figure(path, ordered or [dict(title='no loss statistics reported', xlabel='kimg', series=[])],
                        title=title)


def add_seed_loss_figure(rep, prefix, jobs, seed):
    """`<prefix>_losses.png` in the report: the statistics of the runs named `*-seed<seed>`."""
    labelled = [(job.name, job.run_dir) for job in jobs if job.name.endswith(f'-seed{seed}')]
    title = f'{prefix.upper()} training statistics (seed {seed})'
    return rep.figure(loss_curves_figure(rep.path(f'{prefix}_losses.png'), labelled, title))
