"""Plot a training run's statistics (`stats.jsonl`) with matplotlib, and summarise the plugin's terms.

    python -m stylegan_plus.cli.plot_stats runs/00000-digits16-dcgan      # losses.png, progress.png
    python -m stylegan_plus.cli.plot_stats <run> --summary                # + first vs last tick of each term

(the command line is stylegan_plus/cli/plot_stats.py; this module draws and summarises).

Each line of stats.jsonl is one tick: `{"<stat>": {"num", "mean", "std"}, ..., "timestamp"}` (NaN
written as a bare token). Against `Progress/kimg`:

- `losses.png`: one panel per statistic: the G and D losses (`Loss/G/*`, `Loss/D/*`), every term a
  loss plugin reports (`Loss/<plugin>/<term>`, panels of one plugin share a colour), the augment
  probability and sec/kimg. Each panel shows the raw per-tick means (thin) under a light centred
  moving average (bold).
- `progress.png`: the newest snapshot grid of the run (`fakesNNNNNN.png`) beside the loss panels.

matplotlib is imported only when a plot is drawn (Agg backend); reading and summarising need
numpy alone.
"""

import glob
import json
import os
import re

import numpy as np

DEFAULT_PATTERN = '/loss'      # `loss_series` default: stat names containing this
BASELINE_GROUPS = ('scores', 'signs')   # Loss/<group>/... the baseline reports that are not losses
AUGMENT_STAT = 'Progress/augment'
SPEED_STAT = 'Timing/sec_per_kimg'
_GRID_RE = re.compile(r'fakes(\d+)\.png$')


def read_stats(path):
    """List of per-tick dicts from a stats.jsonl file (NaN tokens accepted)."""
    with open(path, 'rt') as f:
        return [json.loads(line) for line in f if line.strip()]


def stat_names(records):
    """Every statistic name in the records, in order of first appearance (`timestamp` excluded)."""
    names = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, dict):
                names.setdefault(key, None)
    return list(names)


def loss_series(records, names=None):
    """(kimg float64 [T], {name: tick means float64 [T]}) for `names` (default: names containing '/loss').

    A tick that did not report a statistic gives NaN.
    """
    if names is None:
        names = [name for name in stat_names(records) if DEFAULT_PATTERN in name.lower()]
    kimg = np.array([record.get('Progress/kimg', {}).get('mean', np.nan) for record in records], dtype=np.float64)
    series = {name: np.array([record.get(name, {}).get('mean', np.nan) for record in records], dtype=np.float64)
              for name in names}
    return kimg, series


def plugin_terms(names):
    """{plugin: [stat names]} of the `Loss/<plugin>/<term>` statistics a loss plugin added.

    The baseline's own groups (G, D, scores, signs) are not plugin terms.
    """
    groups = {}
    for name in names:
        parts = name.split('/')
        if len(parts) >= 3 and parts[0] == 'Loss' and parts[1] not in ('G', 'D', *BASELINE_GROUPS):
            groups.setdefault(parts[1], []).append(name)
    return groups


def gd_losses(names):
    """The G and D loss statistics (`Loss/G/*`, then `Loss/D/*`) among `names`."""
    return [n for n in names if n.startswith('Loss/G/')] + [n for n in names if n.startswith('Loss/D/')]


def default_panels(names, with_progress=True):
    """Stat names to plot, in panel order: G and D losses, plugin terms, then augment p and sec/kimg."""
    panels = gd_losses(names) + [n for terms in plugin_terms(names).values() for n in terms]
    if with_progress:
        panels += [n for n in (AUGMENT_STAT, SPEED_STAT) if n in names]
    return panels


def _panel_labels(name):
    """(title, y label) of one statistic's panel."""
    if name == AUGMENT_STAT:
        return f'{name}: augment probability', 'p'
    if name == SPEED_STAT:
        return f'{name}: training speed', 'sec/kimg'
    # The stat's own name: the one stats.jsonl and TensorBoard use (the colour tells G, D, plugin).
    return name, 'tick mean'


def _panel_colors(names):
    """A colour per statistic: G blue, D orange, one colour per plugin, grey for the rest."""
    colors = {}
    plugins = list(plugin_terms(names))
    for name in names:
        group = name.split('/')[1] if name.startswith('Loss/') and name.count('/') >= 2 else None
        if group == 'G':
            colors[name] = '#1f77b4'
        elif group == 'D':
            colors[name] = '#ff7f0e'
        elif group in plugins:
            colors[name] = ('#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2')[plugins.index(group) % 5]
        else:
            colors[name] = '#555555'
    return colors


def draw_panels(axes, kimg, series, colors):
    """Draw each series {name: [T]} into its own axes (same order)."""
    from stylegan_plus.io import charts  # pylint: disable=import-outside-toplevel
    for ax, (name, values) in zip(axes, series.items()):
        charts.raw_and_smoothed(ax, kimg, values, colors[name])
        title, ylabel = _panel_labels(name)
        charts.style_axes(ax, title, 'kimg', ylabel)


def _check_names(records, names, source):
    known = stat_names(records)
    missing = [name for name in names if name not in known]
    if missing:
        shown = ', '.join(default_panels(known)) or ', '.join(known[:12])
        raise ValueError(f'{source}: no statistic named {", ".join(map(repr, missing))}; '
                         f'this run reports e.g. {shown}')


def plot_losses(stats_path, out_path, names=None):
    """Write the per-statistic panels of `stats_path` to `out_path` (PNG); returns the names plotted.

    names: stats to plot (default: `default_panels`). ValueError for an empty file, an unknown
    name or nothing to plot; charts.PlotUnavailable without matplotlib.
    """
    from stylegan_plus.io import charts  # pylint: disable=import-outside-toplevel
    records = read_stats(stats_path)
    if not records:
        raise ValueError(f'{stats_path} holds no ticks yet')
    if names:
        _check_names(records, names, stats_path)
    names = list(names) if names else default_panels(stat_names(records))
    if not names:
        raise ValueError(f'{stats_path}: no loss statistics (Loss/G/..., Loss/D/..., Loss/<plugin>/...) to plot')
    kimg, series = loss_series(records, names)
    title = os.path.basename(os.path.dirname(os.path.abspath(stats_path)))
    fig, axes = charts.panel_grid(len(series), cols=3, title=title)
    draw_panels(axes, kimg, series, _panel_colors(names))
    charts.save_figure(fig, out_path)
    return names


def newest_grid(run_dir):
    """Path of the snapshot grid with the highest kimg (`fakesNNNNNN.png`, else fakes_init.png), or None."""
    grids = sorted((int(m.group(1)), path) for path in glob.glob(os.path.join(run_dir, 'fakes*.png'))
                   for m in [_GRID_RE.search(os.path.basename(path))] if m)
    if grids:
        return grids[-1][1]
    init = os.path.join(run_dir, 'fakes_init.png')
    return init if os.path.isfile(init) else None


def plot_progress(run_dir, out_path):
    """Write `progress.png`: the newest snapshot grid beside the loss panels (no augment/speed panels)."""
    import PIL.Image  # pylint: disable=import-outside-toplevel
    from stylegan_plus.io import charts  # pylint: disable=import-outside-toplevel
    records = read_stats(os.path.join(run_dir, 'stats.jsonl'))
    if not records:
        raise ValueError(f'{run_dir}/stats.jsonl holds no ticks yet')
    names = default_panels(stat_names(records), with_progress=False)
    kimg, series = loss_series(records, names)
    grid = newest_grid(run_dir)
    cols = 2 if len(series) > 1 else 1
    rows = max(1, -(-len(series) // cols))
    plt = charts.pyplot()
    fig = plt.figure(figsize=(5.2 + 3.4 * cols, max(4.6, 2.3 * rows)), layout='constrained')
    left, right = fig.subfigures(1, 2, width_ratios=[5.2, 3.4 * cols])
    ax_img = left.subplots()
    ax_img.axis('off')
    if grid is not None:
        with PIL.Image.open(grid) as img:
            ax_img.imshow(np.asarray(img.convert('RGB')), interpolation='nearest')
        match = _GRID_RE.search(os.path.basename(grid))
        ax_img.set_title(f'{os.path.basename(grid)}' + (f'  ({int(match.group(1))} kimg)' if match else ''),
                         fontsize=10)
    else:
        ax_img.text(0.5, 0.5, 'no snapshot grid yet', ha='center', va='center')
    if series:
        axes = right.subplots(rows, cols, squeeze=False).ravel()
        for ax in axes[len(series):]:
            ax.set_visible(False)
        draw_panels(axes[:len(series)], kimg, series, _panel_colors(names))
    fig.suptitle(f'{os.path.basename(os.path.abspath(run_dir))}: newest samples and losses', fontsize=11)
    charts.save_figure(fig, out_path)
    return out_path


def term_changes(records, names=None):
    """[(name, first mean, first kimg, last mean, last kimg)] of each plugin term, first vs last tick reporting it."""
    names = names or [n for terms in plugin_terms(stat_names(records)).values() for n in terms]
    kimg, series = loss_series(records, names)
    changes = []
    for name, values in series.items():
        seen = np.flatnonzero(np.isfinite(values))
        if len(seen):
            changes.append((name, values[seen[0]], kimg[seen[0]], values[seen[-1]], kimg[seen[-1]]))
    return changes


def describe_change(change):
    """'Loss/clr/rec: 0.678 (tick at 0.1 kimg) -> 0.118 (at 120 kimg), -83 %'."""
    name, first, first_kimg, last, last_kimg = change
    rel = f', {100 * (last - first) / abs(first):+.0f} %' if first != 0 else ''
    return f'{name}: {first:.4g} (at {first_kimg:.1f} kimg) -> {last:.4g} (at {last_kimg:.1f} kimg){rel}'
