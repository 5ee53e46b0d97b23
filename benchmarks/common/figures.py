"""The figures the toy benchmarks share: coverage scatter plots and loss curves from stats.jsonl."""

import numpy as np

from . import plots, runs

# Statistics worth plotting, per loss (whatever a run reported of these is drawn).
LOSS_KEYS = ('Loss/G/loss', 'Loss/D/loss', 'Loss/dist/rec', 'Loss/dist/latent_reg', 'Loss/dist/gp',
             'Loss/logan-b/E', 'Loss/logan-b/rec', 'Loss/rf/ae', 'Loss/advlat/qua_logits_start')


def extent_of(centres, pad=1.0):
    """Square plot extent (xmin, xmax, ymin, ymax) around the mode centres."""
    centres = np.asarray(centres)
    lo = float(centres.min()) - pad
    hi = float(centres.max()) + pad
    return lo, hi, lo, hi


def coverage_caption(metrics, num_modes):
    """'modes 8/8, reg. 1234, HQ 91.2%' from mode_coverage/high_quality results (keys that exist)."""
    parts = []
    if 'modes_covered' in metrics:
        parts.append(f'modes {metrics["modes_covered"]}/{num_modes}')
    if 'registered_points' in metrics:
        parts.append(f'reg. {metrics["registered_points"]}')
    if 'hq_share' in metrics:
        parts.append(f'HQ {100 * metrics["hq_share"]:.1f}%')
    return ', '.join(parts)


def loss_curves_figure(path, labelled_runs, title, keys=LOSS_KEYS):
    """One chart per statistic in `keys`, a line per run: labelled_runs = [(label, run_dir)]."""
    charts = {}
    for label, run_dir in labelled_runs:
        for key, (xs, ys) in runs.loss_curves(run_dir, keys).items():
            charts.setdefault(key, []).append((label, xs, ys))
    ordered = [dict(title=key, xlabel='kimg', series=charts[key]) for key in keys if key in charts]
    if not ordered:
        ordered = [dict(title='no loss statistics reported', xlabel='kimg', series=[])]
    return plots.chart_figure(path, ordered, title=title)


def real_subset(points, count=2000, seed=0):
    """A random subset of the training points for the grey background of the scatter plots."""
    rnd = np.random.RandomState(seed)
    idx = rnd.choice(len(points), size=min(count, len(points)), replace=False)
    return np.asarray(points)[idx]


def add_seed_loss_figure(rep, prefix, jobs, seed):
    """`<prefix>_losses.png` in the report: the statistics of the runs named `*-seed<seed>`."""
    labelled = [(job.name, job.run_dir) for job in jobs if job.name.endswith(f'-seed{seed}')]
    title = f'{prefix.upper()} training statistics (seed {seed})'
    return rep.add_figure(loss_curves_figure(rep.path(f'{prefix}_losses.png'), labelled, title))
