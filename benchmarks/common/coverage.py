"""The mode-coverage protocol shared by Q2 and Q5: methods x seeds, scored on samples of the final snapshot.

Run names are `<method>-seed<seed>`. Both generators of a run's final snapshot are scored: `G`,
the trained network (what the papers evaluate), and `G_ema`, its moving average (what
generate.py and the metrics use). Each draws `samples` points from the run's prior (same latents;
the `z_dist` the snapshot records, e.g. uniform for Dist-GAN on --cfg=toy),
scored with `toy_metrics.mode_coverage` (Dist-GAN rule) and `toy_metrics.high_quality` (3 std).
"""

from stylegan_plus.sampling import prior as prior_lib

from . import figures, report, runner, runs, toy_metrics

NETS = ('G', 'G_ema')
SUMMARY_KEYS = ('modes_covered', 'registered_points', 'hq_share')
# The Dist-GAN rule: 2 000 samples; a point registers within 0.1414 of a centre; >= 20 cover a mode.
SAMPLES = 2000
SAMPLE_SEED = 123
RADIUS = 0.1414
MIN_COUNT = 20
HQ_K = 3


def rule_settings():
    """The scoring rule as results.json settings."""
    return dict(samples=SAMPLES, sample_seed=SAMPLE_SEED, radius=RADIUS, min_count=MIN_COUNT, hq_k=HQ_K, nets=NETS)


def run_name(method, seed):
    return f'{method}-seed{seed}'


def run_prior(run_dir):
    """The latent prior a run trained with ('normal' or 'uniform'): what its final snapshot records."""
    return prior_lib.snapshot_z_dist(runs.load_final_snapshot(run_dir))


def evaluate_run(run_dir, centres, std, samples, sample_seed, radius, min_count, prior=None, to_data_units=None):
    """({net: metrics dict}, {net: generated points [samples, 2]}) of a run's final snapshot.

    prior: the latents' distribution; None = the one the run trained with (`run_prior`).
    to_data_units: maps G's outputs [N, 2] to the units of `centres`, `std` and `radius` (for
    runs trained on rescaled data, `toy_metrics.UnitBox`); None = G already outputs data units.
    """
    return evaluate_snapshot(runs.load_final_snapshot(run_dir), centres, std, samples, sample_seed, radius, min_count,
                             prior, to_data_units)


def evaluate_snapshot(snapshot, centres, std, samples, sample_seed, radius, min_count, prior=None,
                      to_data_units=None):
    """`evaluate_run` of a loaded snapshot (`runs.load_snapshot`); prior None = the one it records."""
    prior = prior or prior_lib.snapshot_z_dist(snapshot)
    metrics, points = {}, {}
    for net in NETS:
        G = snapshot[net]
        z = toy_metrics.sample_prior(samples, G.z_dim, prior, sample_seed)
        points[net] = toy_metrics.generate_points(G, z)
        if to_data_units is not None:
            points[net] = to_data_units(points[net])
        metrics[net] = toy_metrics.mode_coverage(points[net], centres, radius, min_count)
        metrics[net].update(toy_metrics.high_quality(points[net], centres, std))
    return metrics, points


def evaluate_jobs(jobs, **kwargs):
    """({run name: {net: metrics}}, {run name: {net: points}}) for finished jobs; kwargs as `evaluate_run`."""
    per_run, points = {}, {}
    for job in jobs:
        per_run[job.name], points[job.name] = evaluate_run(job.run_dir, **kwargs)
    return per_run, points


def train_and_score(rep, jobs, args, centres, std, methods, seeds, to_data_units=None):
    """Run the train.py jobs (args.parallel, args.reuse), record them, score them by the rule.

    to_data_units: as in `evaluate_run`. Returns (per_run metrics, per_run points in data units,
    summary over seeds).
    """
    jobs = runner.run_jobs(jobs, rep.out, parallel=args.parallel, reuse=args.reuse)
    rep.add_runs(jobs)
    per_run, points = evaluate_jobs(jobs, centres=centres, std=std, samples=SAMPLES, sample_seed=SAMPLE_SEED,
                                    radius=RADIUS, min_count=MIN_COUNT, to_data_units=to_data_units)
    return jobs, per_run, points, summarise(per_run, methods, seeds)


def per_seed(per_run, method, seeds, key, net):
    """[value of `key` for each seed] of one method and network."""
    return [per_run[run_name(method, s)][net][key] for s in seeds]


def summarise(per_run, methods, seeds, keys=SUMMARY_KEYS):
    """{net: {method: {key: mean_std over seeds}}}."""
    return {net: {method: {key: report.mean_std(per_seed(per_run, method, seeds, key, net)) for key in keys}
                  for method in methods} for net in NETS}


def compare_summary(rep, summary, methods):
    """Informational rows: registered points and high-quality share, mean +- std, per network and method."""
    for net in NETS:
        for method in methods:
            for key in ('registered_points', 'hq_share'):
                value = summary[net][method][key]
                rep.compare(f'{method} {key} ({net})', '-', f'{value["mean"]:.4g} +- {value["std"]:.3g}', '-', None)


def coverage_figures(rep, prefix, title, jobs, methods, points, per_run, reals, centres, first_seed):
    """`<prefix>_coverage.png` (a panel per run and network) and `<prefix>_losses.png` (the first seed's curves)."""
    colors = {method: figures.PALETTE[i % len(figures.PALETTE)] for i, method in enumerate(methods)}
    panels = []
    for job in jobs:
        method = job.name.rsplit('-seed', 1)[0]
        for net in NETS:
            panels.append(dict(title=f'{job.name} {net}', points=points[job.name][net], reals=reals, centres=centres,
                               extent=figures.extent_of(centres),
                               caption=figures.coverage_caption(per_run[job.name][net], len(centres)),
                               color=colors.get(method, figures.PALETTE[0])))
    rep.figure(figures.scatter_figure(rep.path(f'{prefix}_coverage.png'), panels, title=title, max_cols=4,
                                        panel_size=230))
    figures.add_seed_loss_figure(rep, prefix, jobs, first_seed)
