"""Plot a training run's statistics to PNGs and summarise the loss plugin's terms.

    python -m stylegan_plus.cli.plot_stats runs/00000-digits16-dcgan      # losses.png, progress.png
    python -m stylegan_plus.cli.plot_stats <run> --summary                # + first vs last tick of each term

What is drawn and how is described in `stylegan_plus.io.plot_stats`; this module is its command line.
"""

import os

import click

from stylegan_plus.io import charts
from stylegan_plus.io import plot_stats


def _draw(run_dir, stats_path, out, stats, progress):
    """losses.png (and progress.png); a run that cannot be plotted is a ClickException (exit 1)."""
    try:
        plotted = plot_stats.plot_losses(stats_path, out, names=list(stats) or None)
        click.echo(f'Wrote {out} ({len(plotted)} panels)')
        if progress:
            click.echo(f'Wrote {plot_stats.plot_progress(run_dir, os.path.join(run_dir, "progress.png"))}')
    except (ValueError, charts.PlotUnavailable) as err:
        raise click.ClickException(str(err)) from None


def _summarise(stats_path):
    changes = plot_stats.term_changes(plot_stats.read_stats(stats_path))
    click.echo('Plugin terms, first tick -> last tick:' if changes else 'No plugin terms in this run.')
    for change in changes:
        click.echo('  ' + plot_stats.describe_change(change))


@click.command()
@click.argument('run_dir', type=click.Path(exists=True, file_okay=False))
@click.option('--out', help='Loss plot  [default: RUN_DIR/losses.png]', metavar='FILE')
@click.option('--stat', 'stats', multiple=True, metavar='NAME',
              help='Statistic to plot (repeatable)  [default: G/D losses, plugin terms, augment, sec/kimg]')
@click.option('--progress/--no-progress', default=True, show_default=True,
              help='Also write RUN_DIR/progress.png (newest snapshot grid beside the losses)')
@click.option('--summary', is_flag=True, help="Print each plugin term's first and last tick mean")
def main(run_dir, out, stats, progress, summary):
    """Plot the statistics of a training run (stats.jsonl) to PNGs."""
    stats_path = os.path.join(run_dir, 'stats.jsonl')
    if not os.path.isfile(stats_path):
        raise click.BadParameter(f'{run_dir} has no stats.jsonl (is it a train.py run folder?)', param_hint='RUN_DIR')
    _draw(run_dir, stats_path, out or os.path.join(run_dir, 'losses.png'), stats, progress)
    if summary:
        _summarise(stats_path)


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
