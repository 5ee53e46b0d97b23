"""Q5: RFGAN (`--loss=rf`) vs the baseline GAN on the 8-Gaussian ring: modes covered, high-quality share.

    python -m benchmarks.q5_rf_ring [--quick] [--out results/q5] [--seeds 0,1,2] [--parallel 1]
                                    [--setting preset|metz|metz-rfopt] [--kimg K] [--snap-ticks N]

Protocol (docs/benchmarks.md Q5, RFGAN paper section 4.1): 8 Gaussians on a ring of radius 2, std 0.1
per coordinate (2 000 points a mode); `--cfg=toy` networks and settings (MLP 128-128-128, z_dim
2, batch 128, Adam 1e-3/0.5); the baseline is `--loss=stylegan2` (non-saturating GAN, no R1 on
toy), RFGAN is `--loss=rf` with its default autoencoder pre-training (`--rf-ae-kimg=200`, which
counts toward `--kimg`, so the RF run is that much longer and both train the GAN equally long).
For every seed, 2 000 points from the final snapshot's G (what the paper evaluates) and from
G_ema (its moving average, what generate.py uses) are scored with the Dist-GAN rule (a point
registers within 0.1414 of a centre, a mode is covered with >= 20 points) and the high-quality
share (within 3 std = 0.3 of a centre).

The paper's result is a figure: RFGAN covers all 8 modes where the GAN collapses. Ours must
reach 8/8 on every seed.

`--setting=metz` swaps the preset's networks for Metz et al.'s 8-Gaussian ones (the setting the
RFGAN paper points to; loss classes `GANMetzRing` / `RFMetzRing` of `benchmarks.common.toy_losses`:
G 2 x 128 ReLU, D 1 x 128 ReLU, z_dim 256, Adam beta1 0.5 with lr 1e-3 for G and 1e-4 for D) with
batch 512 and the RFGAN paper's 2:1 G:D schedule (`--g-steps=2`). `--setting=metz-rfopt`: the same
networks with the RFGAN paper's own optimiser and batch (its DCGAN baseline code: Adam 2e-4,
beta1 0.5, for both networks, batch 64), 2:1 G:D. `--kimg` sets the GAN training length.
`--snap-ticks=N` keeps a network snapshot every N of the 40 progress ticks and scores each one, so
the modes can be followed over time (`q5_modes_over_time.png`; RF's snapshots are placed on the
kimg-of-GAN-training axis, after its autoencoder pre-training).
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import numpy as np

from benchmarks.common import coverage, figures, report, runner, runs
from benchmarks.common import toy_metrics
from stylegan_plus.data import toy_data
from stylegan_plus.io import charts

BENCH_ID = 'q5'
TITLE = 'RFGAN vs GAN on the 8-Gaussian ring (std 0.1)'
STD = 0.1
POINTS_PER_MODE = 2000
PAPER = 'RFGAN covers all 8 modes, GAN collapses (Fig. 3, qualitative)'
METHODS = {'gan': ['--loss=stylegan2'], 'rf': ['--loss=rf']}
LOSS_PREFIX = 'benchmarks.common.toy_losses.'
SETTINGS = {    # setting -> (methods, train.py arguments common to both)
    'preset': (METHODS, []),
    'metz': ({'gan': [f'--loss={LOSS_PREFIX}GANMetzRing'], 'rf': [f'--loss={LOSS_PREFIX}RFMetzRing']},
             ['--batch=512', '--g-steps=2']),
    'metz-rfopt': ({'gan': [f'--loss={LOSS_PREFIX}GANMetzRingRFOpt'], 'rf': [f'--loss={LOSS_PREFIX}RFMetzRingRFOpt']},
                   ['--batch=64', '--g-steps=2']),
}
PROTOCOLS = {   # GAN kimg, RF autoencoder kimg (added to the RF run), default seeds
    'full': dict(kimg=1000, ae_kimg=200, seeds=[0, 1, 2]),
    'quick': dict(kimg=300, ae_kimg=200, seeds=[0, 1]),
    'smoke': dict(nimg=384, ae_nimg=256, seeds=[0]),
}


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID, runs=True)
    parser.add_argument('--setting', choices=list(SETTINGS), default='preset',
                        help='networks and schedule: preset = --cfg=toy as is; metz = Metz et al.\'s networks, '
                             '2:1 G:D; metz-rfopt = the same with Adam 2e-4 and batch 64 (default: %(default)s)')
    parser.add_argument('--kimg', type=report.positive_int, default=None, metavar='K',
                        help='kimg of GAN training per run (default: set by the protocol)')
    parser.add_argument('--snap-ticks', type=report.positive_int, default=None, metavar='N',
                        help='keep a snapshot every N ticks (40 per run) and score each (default: the final one only)')
    return parser.parse_args(argv)


def build_jobs(proto, data, seeds, methods=METHODS, common=(), snap_ticks=None):
    """GAN runs of `kimg` (smoke: `nimg`); RF runs as long plus the autoencoder pre-training (part of --kimg).

    common: train.py arguments of every run (before the loss's); snap_ticks: --snap of every run.
    """
    unit = 'nimg' if 'nimg' in proto else 'kimg'
    ae_length = proto[f'ae_{unit}']
    jobs = []
    for seed in seeds:
        for method, loss_args in methods.items():
            extra, length = list(common) + list(loss_args), proto[unit]
            if snap_ticks:
                extra.append(f'--snap={snap_ticks}')     # the last --snap wins over toy_train_args' 1000000
            if method == 'rf':
                extra.append(f'--rf-ae-kimg={ae_length / 1000 if unit == "nimg" else ae_length:g}')
                length += ae_length
            jobs.append(runner.TrainJob(coverage.run_name(method, seed),
                                        runner.toy_train_args(data, seed, extra=extra, **{unit: length})))
    return jobs


def modes_over_time(jobs, centres, ae_kimg):
    """{run name: {net: [(kimg of GAN training, modes covered, HQ share)] per snapshot}}.

    RF runs count kimg after their `ae_kimg` of autoencoder pre-training (snapshots during it are
    skipped). Each snapshot is scored like the final one (`coverage.evaluate_snapshot`), with the
    latents of the run's prior.
    """
    curves = {}
    for job in jobs:
        offset = ae_kimg if job.name.startswith('rf-') else 0
        prior = coverage.run_prior(job.run_dir)
        per_net = {net: [] for net in coverage.NETS}
        for kimg, path in runs.snapshots(job.run_dir):
            if kimg - offset <= 0:
                continue
            metrics, _points = coverage.evaluate_snapshot(
                runs.load_snapshot(path), centres, STD, coverage.SAMPLES, coverage.SAMPLE_SEED, coverage.RADIUS,
                coverage.MIN_COUNT, prior)
            for net in coverage.NETS:
                per_net[net].append((kimg - offset, metrics[net]['modes_covered'], round(metrics[net]['hq_share'], 4)))
        curves[job.name] = per_net
    return curves


def over_time_figure(rep, curves):
    """`q5_modes_over_time.png`: modes covered at every snapshot, a line per run (unsmoothed: the
    counts are small integers; RF solid, GAN dashed), one panel per network, y axis 0-8."""
    fig, axes = charts.panel_grid(len(coverage.NETS), cols=2, panel_size=(4.2, 2.6),
                                  title=f'{TITLE}: modes covered per snapshot')
    for ax, net in zip(axes, coverage.NETS):
        for i, (name, per_net) in enumerate(curves.items()):
            ax.plot([p[0] for p in per_net[net]], [p[1] for p in per_net[net]], marker='o', markersize=3,
                    linewidth=1.2, color=figures.PALETTE[i % len(figures.PALETTE)],
                    linestyle='-' if name.startswith('rf-') else '--', label=name)
        ax.set_ylim(-0.3, 8.3)
        charts.style_axes(ax, f'modes covered ({net})', 'kimg of GAN training', 'modes (of 8)')
        ax.legend(fontsize=6)
    rep.figure(charts.save_figure(fig, rep.path('q5_modes_over_time.png'), dpi=figures.DPI))


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    if args.kimg and 'kimg' in proto:
        proto['kimg'] = args.kimg
    methods, common = SETTINGS[args.setting]
    rep = report.Report(BENCH_ID, TITLE, args, seeds, settings=dict(
        proto, std=STD, points_per_mode=POINTS_PER_MODE, **coverage.rule_settings(), methods=methods,
        setting=args.setting, common_args=common, snap_ticks=args.snap_ticks),
        script=__file__, argv=argv, layout='toy')
    data = toy_metrics.write_toy_set(rep.path('ring8_std0.1.npy'), 'ring8', STD, POINTS_PER_MODE)
    centres = toy_data.ring_centers()
    jobs, per_run, points, summary = coverage.train_and_score(
        rep, build_jobs(proto, data, seeds, methods, common, args.snap_ticks), args, centres, STD, methods, seeds)
    curves = modes_over_time(jobs, centres, proto.get('ae_kimg', 0)) if args.snap_ticks else {}
    if curves:
        over_time_figure(rep, curves)
        for name, per_net in curves.items():
            print(f'[{name}] modes over time (G): ' + ' '.join(f'{k}:{m}' for k, m, _h in per_net['G']), flush=True)
    for net in coverage.NETS:
        rf_modes = coverage.per_seed(per_run, 'rf', seeds, 'modes_covered', net)
        rep.compare(f'RF modes covered ({net}, per seed)', 'all 8', rf_modes, '8/8 every seed',
                    all(m == 8 for m in rf_modes))
        rep.compare(f'GAN modes covered ({net}, per seed)', 'collapses (< 8)',
                    coverage.per_seed(per_run, 'gan', seeds, 'modes_covered', net), '-', None)
    coverage.compare_summary(rep, summary, METHODS)
    coverage.coverage_figures(rep, 'q5', TITLE, jobs, METHODS, points, per_run,
                              figures.real_subset(np.load(data)), centres, seeds[0])
    rep.finish(dict(per_run=per_run, summary=summary, paper=PAPER, modes_over_time=curves))
    return rep.data


if __name__ == '__main__':
    main()
