"""PNG figures of the toy benchmarks, drawn with matplotlib (Agg): scatter panels and line charts.

Figures are small (a few hundred pixels per panel) so that the ones the README shows can be
committed. matplotlib comes with the `bench` extra (`pip install -e ".[bench]"`); it is loaded
on the first figure, through `stylegan_plus.io.charts`, which also writes the PNG atomically.
"""

import numpy as np

from stylegan_plus.io import charts

PALETTE = charts.PALETTE
REAL_COLOR = '#bebebe'
CENTRE_COLOR = '#000000'
_DPI = 100              # panel sizes below are in pixels at this resolution


def _xy(points):
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) if points is not None else np.zeros([0, 2])


def _draw_scatter(ax, panel):
    xmin, xmax, ymin, ymax = panel['extent']
    layers = [('real', _xy(panel.get('reals')), dict(s=2, color=REAL_COLOR)),
              ('generated', _xy(panel.get('points')), dict(s=3, color=panel['color'])),
              ('mode centre', _xy(panel.get('centres')), dict(s=30, marker='+', color=CENTRE_COLOR))]
    for label, xy, style in layers:
        if len(xy):
            ax.scatter(xy[:, 0], xy[:, 1], label=label, linewidths=0.8 if label == 'mode centre' else 0, **style)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect('equal')
    charts.style_axes(ax, panel.get('title', ''), panel.get('caption', ''), '')


def scatter_figure(path, panels, title='', panel_size=260, max_cols=4):
    """Write a PNG with one scatter panel per entry of `panels`; returns path.

    Each panel: dict(title str, points [N, 2] generated (drawn in `color`), reals [M, 2] or None
    (light grey, underneath), centres [K, 2] (black crosses), extent (xmin, xmax, ymin, ymax),
    caption str (under the x axis), color (matplotlib colour; default: palette by position)).
    """
    side = panel_size / _DPI
    fig, axes = charts.panel_grid(len(panels), cols=max_cols, panel_size=(side, side + 0.45), title=title)
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        _draw_scatter(ax, dict(panel, color=panel.get('color', PALETTE[i % len(PALETTE)])))
    if panels:
        axes[0].legend(fontsize=6, loc='upper right', markerscale=3)
    return charts.save_figure(fig, path, dpi=_DPI)


def chart_figure(path, charts_spec, title='', chart_size=(360, 220), max_cols=3):
    """Write a PNG with one line chart per entry of `charts_spec`; returns path.

    Each chart: dict(title str, xlabel str, ylabel str (optional), series list of (label, xs, ys)).
    A label keeps one colour in every chart (palette order of first appearance). Series of four or
    more points are drawn raw (thin) under a centred moving average (bold).
    """
    colors = {}
    for chart in charts_spec:
        for label, _xs, _ys in chart['series']:
            colors.setdefault(label, PALETTE[len(colors) % len(PALETTE)])
    size = (chart_size[0] / _DPI, chart_size[1] / _DPI)
    fig, axes = charts.panel_grid(max(len(charts_spec), 1), cols=max_cols, panel_size=size, title=title)
    for ax, chart in zip(axes, charts_spec):
        for label, xs, ys in chart['series']:
            charts.raw_and_smoothed(ax, xs, ys, colors[label], label=label)
        charts.style_axes(ax, chart.get('title', ''), chart.get('xlabel', ''), chart.get('ylabel', 'tick mean'))
        if chart['series']:
            ax.legend(fontsize=6)
    return charts.save_figure(fig, path, dpi=_DPI)
