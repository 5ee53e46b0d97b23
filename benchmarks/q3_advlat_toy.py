"""Q3: AdvLatGAN on the ring and the grid: high-quality share before/after `-z` sampling, and `advlat-qua` training.

    python -m benchmarks.q3_advlat_toy [--quick] [--out results/q3] [--seeds 0,1,2] [--latents N] [--z-steps T]
                                       [--datasets ring,grid] [--kimg ring=256,grid=2500] [--qua 0.1x3,0.3x5]
                                       [--z-on all|base] [--lr-decay none|linear] [--activation relu|lrelu]
                                       [--g-batch-factor K]

Protocol (docs/benchmarks.md Q3, AdvLatGAN section 4 / Fig. 9 and its appendix settings): 8 Gaussians on
a ring of radius 2 (std 0.001) and 25 on a grid of spacing 2 (std 0.0025), 2 000 points a mode;
MLP G and D with hidden widths 100-200-100 and ReLU (z_dim 2, Gaussian prior, batch 128, Adam
1e-3/0.5, the `--cfg=toy` settings otherwise; widths and activation come from the loss class
`benchmarks.common.toy_losses.GANAdvLatToyReLU`, the baseline loss unchanged; `--activation=lrelu`
keeps the toy preset's leaky ReLU, `GANAdvLatToy`). Each data set, each
seed: the baseline trained 2 000 iterations (256 kimg), and the same with `+advlat-qua`
(its `--cfg=toy` defaults: 5 I-FGSM steps of 0.3 before each D step). Then `-z` sampling on each final G/D: latents
move by T steps of 0.003 (I-FGSM on the generator loss, `stylegan_plus.sampling.latent_steps`,
the function `generate.py --latent-steps` uses). Reported before and after: the share of
high-quality samples (within 3 std of a centre) and the modes covered (a mode counts when at
least 1% of the samples are high-quality samples of it).

The paper used 8 000 steps on 20 000 latents; each latent moves independently (the MLPs do not
mix the batch), so the full protocol here moves 2 000 latents (8 000 steps) to stay within an
hour on 2 cores; `--latents 20000` runs the paper's count (about 20 minutes per model on one
core). The quick protocol: 1 seed, 2 000 steps on 1 000 latents.

Sweeps: `--qua EPSxSTEPS,...` trains one `advlat-qua` model per setting (`--advlat-eps=EPS
--advlat-steps=STEPS`, run names `qua-e<EPS>-s<STEPS>`) instead of the plugin's defaults;
`--kimg ring=K,grid=K` sets each data set's training length (the paper trains the grid 50 epochs:
2 500 kimg of our 50 000 grid points); `--datasets` picks the data sets; `--z-on=base` runs `-z`
only on the baseline models (the `-qua` models are then scored as trained); `--lr-decay=linear`
trains every model (baseline and `-qua` alike) with the rates falling in a straight line to 0 at
the run's last iteration (`--lr-schedule=linear:ITERS`), as AdvLatGAN's training scripts do;
`--g-batch-factor=2` trains every model's G on twice the batch (`train.py --g-batch-factor`), as
pytorch-gan-collections, the base of those scripts, does.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import math

import numpy as np
import torch

from benchmarks.common import coverage, figures, report, runner, runs, toy_losses, toy_metrics
from stylegan_plus.sampling import latent_steps
from stylegan_plus.data import toy_data
from stylegan_plus.sampling import prior as prior_lib
from stylegan_plus.training import configs

BENCH_ID = 'q3'
TITLE = 'AdvLatGAN -z and -qua on the ring (std 0.001) and the grid (std 0.0025)'
DATASETS = {'ring': dict(kind='ring8', std=0.001), 'grid': dict(kind='grid25', std=0.0025)}
POINTS_PER_MODE = 2000
# --activation -> the loss class that sets the networks: the appendix's ReLU, or the toy preset's leaky ReLU
# (slope 0.2), which every Q3 run up to commit d319c8a used.
LOSS_CLASSES = {'relu': toy_losses.GANAdvLatToyReLU, 'lrelu': toy_losses.GANAdvLatToy}


def loss_methods(activation='relu'):
    """{'base': [--loss=...], 'qua': [--loss=...+advlat-qua]} with the networks of `activation`."""
    cls = LOSS_CLASSES[activation]
    loss = f'{cls.__module__}.{cls.__name__}'
    return {'base': [f'--loss={loss}'], 'qua': [f'--loss={loss}+advlat-qua']}


METHODS = loss_methods()
Z_EPS = 0.003
SAMPLE_SEED = 123
HQ_K, MIN_SHARE = 3.0, 0.01
STAGES = {'base': ('base', 'before'), 'base -z': ('base', 'after_z'), 'qua': ('qua', 'before'),
          'qua -z': ('qua', 'after_z')}     # table row -> (method, samples before/after -z)
PAPER = 'qualitative (Fig. 9): after -z the samples sit closer to the centres'
PROTOCOLS = {
    'full': dict(kimg=256, z_steps=8000, latents=2000, seeds=[0, 1, 2], datasets=['ring', 'grid']),
    'quick': dict(kimg=256, z_steps=2000, latents=1000, seeds=[0], datasets=['ring', 'grid']),
    'smoke': dict(nimg=384, z_steps=3, latents=200, seeds=[0], datasets=['ring']),
}


def qua_list(text):
    """argparse type: 'EPSxSTEPS,...' -> [(eps float > 0, steps int >= 1), ...]."""
    try:
        parts = [part.split('x') for part in text.split(',') if part.strip()]
        pairs = [(float(eps), int(steps)) for eps, steps in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f'--qua={text!r}: expected EPSxSTEPS pairs, e.g. 0.1x3,0.3x5') from None
    if not pairs or any(not eps > 0 or steps < 1 for eps, steps in pairs):
        raise argparse.ArgumentTypeError(f'--qua={text!r}: eps must be > 0 and steps >= 1')
    return pairs


def kimg_map(text):
    """argparse type: 'DATASET=KIMG,...' -> {dataset: kimg int >= 1} over the names of DATASETS."""
    try:
        parts = [part.split('=') for part in text.split(',') if part.strip()]
        values = {name.strip(): int(kimg) for name, kimg in parts}
    except ValueError:
        raise argparse.ArgumentTypeError(f'--kimg={text!r}: expected DATASET=KIMG pairs, e.g. ring=256,grid=2500') \
            from None
    if not values or any(name not in DATASETS or kimg < 1 for name, kimg in values.items()):
        raise argparse.ArgumentTypeError(f'--kimg={text!r}: data sets are {", ".join(DATASETS)}, kimg >= 1')
    return values


def qua_methods(pairs, base_methods=METHODS):
    """{'base': ..., 'qua-e<eps>-s<steps>': ...}: the baseline and one advlat-qua model per (eps, steps)."""
    methods = {'base': base_methods['base']}
    for eps, steps in pairs:
        methods[f'qua-e{eps:g}-s{steps}'] = base_methods['qua'] + [f'--advlat-eps={eps:g}', f'--advlat-steps={steps}']
    return methods


def stages_of(methods, z_on='all'):
    """Table rows -> (method, stage): each method as trained, and after -z (every method, or 'base' only)."""
    stages = {}
    for method in methods:
        stages[method] = (method, 'before')
        if z_on == 'all' or method == 'base':
            stages[f'{method} -z'] = (method, 'after_z')
    return stages


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID, runs=True)
    parser.add_argument('--datasets', type=report.name_list(DATASETS), default=None, metavar='LIST',
                        help='data sets to run, e.g. ring,grid (default: set by the protocol)')
    parser.add_argument('--kimg', type=kimg_map, default=None, metavar='MAP',
                        help='training kimg per data set, e.g. ring=256,grid=2500 (default: the protocol\'s, 256)')
    parser.add_argument('--qua', type=qua_list, default=None, metavar='LIST',
                        help='advlat-qua settings EPSxSTEPS to sweep (default: the plugin\'s, one model)')
    parser.add_argument('--z-on', choices=('all', 'base'), default='all',
                        help='models moved by -z: all, or the baseline only (default: %(default)s)')
    parser.add_argument('--latents', type=report.positive_int, default=None, metavar='N',
                        help='latents moved by -z per model (default: 2000 full, 1000 quick; paper 20000)')
    parser.add_argument('--z-steps', type=report.positive_int, default=None, metavar='T',
                        help='-z steps of size 0.003 (default: 8000 full, 2000 quick)')
    parser.add_argument('--lr-decay', choices=('none', 'linear'), default='none',
                        help='learning rates of every model: constant, or linear to 0 at the last iteration '
                             '(AdvLatGAN\'s scripts) (default: %(default)s)')
    parser.add_argument('--activation', choices=tuple(LOSS_CLASSES), default='relu',
                        help='hidden activation of G and D: relu (the AdvLatGAN appendix) or lrelu (slope 0.2, '
                             'the toy preset; every Q3 run up to commit d319c8a) (default: %(default)s)')
    parser.add_argument('--g-batch-factor', type=report.positive_int, default=1, metavar='K',
                        help='every model\'s G main step on K x the batch (2: pytorch-gan-collections) '
                             '(default: %(default)s)')
    return parser.parse_args(argv)


def run_name(dataset, method, seed):
    return f'{dataset}-{method}-seed{seed}'


def linear_decay_args(length):
    """['--lr-schedule=linear:ITERS'] reaching 0 at the last iteration of a `--cfg=toy` run of
    `length` (dict(kimg=K) or dict(nimg=N))."""
    batch = configs.build_config('toy', resolution=1).args.batch_size
    nimg = length['nimg'] if 'nimg' in length else length['kimg'] * 1000
    return [f'--lr-schedule=linear:{math.ceil(nimg / batch)}']


def build_jobs(proto, data_paths, seeds, methods=METHODS, lr_decay='none', g_batch_factor=1):
    """One TrainJob per data set, seed and method; the length is proto's nimg, else its
    kimg_per_dataset entry (--kimg), else its kimg. lr_decay 'linear' adds linear_decay_args;
    g_batch_factor > 1 adds --g-batch-factor."""
    def length(dataset):
        if 'nimg' in proto:
            return dict(nimg=proto['nimg'])
        return dict(kimg=proto.get('kimg_per_dataset', {}).get(dataset, proto['kimg']))

    def extra(dataset, loss_args):
        return (list(loss_args) + (linear_decay_args(length(dataset)) if lr_decay == 'linear' else []) +
                ([f'--g-batch-factor={g_batch_factor}'] if g_batch_factor > 1 else []))
    return [runner.TrainJob(run_name(dataset, method, seed),
                            runner.toy_train_args(data_paths[dataset], seed, extra=extra(dataset, loss_args),
                                                  **length(dataset)))
            for dataset in data_paths for seed in seeds for method, loss_args in methods.items()]


def score(points, centres, std):
    """High-quality share and modes; the median distance to the nearest centre, which still tells
    samples apart when hardly any lie within 3 std; and the per-mode closeness (mean over the
    modes holding >= 20 points within 0.1414 of the median distance of those points), which a
    generator cannot lower by packing its samples onto few modes (reported, not a goal)."""
    metrics = toy_metrics.high_quality(points, centres, std, k=HQ_K, min_share=MIN_SHARE)
    _idx, dist = toy_metrics.nearest_centres(points, centres)
    closeness = toy_metrics.per_mode_closeness(points, centres, coverage.RADIUS, coverage.MIN_COUNT)
    return dict(hq_share=metrics['hq_share'], hq_modes=metrics['hq_modes'], hq_counts=metrics['hq_counts'],
                median_dist=float(np.median(dist)), per_mode_median=closeness['per_mode_median'],
                registered_modes=closeness['modes'])


def evaluate(run_dir, centres, std, latents, z_steps):
    """Scores before and after -z on the same latents (z_steps 0: after = before), and both point sets."""
    snap = runs.load_final_snapshot(run_dir)
    G, D = snap['G'], snap['D']
    z0 = toy_metrics.sample_prior(latents, G.z_dim, prior_lib.snapshot_z_dist(snap), SAMPLE_SEED)
    c = torch.zeros([latents, G.c_dim])
    generator, discriminator = latent_steps.network_callables(G, D)
    z1 = latent_steps.mine_latents(z0, c, generator, discriminator, eps=Z_EPS, steps=z_steps) if z_steps else z0
    before, after = toy_metrics.generate_points(G, z0), toy_metrics.generate_points(G, z1)
    return dict(before=score(before, centres, std), after_z=score(after, centres, std)), dict(before=before,
                                                                                            after_z=after)


def _per_seed(per_run, dataset, method, seeds, stage, key):
    return [per_run[run_name(dataset, method, s)][stage][key] for s in seeds]


def compare(rep, per_run, datasets, seeds, stages=STAGES):
    """Per data set: -z and -qua must each raise the high-quality share and lower the median
    distance to a centre below the baseline's on every seed.

    Returns {dataset: {stage: {key: mean_std over seeds}}} for hq_share, hq_modes and median_dist.
    """
    summary = {}
    for dataset in datasets:
        values = {name: {key: _per_seed(per_run, dataset, method, seeds, stage, key)
                         for key in ('hq_share', 'hq_modes', 'median_dist')}
                  for name, (method, stage) in stages.items()}
        summary[dataset] = {name: {key: report.mean_std(v) for key, v in keys.items()}
                            for name, keys in values.items()}
        base = values['base']['hq_share']
        for name, keys in values.items():
            raised = None if name == 'base' else all(v > b for v, b in zip(keys['hq_share'], base))
            rep.compare(f'{dataset}: HQ share {name}', 'raised (figure)' if name != 'base' else '-',
                        ', '.join(f'{v:.3f}' for v in keys['hq_share']), '-' if name == 'base' else
                        '> base, every seed', raised)
        base_dist = values['base']['median_dist']
        for name, keys in values.items():
            rep.compare(f'{dataset}: modes covered {name}', '-', keys['hq_modes'], '-', None)
            lowered = None if name == 'base' else all(v < b for v, b in zip(keys['median_dist'], base_dist))
            rep.compare(f'{dataset}: median distance to a centre {name}', 'lower (figure)' if name != 'base' else '-',
                        ', '.join(f'{v:.3f}' for v in keys['median_dist']),
                        '-' if name == 'base' else '< base, every seed', lowered)
            method, stage = stages[name]
            closeness = _per_seed(per_run, dataset, method, seeds, stage, 'per_mode_median')
            rep.compare(f'{dataset}: per-mode closeness {name} (reported)', '-',
                        ', '.join(f'{v:.4f}' for v in closeness), '-', None)
    return summary


CLOSE_UP_STDS = 10     # half-width of the close-up window, in the data set's std


def offsets_from_centres(points, centres, half_width):
    """Each point minus its nearest centre, for the points within `half_width` of it on both axes.

    points [N, 2], centres [K, 2] -> (offsets float64 [M, 2] with |offset| <= half_width per axis,
    M / N): every mode stacked on one origin, so the spread around the modes is visible at the
    scale of the data's std whatever the number of modes the samples reach.
    """
    idx, _dist = toy_metrics.nearest_centres(points, centres)
    offsets = np.asarray(points, dtype=np.float64) - np.asarray(centres, dtype=np.float64)[idx]
    inside = np.abs(offsets).max(axis=1) <= half_width
    return offsets[inside], float(inside.mean()) if len(inside) else 0.0


def make_figures(rep, jobs, per_run, points, reals, seed, stages=STAGES):
    """q3_samples.png (every model's samples over the data), q3_modes.png (the same samples as
    offsets from their nearest centre (`offsets_from_centres`) in units of the data set's std,
    +-CLOSE_UP_STDS: every mode on one origin, real points in grey), and the seed's training
    statistics."""
    panels, close_ups = [], []
    for dataset in reals:
        centres = toy_data.toy_centers(DATASETS[dataset]['kind'])
        std = DATASETS[dataset]['std']
        real_offsets, _shown = offsets_from_centres(reals[dataset], centres, CLOSE_UP_STDS * std)
        for i, (method, stage) in enumerate(stages.values()):
            name = run_name(dataset, method, seed)
            metrics = per_run[name][stage]
            look = dict(title=f'{name} {"-z" if stage == "after_z" else ""}',
                        color=figures.PALETTE[i % len(figures.PALETTE)])
            panels.append(dict(look, points=points[name][stage], reals=reals[dataset], centres=centres,
                               extent=figures.extent_of(centres),
                               caption=f'HQ {100 * metrics["hq_share"]:.1f}%, modes {metrics["hq_modes"]}/'
                                       f'{len(centres)}\nmedian distance {metrics["median_dist"]:.4f}'))
            offsets, shown = offsets_from_centres(points[name][stage], centres, CLOSE_UP_STDS * std)
            closeness = metrics['per_mode_median']
            close_ups.append(dict(look, points=offsets / std, reals=real_offsets / std, centres=np.zeros([1, 2]),
                                  extent=(-CLOSE_UP_STDS, CLOSE_UP_STDS, -CLOSE_UP_STDS, CLOSE_UP_STDS),
                                  caption=f'{100 * shown:.0f}% of samples in view\n'
                                          f'per-mode closeness {closeness:.4f} ({closeness / std:.1f} std)'))
    data_sets = ' and '.join(f'the {name} (std {DATASETS[name]["std"]:g})' for name in reals)
    rep.figure(figures.scatter_figure(rep.path('q3_samples.png'), panels, title=f'AdvLatGAN -z and -qua on {data_sets}',
                                      max_cols=min(len(stages), 6)))
    stds = ' and '.join(f'{name}: std {DATASETS[name]["std"]:g}' for name in reals)
    rep.figure(figures.scatter_figure(rep.path('q3_modes.png'), close_ups,
                                      title=f'Every sample minus its nearest centre, in units of the data std ({stds})',
                                      max_cols=min(len(stages), 6)))
    figures.add_seed_loss_figure(rep, 'q3', jobs, seed)


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    proto['latents'] = args.latents or proto['latents']
    proto['z_steps'] = args.z_steps or proto['z_steps']
    proto['datasets'] = args.datasets or proto['datasets']
    if args.kimg:
        proto['kimg_per_dataset'] = dict(args.kimg)
    base_methods = loss_methods(args.activation)
    methods = qua_methods(args.qua, base_methods) if args.qua else base_methods
    stages = stages_of(methods, args.z_on)
    rep = report.Report(BENCH_ID, TITLE, args, seeds, settings=dict(
        proto, dataset_specs=DATASETS, points_per_mode=POINTS_PER_MODE, z_eps=Z_EPS, sample_seed=SAMPLE_SEED, hq_k=HQ_K,
        mode_min_share=MIN_SHARE, net='G', methods=methods, z_on=args.z_on, lr_decay=args.lr_decay,
        activation=args.activation, g_batch_factor=args.g_batch_factor,
        option_overrides=toy_losses.describe_overrides(LOSS_CLASSES[args.activation])),
        script=__file__, argv=argv, layout='toy')
    data_paths = {name: toy_metrics.write_toy_set(rep.path(f'{spec["kind"]}_std{spec["std"]}.npy'), spec['kind'],
                                                  spec['std'], POINTS_PER_MODE)
                  for name, spec in DATASETS.items() if name in proto['datasets']}
    jobs = runner.run_jobs(build_jobs(proto, data_paths, seeds, methods, args.lr_decay, args.g_batch_factor), rep.out,
                           parallel=args.parallel, reuse=args.reuse)
    rep.add_runs(jobs)
    per_run, points = {}, {}
    for job in jobs:
        spec = DATASETS[job.name.split('-')[0]]
        moved = args.z_on == 'all' or '-base-' in job.name
        per_run[job.name], points[job.name] = evaluate(job.run_dir, toy_data.toy_centers(spec['kind']), spec['std'],
                                                       proto['latents'], proto['z_steps'] if moved else 0)
        print(f'[{job.name}] HQ share {per_run[job.name]["before"]["hq_share"]:.3f} -> '
              f'{per_run[job.name]["after_z"]["hq_share"]:.3f} after -z', flush=True)
    summary = compare(rep, per_run, list(data_paths), seeds, stages)
    reals = {name: figures.real_subset(np.load(path)) for name, path in data_paths.items()}
    make_figures(rep, jobs, per_run, points, reals, seeds[0], stages)
    rep.finish(dict(per_run=per_run, summary=summary, paper=PAPER))
    return rep.data


if __name__ == '__main__':
    main()
