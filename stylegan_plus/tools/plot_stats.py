"""Plot training losses from a run's `stats.jsonl` to a PNG.

    python -m stylegan_plus.tools.plot_stats runs/00000-digits32-dcgan     # -> <run>/losses.png

Each line of stats.jsonl is one tick: `{"<stat>": {"num", "mean", "std"}, ..., "timestamp"}`
(NaN written as a bare token). The plot shows the tick means of every `Loss/*/loss` statistic
(G and D losses, and plugin terms named so) against `Progress/kimg`. matplotlib is used when
installed; otherwise the plot is drawn with PIL alone.
"""

import json
import math
import os

import click
import numpy as np
import PIL.Image
import PIL.ImageDraw

DEFAULT_PATTERN = '/loss'          # stat names containing this are plotted by default
_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def read_stats(path):
    """List of per-tick dicts from a stats.jsonl file (NaN tokens accepted)."""
    with open(path, 'rt') as f:
        return [json.loads(line) for line in f if line.strip()]


def loss_series(records, names=None):
    """(kimg [T], {name: means [T]}) for the chosen stats (default: names containing '/loss')."""
    if names is None:
        names = []
        for record in records:
            names += [k for k in record if DEFAULT_PATTERN in k.lower() and k not in names]
    kimg = np.array([record.get('Progress/kimg', {}).get('mean', np.nan) for record in records], dtype=np.float64)
    series = {name: np.array([record.get(name, {}).get('mean', np.nan) for record in records], dtype=np.float64)
              for name in names}
    return kimg, series


def _plot_matplotlib(kimg, series, path, title):
    import matplotlib # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt # pylint: disable=import-outside-toplevel
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, values in series.items():
        ax.plot(kimg, values, marker='.', label=name)
    ax.set_xlabel('kimg')
    ax.set_ylabel('tick mean')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _finite_range(arrays):
    values = np.concatenate([a[np.isfinite(a)] for a in arrays] + [np.zeros(0)])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return (lo - 0.5, hi + 0.5) if math.isclose(lo, hi) else (lo, hi)


def _plot_pil(kimg, series, path, title, size=(700, 400)):
    width, height = size
    left, right, top, bottom = 60, 20, 30, 40
    image = PIL.Image.new('RGB', size, 'white')
    draw = PIL.ImageDraw.Draw(image)
    x_lo, x_hi = _finite_range([kimg])
    y_lo, y_hi = _finite_range(list(series.values()))

    def to_px(x, y):
        px = left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)
        py = height - bottom - (y - y_lo) / (y_hi - y_lo) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    draw.text((left, 8), title, fill=(0, 0, 0))
    draw.text((width // 2 - 10, height - 20), 'kimg', fill=(0, 0, 0))
    for value, anchor_y in ((y_hi, top), (y_lo, height - bottom - 10)):
        draw.text((4, anchor_y), f'{value:.3g}', fill=(0, 0, 0))
    draw.text((left, height - bottom + 4), f'{x_lo:.3g}', fill=(0, 0, 0))
    draw.text((width - right - 40, height - bottom + 4), f'{x_hi:.3g}', fill=(0, 0, 0))
    for idx, (name, values) in enumerate(series.items()):
        color = _COLORS[idx % len(_COLORS)]
        points = [to_px(x, y) for x, y in zip(kimg, values) if np.isfinite(x) and np.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
        draw.text((left + 10, top + 8 + 14 * idx), name, fill=color)
    image.save(path)


def plot_losses(stats_path, out_path, names=None, backend='auto'):
    """Write the loss plot of `stats_path` to `out_path`; returns the backend used ('matplotlib'/'pil')."""
    records = read_stats(stats_path)
    if not records:
        raise ValueError(f'{stats_path} holds no ticks yet')
    kimg, series = loss_series(records, names)
    if not series:
        raise ValueError(f'{stats_path}: no statistics matching {names or DEFAULT_PATTERN!r}')
    title = os.path.basename(os.path.dirname(os.path.abspath(stats_path)))
    if backend in ('auto', 'matplotlib'):
        try:
            _plot_matplotlib(kimg, series, out_path, title)
            return 'matplotlib'
        except ImportError:
            if backend == 'matplotlib':
                raise
    _plot_pil(kimg, series, out_path, title)
    return 'pil'


@click.command()
@click.argument('run_dir', type=click.Path(exists=True, file_okay=False))
@click.option('--out', help='Output PNG  [default: RUN_DIR/losses.png]', metavar='FILE')
@click.option('--stat', 'stats', multiple=True, help='Statistic to plot (repeatable)  [default: every Loss/*/loss]')
@click.option('--backend', type=click.Choice(['auto', 'matplotlib', 'pil']), default='auto', show_default=True)
def main(run_dir, out, stats, backend):
    """Plot the loss statistics of a training run (stats.jsonl) to a PNG."""
    stats_path = os.path.join(run_dir, 'stats.jsonl')
    if not os.path.isfile(stats_path):
        raise click.BadParameter(f'{run_dir} has no stats.jsonl', param_hint='RUN_DIR')
    out = out or os.path.join(run_dir, 'losses.png')
    try:
        used = plot_losses(stats_path, out, names=list(stats) or None, backend=backend)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f'Wrote {out} ({used})')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
