"""Q1: LOGAN-B (`--loss=logan-b`) vs GAN vs BiGAN on the 8-Gaussian ring: ad hoc / post hoc reconstruction errors.

    python -m benchmarks.q1_loganb_ring [--quick] [--out results/q1] [--seeds 0] [--parallel 1] [--methods LIST]

Protocol (docs/benchmarks.md Q1, LOGAN-B paper section 4.1 and the authors' 2-D notebook): 8 Gaussians
on a ring of radius 2, std 0.1, 20 000 points a mode (160 000); z_dim 5 with the uniform prior in
[-1, 1] and tanh on E; MLPs 2-10-10-5 (E), 5-10-10-2 (G), D with widths 10-10 and leaky-ReLU
slope 0.1; batch 2048, Adam 1e-3 with betas (0.9, 0.999), 100 epochs (16 000 kimg, about 7 800
iterations). The network sizes and betas are set by loss classes of `benchmarks.common.toy_losses`
(train.py has no option for them): LoganBRing is `--loss=logan-b` unchanged, BiGANRing leaves out
its surrogate step, GANRing also lets D ignore z (the encoder then stays as initialised: the
paper's GAN encoder "does not affect training"). The plugin's `--cfg=toy` defaults are the
notebook's: saturating G loss log(1 - D) (Eq. 5), the surrogate L1 summed over the batch, stepped
by G's and E's own Adams, on 4 of 5 iterations. LOGAN-B runs with both encoder signs
(`--loganb-e-loss=bigan`, the paper's; `cooperative`, the notebook's), and so does BiGAN (`bigan`,
`bigan-coop`): the notebook's BiGAN is its LOGAN-B without the surrogate step, cooperative sign
included, so each LOGAN-B sign is ranked against the BiGAN of the same sign. `--methods` runs a subset.

Evaluation on 8 000 held-out points (1 000 a mode, seed 10): "ad hoc" = mean per-sample L1 sum of
x - G(E(x)) with the run's E; "post hoc" = the same with 5 fresh encoders (seeds 100-104) trained
10 000 iterations (Adam 1e-3, betas (0.9, 0.999)) to invert the frozen G, with the notebook's
loss L1(G(E'(G(z))), G(z)) + L1(E'(G(z)), z) (`benchmarks/common/reconstruction.py`; the encoders
of a run are fitted side by side), mean +- std.
The quick protocol trains 10 epochs and fits 2 post hoc encoders for 2 000 iterations.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import numpy as np

from benchmarks.common import figures, reconstruction, report, runner, runs
from benchmarks.common import toy_losses, toy_metrics
from stylegan_plus.data import toy_data
from stylegan_plus.sampling import prior as prior_lib

BENCH_ID = 'q1'
TITLE = 'LOGAN-B vs GAN vs BiGAN on the 8-Gaussian ring: reconstruction errors'
STD = 0.1
POINTS_PER_MODE = 20000
TEST_PER_MODE, TEST_SEED = 1000, 10
BATCH = 2048
PRIOR = 'uniform'
POST_HOC_LR = 1e-3      # the notebook's post hoc Adam (default betas)
LOSS_PREFIX = 'benchmarks.common.toy_losses.'
METHODS = {     # name -> (train.py loss arguments, paper's row)
    'loganb-bigan': ([f'--loss={LOSS_PREFIX}LoganBRing', '--loganb-e-loss=bigan'], 'LOGAN-B'),
    'loganb-coop': ([f'--loss={LOSS_PREFIX}LoganBRing', '--loganb-e-loss=cooperative'], 'LOGAN-B'),
    'gan': ([f'--loss={LOSS_PREFIX}GANRing'], 'GAN'),
    'bigan': ([f'--loss={LOSS_PREFIX}BiGANRing', '--loganb-e-loss=bigan'], 'BiGAN'),
    'bigan-coop': ([f'--loss={LOSS_PREFIX}BiGANRing', '--loganb-e-loss=cooperative'], 'BiGAN'),
}
BASELINE_OF = {'loganb-bigan': 'bigan', 'loganb-coop': 'bigan-coop'}   # the BiGAN with the same encoder sign
PAPER = {   # Table 1: ad hoc, post hoc mean, post hoc std
    'GAN': (2.7937, 0.1261, 0.0060),
    'BiGAN': (2.5036, 1.4310, 0.0744),
    'LOGAN-B': (0.0271, 0.0474, 0.0057),
}
PROTOCOLS = {
    'full': dict(kimg=16000, post_hoc_seeds=[100, 101, 102, 103, 104], post_hoc_iterations=10000, seeds=[0]),
    'quick': dict(kimg=1600, post_hoc_seeds=[100, 101], post_hoc_iterations=2000, seeds=[0]),
    'smoke': dict(nimg=4096, post_hoc_seeds=[100], post_hoc_iterations=5, seeds=[0]),
}


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID, runs=True)
    parser.add_argument('--methods', type=report.name_list(METHODS), default=list(METHODS), metavar='LIST',
                        help=f'methods to run (default: all of {",".join(METHODS)})')
    return parser.parse_args(argv)


def build_jobs(proto, data, seeds, methods=tuple(METHODS)):
    """One TrainJob per seed and method (names `<method>-seed<seed>`)."""
    length = dict(nimg=proto['nimg']) if 'nimg' in proto else dict(kimg=proto['kimg'])
    return [runner.TrainJob(f'{method}-seed{seed}',
                            runner.toy_train_args(data, seed, extra=[f'--batch={BATCH}'] + METHODS[method][0],
                                                  **length))
            for seed in seeds for method in methods]


def evaluate(job, proto, x_test, centres):
    """Reconstruction errors and coverage of one run; also the points for the figure."""
    snap = runs.load_final_snapshot(job.run_dir)
    G, D, E = snap['G'], snap['D'], snap['E']
    prior = prior_lib.snapshot_z_dist(snap)     # the run's prior (uniform: LOGAN-B's --cfg=toy default)
    ad_hoc_rec = reconstruction.reconstruct(G, E, x_test, prior)
    errors, post_hoc_rec = reconstruction.post_hoc_errors(
        G, D, x_test, prior, proto['post_hoc_seeds'], proto['post_hoc_iterations'], batch=BATCH, lr=POST_HOC_LR,
        betas=reconstruction.NOTEBOOK_BETAS)
    samples = toy_metrics.generate_points(G, toy_metrics.sample_prior(2000, G.z_dim, prior, 123))
    metrics = dict(ad_hoc=toy_metrics.l1_reconstruction_error(x_test, ad_hoc_rec),
                   post_hoc=report.mean_std(errors))
    metrics.update(toy_metrics.mode_coverage(samples, centres, 0.1414, 20))
    metrics.update(toy_metrics.high_quality(samples, centres, STD))
    return metrics, dict(samples=samples, ad_hoc=ad_hoc_rec, post_hoc=post_hoc_rec)


def _ranking(values):
    return [name for name, _value in sorted(values.items(), key=lambda item: item[1])]


def compare(rep, per_run, seed):
    """Paper vs ours per method, the 2x target for LOGAN-B, and the ordering of the methods.

    Each LOGAN-B variant is ranked with GAN and with the BiGAN of the same encoder sign (its
    notebook baseline: LOGAN-B without the surrogate step), when those runs are there.
    """
    for method, (_args, row) in METHODS.items():
        if f'{method}-seed{seed}' not in per_run:
            continue
        ours = per_run[f'{method}-seed{seed}']
        paper_ad, paper_post, paper_std = PAPER[row]
        is_loganb = row == 'LOGAN-B'
        rep.compare(f'{method} ad hoc', paper_ad, round(ours['ad_hoc'], 4), '<= 2x paper' if is_loganb else '-',
                    ours['ad_hoc'] <= 2 * paper_ad if is_loganb else None)
        post = ours['post_hoc']
        rep.compare(f'{method} post hoc', f'{paper_post} +- {paper_std}', f'{post["mean"]:.4f} +- {post["std"]:.4f}',
                    '<= 2x paper' if is_loganb else '-', post['mean'] <= 2 * paper_post if is_loganb else None)
    for kind, index in (('ad hoc', 0), ('post hoc', 1)):
        paper_order = _ranking({row: values[index] for row, values in PAPER.items()})
        for loganb, bigan in BASELINE_OF.items():
            trio = (loganb, 'gan', bigan)
            if not all(f'{m}-seed{seed}' in per_run for m in trio):
                continue
            ours = {METHODS[m][1]: _value(per_run[f'{m}-seed{seed}'], kind) for m in trio}
            rep.compare(f'ordering {kind} ({loganb}, {bigan}, seed {seed})', ' < '.join(paper_order),
                        ' < '.join(_ranking(ours)), 'same ordering', _ranking(ours) == paper_order)


def _value(metrics, kind):
    return metrics['ad_hoc'] if kind == 'ad hoc' else metrics['post_hoc']['mean']


def make_figures(rep, jobs, per_run, points, reals, centres, seed):
    panels = []
    for job in [j for j in jobs if j.name.endswith(f'-seed{seed}')]:
        metrics, pts = per_run[job.name], points[job.name]
        for i, (kind, caption) in enumerate([
                ('samples', figures.coverage_caption(metrics, len(centres))),
                ('ad_hoc', f'L1 {metrics["ad_hoc"]:.4f}'),
                ('post_hoc', f'L1 {metrics["post_hoc"]["mean"]:.4f} (first encoder shown)')]):
            panels.append(dict(title=f'{job.name}: {kind.replace("_", " ")}', points=pts[kind], reals=reals,
                               centres=centres, extent=figures.extent_of(centres), caption=caption,
                               color=figures.PALETTE[i]))
    rep.figure(figures.scatter_figure(rep.path('q1_reconstructions.png'), panels, title=TITLE, max_cols=3,
                                      panel_size=220))
    figures.add_seed_loss_figure(rep, 'q1', jobs, seed)


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    overrides = toy_losses.describe_overrides(toy_losses.LoganBRing)
    rep = report.Report(BENCH_ID, TITLE, args, seeds, settings=dict(
        proto, std=STD, points_per_mode=POINTS_PER_MODE, test_points=8 * TEST_PER_MODE, test_seed=TEST_SEED,
        batch=BATCH, prior=PRIOR, net='G', methods={m: METHODS[m][0] for m in args.methods},
        post_hoc=dict(lr=POST_HOC_LR, betas=list(reconstruction.NOTEBOOK_BETAS), loss='x-space + z-space L1 sums'),
        option_overrides=overrides), script=__file__, argv=argv, layout='toy')
    data = toy_metrics.write_toy_set(rep.path('ring8_std0.1_20k.npy'), 'ring8', STD, POINTS_PER_MODE)
    centres = toy_data.ring_centers()
    x_test, _modes = toy_data.sample_mixture(centres, STD, TEST_PER_MODE, seed=TEST_SEED)
    jobs = runner.run_jobs(build_jobs(proto, data, seeds, args.methods), rep.out, parallel=args.parallel,
                           reuse=args.reuse)
    rep.add_runs(jobs)
    per_run, points = {}, {}
    for job in jobs:
        per_run[job.name], points[job.name] = evaluate(job, proto, x_test, centres)
        print(f'[{job.name}] ad hoc {per_run[job.name]["ad_hoc"]:.4f}, post hoc '
              f'{per_run[job.name]["post_hoc"]["mean"]:.4f} +- {per_run[job.name]["post_hoc"]["std"]:.4f}', flush=True)
    for seed in seeds:
        compare(rep, per_run, seed)
    make_figures(rep, jobs, per_run, points, figures.real_subset(np.load(data)), centres, seeds[0])
    rep.finish(dict(per_run=per_run, paper={row: dict(ad_hoc=v[0], post_hoc_mean=v[1], post_hoc_std=v[2])
                                            for row, v in PAPER.items()}))
    return rep.data


if __name__ == '__main__':
    main()
