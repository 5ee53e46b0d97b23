"""Q6: CLR-GAN (`--loss=clr`) vs the baseline loss on digits, DCGAN and a tiny StyleGAN2, through train.py.

    python -m benchmarks.q6_clr_digits --quick          # ~5 min on 2 cores: 1 seed, short runs
    python -m benchmarks.q6_clr_digits                  # full protocol: 3 seeds (hours on 2 busy cores)
    python -m benchmarks.q6_clr_digits --families=stylegan2 --parallel=2 --reuse --out DIR   # continue a run

Protocol (docs/benchmarks.md Q6). The digits of scikit-learn are split in two fixed halves: the GANs
train on half A (16 px), a small classifier trains on half B. For each network family
(`--cfg=dcgan --cbase=512`, and a tiny StyleGAN2 `--cfg=cifar --cbase=1024 --cmax=64`), each
seed and each loss (`stylegan2` = the baseline, `clr`), train.py runs with the same data, seed
and schedule. The tiny StyleGAN2 has z_dim = w_dim = 64 = its D's epilogue fc width, for both
losses (`benchmarks/common/matched_latent.py`, as train.py has no z_dim option), the proportions
of the authors' release (z_dim 512 = fc width there); CLR reads z through its linear head on the
epilogue's conv output (stylegan_plus/losses/clr.py). With --parallel=2 the baseline and CLR runs
of a seed train side by side; --reuse evaluates finished runs instead of training them again.
Every network snapshot is then evaluated here:
- FD-digits: Frechet distance between classifier features of 2 000 fakes of G_ema (fixed z) and
  of the reals of half A, at equal kimg for both losses;
- CLR only: reconstruction L1 (mean |G(phi(x)) - x| per pixel, [-1, 1] units) of 256 held-out
  reals (half B), phi = D's features through the run's latent head;
- CLR only: D's latent MSE on fakes, `Loss/clr/latent_mse` of stats.jsonl, per tick; it counts as
  learned when the mean of the last 3 ticks is below both its first tick and 1.0, the score of
  predicting 0 for N(0, I) latents (a random D starts above 1).
Paper (GPU, CIFAR-10 DCGAN): FID 38.56 -> 23.3. Goal here: CLR's FD-digits <= the baseline's at
equal kimg, mean over >= 3 seeds; latent MSE and reconstruction L1 fall during training.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import numpy as np
import torch

from benchmarks.common import classifier, digits, figures, report, runner, runs
from stylegan_plus.losses import clr
from stylegan_plus.networks import inference
from stylegan_plus.io import images
from stylegan_plus.sampling import prior as prior_lib

BENCH_ID = 'q6_clr_digits'
RESOLUTION = 16
LOSSES = ('stylegan2', 'clr')
MATCHED = 'benchmarks.common.matched_latent.'
FAMILIES = {    # cfg, extra flags, --loss value of each of LOSSES
    'dcgan': dict(cfg='dcgan', extra=['--cbase=512'], loss=dict(stylegan2='stylegan2', clr='clr')),
    'stylegan2': dict(cfg='cifar', extra=['--cbase=1024', '--cmax=64'],
                      loss=dict(stylegan2=f'{MATCHED}Baseline', clr=f'{MATCHED}CLR')),
}
# Per mode: seeds, training length per family (kimg, or nimg for smoke), tick and snapshot spacing.
PROTOCOLS = {
    # StyleGAN2: 60 kimg (was 20: at 20 kimg FD-digits still swung by tens of points between snapshots).
    'full': dict(seeds=[0, 1, 2], kimg=dict(dcgan=100, stylegan2=60), tick=dict(dcgan=4, stylegan2=2),
                 snap=dict(dcgan=5, stylegan2=6), fakes=2000, rec=256, clf_epochs=20),
    'quick': dict(seeds=[0], kimg=dict(dcgan=12, stylegan2=3), tick=dict(dcgan=1, stylegan2=0.5),
                  snap=dict(dcgan=4, stylegan2=2), fakes=1000, rec=128, clf_epochs=15),
    'smoke': dict(seeds=[0], nimg=dict(dcgan=128, stylegan2=64), tick=dict(dcgan=0.064, stylegan2=0.032),
                  snap=dict(dcgan=1, stylegan2=1), fakes=64, rec=32, clf_epochs=1),
}
EVAL_Z_SEED = 123
ZERO_PREDICTOR_MSE = 1.0   # E[z^2] for z ~ N(0, I): the latent MSE of a head that always predicts 0
PAPER = 'FID 38.56 (DCGAN) -> 23.3 (CLR-GAN), CIFAR-10, GPU'


def prepare_data(rep, proto):
    """Half A data set on disk, classifier on half B, real features of A, held-out reals of B."""
    pixels, labels = digits.load(RESOLUTION)
    half_a, half_b = digits.halves(len(pixels))
    data = digits.write_dataset(rep.path(f'data/digits{RESOLUTION}_halfA.zip'), pixels[half_a], labels[half_a])
    reals_a, reals_b = digits.to_tensor(pixels[half_a]), digits.to_tensor(pixels[half_b])
    net = classifier.train_classifier(reals_b, labels[half_b], epochs=proto['clf_epochs'])
    real_features = classifier.apply(net, reals_a, 'features')
    floor = classifier.frechet_distance(classifier.apply(net, reals_b, 'features'), real_features)
    rep.result(classifier=dict(trained_on='half B', images=len(half_b), epochs=proto['clf_epochs'],
                               accuracy_half_A=classifier.accuracy(net, reals_a, labels[half_a]),
                               fd_halfB_vs_halfA=floor))
    print(f'classifier: accuracy on half A {rep.data["results"]["classifier"]["accuracy_half_A"]:.3f}; '
          f'FD-digits of real half B vs half A (the floor) {floor:.2f}')
    figures.save_grid(pixels[half_a][:64], rep.path('reals_halfA.png'), cols=8, scale=3)
    return dict(data=data, net=net, real_features=real_features, heldout=reals_b[:proto['rec']],
                num_images=len(half_a))


@torch.no_grad()
def fakes(G, count, seed=EVAL_Z_SEED, batch=250, z_dist='normal'):
    """count images [N, C, H, W] in [-1, 1] from G at fixed latents of the prior `z_dist` (noise_mode const)."""
    z = prior_lib.draw_z(z_dist, count, G.z_dim, generator=torch.Generator().manual_seed(seed))
    c = torch.zeros([count, G.c_dim])
    return torch.cat([G(z[i:i + batch], c[i:i + batch], noise_mode='const') for i in range(0, count, batch)])


@torch.no_grad()
def reconstruction_l1(nets, reals, batch=32):
    """Mean |G(phi(x)) - x| over held-out reals [N, 1, R, R]; phi = the run's clr_head on D's features.

    The features are the ones the plugin trains the head on (`clr.latent_features`).
    """
    G, D, head = nets['G'], nets['D'], nets['clr_head']
    total = 0.0
    for i in range(0, len(reals), batch):
        x = reals[i:i + batch]
        c = torch.zeros([len(x), G.c_dim])
        _logits, features = clr.latent_features(D, x, c)
        total += float((G(head(features), c, noise_mode='const') - x).abs().sum())
    return total / reals.numel()


def evaluate_run(run_dir, loss, ctx, proto):
    """FD-digits (and rec L1 for clr) at every snapshot of a run; latent MSE per tick from stats.jsonl."""
    out = dict(kimg=[], fd=[], rec_l1=[])
    for kimg, path in runs.snapshots(run_dir):
        nets = runs.load_snapshot(path)     # with CLR's `clr_head` for clr runs
        G_ema = inference.prepare_generator(nets['G_ema'], torch.device('cpu'))
        fake_images = fakes(G_ema, proto['fakes'], z_dist=prior_lib.snapshot_z_dist(nets))
        out['kimg'].append(kimg)
        out['fd'].append(classifier.frechet_distance(classifier.apply(ctx['net'], fake_images, 'features'),
                                                     ctx['real_features']))
        out['rec_l1'].append(reconstruction_l1(nets, ctx['heldout']) if loss == 'clr' else None)
    out['final_samples'] = images.to_uint8(fake_images[:64])
    records = runs.read_stats(run_dir)
    tick_kimg, mse = runs.series(records, 'Loss/clr/latent_mse')
    out['latent_mse'] = dict(kimg=tick_kimg, value=mse) if loss == 'clr' else None
    out['sec_per_kimg'] = runs.training_sec_per_kimg(records)
    return out


def build_job(family, loss, seed, ctx, proto):
    """The train.py job of one (family, loss, seed)."""
    spec = FAMILIES[family]
    length = dict(nimg=proto['nimg'][family]) if 'nimg' in proto else dict(kimg=proto['kimg'][family])
    args = runner.image_train_args(ctx['data'], seed, cfg=spec['cfg'], loss=spec['loss'][loss],
                                   tick=proto['tick'][family], snap=proto['snap'][family], extra=spec['extra'], **length)
    return runner.TrainJob(f'{family}-{loss}-seed{seed}', args)


def train_seed(rep, family, seed, ctx, proto, args):
    """Both losses of one seed, side by side when --parallel >= 2 (fair under a drifting load): {loss: evaluation}.

    With --reuse a run whose train.py command is unchanged is evaluated instead of trained again.
    """
    jobs = [build_job(family, loss, seed, ctx, proto) for loss in LOSSES]
    runner.run_jobs(jobs, rep.out, parallel=args.parallel, reuse=args.reuse)
    rep.add_runs(jobs)
    found = {}
    for loss, job in zip(LOSSES, jobs):
        evaluation = evaluate_run(job.run_dir, loss, ctx, proto)
        evaluation.update(run_dir=job.run_dir, wall_s=job.wall_sec)
        print(f'  {family}/{loss}/seed{seed}: FD-digits by kimg ' +
              ', '.join(f'{k}:{v:.2f}' for k, v in zip(evaluation['kimg'], evaluation['fd'])))
        found[loss] = evaluation
    return found


def _falls(first, last):
    return None if first is None or last is None or not np.isfinite(first) or not np.isfinite(last) \
        else bool(last < first)


def _latent_learned(first, last):
    """Below its start and below 1.0, what predicting 0 scores: a random D starts above 1, so falling
    from the first tick alone does not show that D's head reads anything about z."""
    falls = _falls(first, last)
    return None if falls is None else bool(falls and last < ZERO_PREDICTOR_MSE)


def clr_trends(evals):
    """Per seed: latent MSE (first tick -> mean of the last 3 ticks) and rec L1 (first -> last snapshot)."""
    trends = []
    for ev in evals:
        mse = np.asarray(ev['latent_mse']['value'], dtype=np.float64)
        mse = mse[np.isfinite(mse)]
        rec = [v for v in ev['rec_l1'] if v is not None]
        trends.append(dict(latent_mse_first=float(mse[0]) if mse.size else None,
                           latent_mse_last=float(mse[-3:].mean()) if mse.size else None,
                           rec_l1_first=rec[0] if rec else None, rec_l1_last=rec[-1] if rec else None))
    return trends


def _mean_and_std(values):
    stats = report.mean_std(values)
    return stats['mean'], stats['std']


def summarize_family(rep, family, evals, seeds):
    """Mean FD-digits per loss at each kimg, the paper-vs-ours rows and the figures of one family."""
    fd = {loss: np.array([ev['fd'] for ev in evals[loss]], dtype=np.float64) for loss in LOSSES}
    kimg = evals[LOSSES[0]][0]['kimg']
    mean = {loss: fd[loss].mean(0) for loss in LOSSES}
    final = {loss: _mean_and_std(fd[loss][:, -1]) for loss in LOSSES}
    wins = [bool(c <= b) for c, b in zip(mean['clr'][1:], mean['stylegan2'][1:])]
    trends = clr_trends(evals['clr'])
    summary = dict(kimg=kimg, fd_mean=mean, fd_final_mean_std=final, clr_le_baseline_share=np.mean(wins) if wins else None,
                   clr_trends=trends, sec_per_kimg={l: [ev['sec_per_kimg'] for ev in evals[l]] for l in LOSSES})
    ours = (f'FD-digits at {kimg[-1]} kimg, mean of {len(seeds)} seed(s): baseline {report.fmt(final["stylegan2"][0])} '
            f'+- {report.fmt(final["stylegan2"][1])} -> CLR {report.fmt(final["clr"][0])} +- {report.fmt(final["clr"][1])}'
            f' (CLR <= baseline at {sum(wins)}/{len(wins)} later snapshots)')
    rep.compare(f'{family}: FD-digits, CLR vs baseline at equal kimg', PAPER, ours,
                'CLR <= baseline, mean of >= 3 seeds', bool(final['clr'][0] <= final['stylegan2'][0]) if len(seeds) >= 3 else None)
    mse_falls = [_latent_learned(t['latent_mse_first'], t['latent_mse_last']) for t in trends]
    rec_falls = [_falls(t['rec_l1_first'], t['rec_l1_last']) for t in trends]
    rep.compare(f'{family}: CLR latent MSE on fakes and held-out reconstruction L1 fall during training',
                'both trained down (paper: losses converge)',
                'latent MSE ' + '; '.join(f'{report.fmt(t["latent_mse_first"])} -> {report.fmt(t["latent_mse_last"])}'
                                          for t in trends) +
                ' | rec L1 ' + '; '.join(f'{report.fmt(t["rec_l1_first"])} -> {report.fmt(t["rec_l1_last"])}' for t in trends),
                'both fall on every seed, the latent MSE below 1.00 (predicting 0)', all(mse_falls + rec_falls) if None not in mse_falls + rec_falls else None)
    make_figures(rep, family, evals, kimg, mean)
    return summary


def make_figures(rep, family, evals, kimg, mean):
    rep.figure(figures.line_plot(rep.path(f'fd_{family}.png'), {loss: (kimg, mean[loss]) for loss in LOSSES},
                                 title=f'Q6 {family}: FD-digits (mean over seeds), lower is better',
                                 xlabel='kimg', ylabel='FD-digits', log_y=True))
    rep.figure(figures.line_plot(
        rep.path(f'clr_terms_{family}.png'),
        {**{f'latent MSE seed{i}': (ev['latent_mse']['kimg'], ev['latent_mse']['value']) for i, ev in enumerate(evals['clr'])},
         **{f'rec L1 seed{i}': (ev['kimg'], ev['rec_l1']) for i, ev in enumerate(evals['clr'])}},
        title=f'Q6 {family}: CLR latent MSE (fakes, per tick) and rec L1 (held-out reals)', xlabel='kimg', ylabel='value'))
    for loss in LOSSES:
        rep.figure(figures.save_grid(evals[loss][0]['final_samples'], rep.path(f'samples_{family}_{loss}.png'),
                                     cols=8, scale=3))


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID, runs=True)
    parser.add_argument('--families', type=report.name_list(FAMILIES), default=','.join(FAMILIES), metavar='A,B',
                        help='network families, comma-separated: %(default)s')
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    rep = report.Report(BENCH_ID, 'CLR-GAN vs baseline on digits (FD-digits, latent MSE, rec L1)', args, seeds,
                        script=__file__, argv=argv, layout='image')
    rep.setting(resolution=RESOLUTION, families={f: FAMILIES[f] for f in args.families}, losses=LOSSES,
                protocol=proto, eval_z_seed=EVAL_Z_SEED,
                data='scikit-learn load_digits, half A (GAN) / half B (classifier, held-out reals); '
                     'substitutes CIFAR-10, which cannot be used offline on CPU')
    ctx = prepare_data(rep, proto)
    summaries = {}
    for family in args.families:
        evals = {loss: [] for loss in LOSSES}
        for seed in seeds:
            for loss, evaluation in train_seed(rep, family, seed, ctx, proto, args).items():
                evals[loss].append(evaluation)
        summaries[family] = summarize_family(rep, family, evals, seeds)
        rep.result(per_family=summaries)
        rep.save()
    rep.figure(figures.save_grid(images.to_uint8(ctx['heldout'][:32]), rep.path('heldout_reals.png'), cols=8, scale=3))
    rep.finish()
    return rep.data


if __name__ == '__main__':
    main()
