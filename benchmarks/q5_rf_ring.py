"""Q5: RFGAN (`--loss=rf`) vs the baseline GAN on the 8-Gaussian ring: modes covered, high-quality share.

    python -m benchmarks.q5_rf_ring [--quick] [--out results/q5] [--seeds 0,1,2] [--parallel 1]

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
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import numpy as np

from benchmarks.common import coverage, figures, report, runner, toy_metrics
from stylegan_plus.data import toy_data

BENCH_ID = 'q5'
TITLE = 'RFGAN vs GAN on the 8-Gaussian ring (std 0.1)'
STD = 0.1
POINTS_PER_MODE = 2000
PAPER = 'RFGAN covers all 8 modes, GAN collapses (Fig. 3, qualitative)'
METHODS = {'gan': ['--loss=stylegan2'], 'rf': ['--loss=rf']}
PROTOCOLS = {   # GAN kimg, RF autoencoder kimg (added to the RF run), default seeds
    'full': dict(kimg=1000, ae_kimg=200, seeds=[0, 1, 2]),
    'quick': dict(kimg=300, ae_kimg=200, seeds=[0, 1]),
    'smoke': dict(nimg=384, ae_nimg=256, seeds=[0]),
}


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID, runs=True)
    return parser.parse_args(argv)


def build_jobs(proto, data, seeds):
    """GAN runs of `kimg` (smoke: `nimg`); RF runs as long plus the autoencoder pre-training (part of --kimg)."""
    unit = 'nimg' if 'nimg' in proto else 'kimg'
    ae_length = proto[f'ae_{unit}']
    jobs = []
    for seed in seeds:
        for method, loss_args in METHODS.items():
            extra, length = list(loss_args), proto[unit]
            if method == 'rf':
                extra.append(f'--rf-ae-kimg={ae_length / 1000 if unit == "nimg" else ae_length:g}')
                length += ae_length
            jobs.append(runner.TrainJob(coverage.run_name(method, seed),
                                        runner.toy_train_args(data, seed, extra=extra, **{unit: length})))
    return jobs


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    rep = report.Report(BENCH_ID, TITLE, args, seeds, settings=dict(
        proto, std=STD, points_per_mode=POINTS_PER_MODE, **coverage.rule_settings(), methods=METHODS),
        script=__file__, argv=argv, layout='toy')
    data = toy_metrics.write_toy_set(rep.path('ring8_std0.1.npy'), 'ring8', STD, POINTS_PER_MODE)
    centres = toy_data.ring_centers()
    jobs, per_run, points, summary = coverage.train_and_score(rep, build_jobs(proto, data, seeds), args, centres,
                                                              STD, METHODS, seeds)
    for net in coverage.NETS:
        rf_modes = coverage.per_seed(per_run, 'rf', seeds, 'modes_covered', net)
        rep.compare(f'RF modes covered ({net}, per seed)', 'all 8', rf_modes, '8/8 every seed',
                    all(m == 8 for m in rf_modes))
        rep.compare(f'GAN modes covered ({net}, per seed)', 'collapses (< 8)',
                    coverage.per_seed(per_run, 'gan', seeds, 'modes_covered', net), '-', None)
    coverage.compare_summary(rep, summary, METHODS)
    coverage.coverage_figures(rep, 'q5', TITLE, jobs, METHODS, points, per_run,
                              figures.real_subset(np.load(data)), centres, seeds[0])
    rep.finish(dict(per_run=per_run, summary=summary, paper=PAPER))
    return rep.data


if __name__ == '__main__':
    main()
