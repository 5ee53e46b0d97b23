"""Q7: Dist-GAN (`--loss=dist`) vs the baseline on "stacked digits 1K", tiny DCGANs, through train.py.

    python -m benchmarks.q7_dist_stacked --quick        # ~5 min on 2 cores: K/4 only, 1 seed
    python -m benchmarks.q7_dist_stacked                # full: K/4 and K/2, 3 seeds (~60 min)

Protocol (docs/benchmarks.md Q7; the MNIST-1K protocol of Unrolled GAN / Dist-GAN with bundled
digits). 25 600 training images, each three digits of half A drawn independently as the R, G, B
channels (16 px): 1 000 modes, 000 ... 999. train.py trains `--cfg=dcgan` networks at two widths,
`--cbase=512` ("K/4") and `--cbase=1024` ("K/2") of the preset's `--cbase=2048` ("K"), with the
baseline loss and with `--loss=dist`, same data, seeds and schedule. Then 25 600 samples of each
final G_ema are classified channel by channel by a digits classifier trained on half B: a mode
is covered with at least one sample; KL(model mode frequencies || uniform) as in the papers.
Also a stricter count of ours: modes among the samples whose three digits are all classified
with probability >= 0.9 (blurry samples can spread the classifier's guesses over many modes).
Paper (MNIST-1K, K/4): Dist-GAN 859.5 +- 68.7 modes (KL 1.04), GAN 30.6 +- 20.7 (KL 5.99); K/2:
917.9 vs 628.0. Goal: Dist-GAN covers >= 2x the baseline's modes.
Deviation: `--cbase` scales G and D together, so our G shrinks with D (the papers shrink D only).
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import numpy as np
import torch

from benchmarks.common import classifier, digits, figures, report, runner, runs
from stylegan_plus.io import images
from stylegan_plus.sampling import prior as prior_lib

BENCH_ID = 'q7_dist_stacked'
CONFIDENT = 0.9         # stricter count: all three digits classified with at least this probability
RESOLUTION = 16
LOSSES = ('stylegan2', 'dist')
WIDTHS = {'K/4': 512, 'K/2': 1024}
PAPER = {'K/4': dict(dist=(859.5, 68.7, 1.04), gan=(30.6, 20.7, 5.99)),
         'K/2': dict(dist=(917.9, 69.6, 1.06), gan=(628.0, 140.9, 2.58))}
PROTOCOLS = {
    'full': dict(seeds=[0, 1, 2], widths=['K/4', 'K/2'], kimg=60, tick=5, stacks=25600, samples=25600,
                 clf_epochs=20),
    'quick': dict(seeds=[0], widths=['K/4'], kimg=30, tick=5, stacks=25600, samples=25600, clf_epochs=15),
    'smoke': dict(seeds=[0], widths=['K/4'], nimg=64, tick=0.064, stacks=256, samples=256, clf_epochs=1),
}


def prepare_data(rep, proto):
    """Stacked-digits data set (half A digits), classifier on half B, the real stacks' mode coverage."""
    pixels, labels = digits.load(RESOLUTION)
    half_a, half_b = digits.halves(len(pixels))
    stacks, modes = digits.stacked_digits(pixels[half_a], labels[half_a], proto['stacks'], seed=0)
    data = digits.write_dataset(rep.path(f'data/stacked{RESOLUTION}_{proto["stacks"]}.zip'), stacks, modes)
    net = classifier.train_classifier(digits.to_tensor(pixels[half_b]), labels[half_b], epochs=proto['clf_epochs'])
    accuracy = classifier.accuracy(net, digits.to_tensor(pixels[half_a]), labels[half_a])
    predicted, confidence = classifier.stacked_modes(net, digits.to_tensor(stacks[:proto['samples']]),
                                                     return_confidence=True)
    covered, kl = classifier.mode_coverage(predicted)
    rep.result(classifier=dict(trained_on='half B', accuracy_half_A=accuracy,
                               stack_accuracy=float((predicted == modes[:proto['samples']]).mean())),
               real_stacks=dict(modes=covered, kl=kl, true_modes=int(len(np.unique(modes))),
                                confident_share=float((confidence >= CONFIDENT).mean())))
    print(f'classifier: digit accuracy on half A {accuracy:.3f}; real stacks: {covered} modes found, KL {kl:.3f}')
    rep.figure(figures.save_grid(stacks[:64], rep.path('reals.png'), cols=8, scale=3))
    return dict(data=data, net=net)


@torch.no_grad()
def count_modes(G, net, count, seed=123, batch=500, z_dist='normal'):
    """Mode coverage of `count` samples of G: dict(modes, kl, confident_share, confident_modes) and 64 samples.

    confident_*: only samples whose three digits are all classified with probability >= CONFIDENT
    (a stricter count: blurry samples can spread the classifier's guesses over many modes).
    """
    gen = torch.Generator().manual_seed(seed)
    modes, confidence, first = [], [], None
    for start in range(0, count, batch):
        n = min(batch, count - start)
        fake_images = G(prior_lib.draw_z(z_dist, n, G.z_dim, generator=gen), torch.zeros([n, G.c_dim]))
        found, conf = classifier.stacked_modes(net, fake_images, return_confidence=True)
        modes.append(found)
        confidence.append(conf)
        if first is None:
            first = images.to_uint8(fake_images[:64])
    modes, confidence = np.concatenate(modes), np.concatenate(confidence)
    covered, kl = classifier.mode_coverage(modes)
    sure = confidence >= CONFIDENT
    confident_modes = classifier.mode_coverage(modes[sure])[0] if sure.any() else 0
    return dict(modes=covered, kl=kl, confident_share=float(sure.mean()), confident_modes=confident_modes), first


def train_and_count(rep, width, loss, seed, ctx, proto):
    length = dict(nimg=proto['nimg']) if 'nimg' in proto else dict(kimg=proto['kimg'])
    args = runner.image_train_args(ctx['data'], seed, cfg='dcgan', loss=loss, tick=proto['tick'], snap=1000,
                                   extra=[f'--cbase={WIDTHS[width]}'], **length)
    job = runner.run_job(runner.TrainJob(f'{width.replace("/", "")}-{loss}-seed{seed}', args), rep.out)
    rep.add_runs([job])
    snap = runs.load_final_snapshot(job.run_dir, ['G_ema'])
    G = snap['G_ema']
    found, samples = count_modes(G, ctx['net'], proto['samples'], z_dist=prior_lib.snapshot_z_dist(snap))
    sec_per_kimg = runs.training_sec_per_kimg(runs.read_stats(job.run_dir))
    print(f'  {width}/{loss}/seed{seed}: {found["modes"]} modes, KL {found["kl"]:.3f}; '
          f'{found["confident_share"]:.2f} of the samples confident, covering {found["confident_modes"]} modes')
    return dict(found, samples=samples, run_dir=job.run_dir, wall_s=job.wall_sec, sec_per_kimg=sec_per_kimg)


def summarize_width(rep, width, found, seeds):
    """Mean +- std of modes and KL per loss at one width; the paper-vs-ours row."""
    stats = {}
    for loss in LOSSES:
        modes = report.mean_std([r['modes'] for r in found[loss]])
        kl = report.mean_std([r['kl'] for r in found[loss]])
        stats[loss] = dict(modes_mean=modes['mean'], modes_std=modes['std'], kl_mean=kl['mean'], kl_std=kl['std'],
                           modes=[r['modes'] for r in found[loss]], kl=[r['kl'] for r in found[loss]],
                           confident_share=[r['confident_share'] for r in found[loss]],
                           confident_modes=[r['confident_modes'] for r in found[loss]],
                           sec_per_kimg=[r['sec_per_kimg'] for r in found[loss]])
    base, dist = stats['stylegan2']['modes_mean'], stats['dist']['modes_mean']
    ratio = dist / base if base else None
    paper = PAPER[width]
    rep.compare(f'{width}: modes covered (of 1000) and KL, Dist-GAN vs baseline',
                f'Dist-GAN {paper["dist"][0]} +- {paper["dist"][1]} (KL {paper["dist"][2]}); '
                f'GAN {paper["gan"][0]} +- {paper["gan"][1]} (KL {paper["gan"][2]})',
                f'Dist-GAN {report.fmt(dist, 1)} +- {report.fmt(stats["dist"]["modes_std"], 1)} '
                f'(KL {report.fmt(stats["dist"]["kl_mean"])}); baseline {report.fmt(base, 1)} +- '
                f'{report.fmt(stats["stylegan2"]["modes_std"], 1)} (KL {report.fmt(stats["stylegan2"]["kl_mean"])}); '
                f'{len(seeds)} seed(s), ratio {report.fmt(ratio, 2)}x; confident samples only: Dist-GAN '
                f'{report.fmt(report.mean_std(stats["dist"]["confident_modes"])["mean"], 1)} vs baseline '
                f'{report.fmt(report.mean_std(stats["stylegan2"]["confident_modes"])["mean"], 1)} modes',
                'Dist-GAN >= 2x the baseline\'s modes', None if ratio is None else bool(ratio >= 2))
    return stats


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, report.make_parser(__doc__, BENCH_ID).parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    rep = report.Report(BENCH_ID, 'Dist-GAN vs baseline on stacked digits 1K (modes, KL)', args, seeds,
                        script=__file__, argv=argv, layout='image')
    rep.setting(resolution=RESOLUTION, widths={w: f'--cbase={WIDTHS[w]}' for w in proto['widths']}, losses=LOSSES,
                protocol=proto, data='stacked digits from scikit-learn load_digits (substitutes MNIST-1K: no download)',
                deviation='--cbase scales G and D together; the papers shrink D only')
    ctx = prepare_data(rep, proto)
    summary = {}
    for width in proto['widths']:
        found = runner.by_loss_and_seed(LOSSES, seeds,
                                        lambda loss, seed, w=width: train_and_count(rep, w, loss, seed, ctx, proto))
        summary[width] = summarize_width(rep, width, found, seeds)
        rep.result(per_width=summary)
        rep.save()
        for loss in LOSSES:
            rep.figure(figures.save_grid(found[loss][0]['samples'], rep.path(f'samples_{width.replace("/", "")}_{loss}.png'),
                                         cols=8, scale=3))
    labels = [f'{w} {"base" if l == "stylegan2" else l}' for w in proto['widths'] for l in LOSSES]
    rep.figure(figures.bar_plot(rep.path('modes.png'), labels,
                                [summary[w][l]['modes_mean'] for w in proto['widths'] for l in LOSSES],
                                errors=[summary[w][l]['modes_std'] for w in proto['widths'] for l in LOSSES],
                                title='Q7: modes covered of 1000 (mean +- std over seeds); dashed: real stacks',
                                ylabel='modes', reference=rep.data['results']['real_stacks']['modes']))
    rep.finish()
    return rep.data


if __name__ == '__main__':
    main()
