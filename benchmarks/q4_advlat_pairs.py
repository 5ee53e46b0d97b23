"""Q4: AdvLatGAN-div pair mining (Eq. 8) vs its inverse on a DCGAN trained by train.py on digits.

    python -m benchmarks.q4_advlat_pairs --quick        # ~3 min on 2 cores: 512 pairs
    python -m benchmarks.q4_advlat_pairs                # full: 5 120 pairs, as the paper's 5k (~15 min)

Protocol (docs/benchmarks.md Q4). train.py trains a DCGAN (`--cfg=dcgan --cbase=512`, baseline loss)
on the 1 797 digits at 16 px. On its G_ema, for batches of 64 latents z1 (fixed seeds), the
partner z2 starts at z1 + N(0, 0.08^2) and takes 300 sign steps of 0.03:
- Eq. 8 (the paper's mining, as `--loss=advlat-div` trains with it): descent on
  d_I(G(z1), G(z2)) / (d_z(z1, z2) + 1) -- the plugin's own `AdvLatDivLoss.mine_pair`;
- the inverse form: ascent on the same objective (`pair_mining_objective` negated, through the
  shared `latent_steps.sign_descent`), so both directions use the project's code, not a copy.
Reported: the image/latent distance ratio d_I / d_z (mean absolute distances, per batch as in
MSGAN and the plugin's `Loss/advlat/div_ratio`; and per pair), for the mined, the inverse and
the unmined starting pairs. Paper (CIFAR-10 DCGAN, 5k images): 0.241 (Eq. 8) vs 4.023 (inverse).
Goal: mined ratio smaller than the inverse ratio by at least 5x.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import numpy as np
import torch

from benchmarks.common import digits, figures, report, runner, runs
from stylegan_plus.io import images

BENCH_ID = 'q4_advlat_pairs'
RESOLUTION = 16
PAPER = dict(mined=0.241, inverse=4.023)
MINING = dict(steps=300, eps=0.03, std=0.08, batch=64)
PROTOCOLS = {
    'full': dict(train=dict(kimg=60, tick=4, snap=100), batches=80, steps=300, curve_every=30),
    'quick': dict(train=dict(kimg=10, tick=2, snap=100), batches=8, steps=300, curve_every=30),
    'smoke': dict(train=dict(nimg=64, tick=0.064, snap=1), batches=1, steps=4, curve_every=2),
}


def train_generator(rep, proto):
    """Train the DCGAN with train.py; returns the path of its last snapshot."""
    pixels, labels = digits.load(RESOLUTION)
    data = digits.write_dataset(rep.path(f'data/digits{RESOLUTION}.zip'), pixels, labels)
    train = proto['train']
    length = {k: v for k, v in train.items() if k in ('kimg', 'nimg')}
    args = runner.image_train_args(data, 0, cfg='dcgan', loss='stylegan2', tick=train['tick'], snap=train['snap'],
                                   extra=['--cbase=512'], **length)
    job = runner.run_job(runner.TrainJob('dcgan', args), rep.out)
    rep.add_runs([job])
    kimg, path = runs.snapshots(job.run_dir)[-1]
    rep.result(snapshot=path, snapshot_kimg=kimg, train_wall_s=job.wall_sec)
    return path


def mining_tools(G, steps):
    """(loss plugin for Eq. 8 mining, inverse-mining function) built on the project's shared code."""
    from stylegan_plus.losses.advlat import AdvLatDivLoss, pair_mining_objective  # pylint: disable=import-outside-toplevel
    from stylegan_plus.sampling.latent_steps import sign_descent  # pylint: disable=import-outside-toplevel
    loss = AdvLatDivLoss('cpu', G=G, advlat_div_eps=MINING['eps'], advlat_div_steps=steps,
                         advlat_div_std=MINING['std'])

    def mine_inverse(z1, c, start):
        def objective(z2):
            img1, img2 = loss.generate_pair(z1, z2, c)
            return -pair_mining_objective(img1.detach(), img2, z1, z2)
        return sign_descent(start, objective, MINING['eps'], steps)
    return loss, mine_inverse


@torch.no_grad()
def pair_ratios(loss, z1, z2, c):
    """(batch-level d_I / d_z, per-pair ratios [N], d_I, d_z) with mean absolute distances."""
    img1, img2 = loss.generate_pair(z1, z2, c)
    d_img = (img1 - img2).abs().flatten(1).mean(1)
    d_z = (z1 - z2).abs().mean(1)
    return float(d_img.mean() / d_z.mean()), (d_img / d_z).numpy(), float(d_img.mean()), float(d_z.mean())


def mine_batch(loss, mine_inverse, index, z_dim):
    """One batch of 64 pairs: start, Eq. 8 and inverse partners of z1 (seeded by the batch index)."""
    gen = torch.Generator().manual_seed(index)
    z1 = torch.randn([MINING['batch'], z_dim], generator=gen)
    start = z1 + MINING['std'] * torch.randn([MINING['batch'], z_dim], generator=gen)
    c = torch.zeros([MINING['batch'], 0])
    return z1, c, dict(start=start, mined=loss.mine_pair(z1, c, start=start), inverse=mine_inverse(z1, c, start))


def ratio_curve(G, z_dim, steps, every):
    """Batch-level ratio after every `every` steps, on batch 0: {kind: (steps [T], ratio [T])}."""
    loss, mine_inverse = mining_tools(G, every)
    z1, c, pairs = mine_batch(*mining_tools(G, 0), 0, z_dim)
    curves = {}
    for kind, mover in (('mined', lambda z2: loss.mine_pair(z1, c, start=z2)),
                        ('inverse', lambda z2: mine_inverse(z1, c, z2))):
        z2, xs, ys = pairs['start'], [0], [pair_ratios(loss, z1, pairs['start'], c)[0]]
        for done in range(every, steps + 1, every):
            z2 = mover(z2)
            xs.append(done)
            ys.append(pair_ratios(loss, z1, z2, c)[0])
        curves[kind] = (xs, ys)
    return curves


def measure(G, proto):
    """Ratios over all batches: {kind: dict(batch_ratio mean/std, pair_ratio median, d_img, d_z)} and pair images."""
    loss, mine_inverse = mining_tools(G, proto['steps'])
    found = {kind: dict(batch=[], pairs=[], d_img=[], d_z=[]) for kind in ('start', 'mined', 'inverse')}
    shown = None
    for index in range(proto['batches']):
        z1, c, pairs = mine_batch(loss, mine_inverse, index, G.z_dim)
        for kind, z2 in pairs.items():
            batch_ratio, per_pair, d_img, d_z = pair_ratios(loss, z1, z2, c)
            for key, value in (('batch', batch_ratio), ('d_img', d_img), ('d_z', d_z)):
                found[kind][key].append(value)
            found[kind]['pairs'].append(per_pair)
        if shown is None:
            with torch.no_grad():
                shown = [G(z[:8], c[:8]) for z in (pairs['mined'], z1, pairs['inverse'])]
        if index % 10 == 0 or index == proto['batches'] - 1:
            print(f'  batch {index + 1}/{proto["batches"]}: ratio mined {found["mined"]["batch"][-1]:.3f}, '
                  f'inverse {found["inverse"]["batch"][-1]:.3f}, start {found["start"]["batch"][-1]:.3f}', flush=True)
    summary = {}
    for kind, values in found.items():
        pairs = np.concatenate(values['pairs'])
        summary[kind] = dict(batch_ratio_mean=float(np.mean(values['batch'])), batch_ratio_std=float(np.std(values['batch'])),
                             pair_ratio_median=float(np.median(pairs)), d_img=float(np.mean(values['d_img'])),
                             d_z=float(np.mean(values['d_z'])), num_pairs=int(pairs.size))
    return summary, torch.cat(shown)


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, report.make_parser(__doc__, BENCH_ID).parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    rep = report.Report(BENCH_ID, 'AdvLatGAN-div pair mining: Eq. 8 vs inverse, d_I/d_z', args, seeds,
                        script=__file__, argv=argv, layout='image')
    rep.setting(resolution=RESOLUTION, mining=dict(MINING, steps=proto['steps']), protocol=proto,
                network='--cfg=dcgan --cbase=512, baseline loss, G_ema of the last snapshot',
                data='scikit-learn load_digits (substitutes CIFAR-10: no download, CPU budget)')
    G = runs.load_snapshot(train_generator(rep, proto), ['G_ema'])['G_ema']
    summary, shown = measure(G, proto)
    mined, inverse = summary['mined']['batch_ratio_mean'], summary['inverse']['batch_ratio_mean']
    factor = inverse / mined if mined > 0 else None
    rep.result(ratios=summary, inverse_over_mined=factor)
    rep.compare('d_I / d_z of Eq. 8 pairs vs inverse-form pairs', f'{PAPER["mined"]} vs {PAPER["inverse"]} '
                f'({PAPER["inverse"] / PAPER["mined"]:.1f}x; CIFAR-10 DCGAN, 5k images)',
                f'{mined:.3f} vs {inverse:.3f} ({report.fmt(factor, 1)}x; digits DCGAN, '
                f'{summary["mined"]["num_pairs"]} pairs; unmined start {summary["start"]["batch_ratio_mean"]:.3f})',
                'mined < inverse by >= 5x', None if factor is None else bool(factor >= 5))
    rep.figure(figures.save_grid(images.to_uint8(shown), rep.path('pairs.png'), cols=8, scale=4))
    kinds = ('start', 'mined', 'inverse')
    rep.figure(figures.bar_plot(rep.path('ratios.png'), ['start', 'Eq. 8', 'inverse'],
                                [summary[k]['batch_ratio_mean'] for k in kinds],
                                errors=[summary[k]['batch_ratio_std'] for k in kinds],
                                title='Q4: d_I / d_z of pairs (mean over batches +- std)', ylabel='ratio'))
    curves = ratio_curve(G, G.z_dim, proto['steps'], proto['curve_every'])
    rep.result(curve_batch0={k: dict(steps=v[0], ratio=v[1]) for k, v in curves.items()})
    rep.figure(figures.line_plot(rep.path('ratio_vs_steps.png'), {'Eq. 8 (mined)': curves['mined'],
                                                                  'inverse': curves['inverse']},
                                 title='Q4: d_I / d_z during the mining (batch 0)', xlabel='sign steps',
                                 ylabel='d_I / d_z'))
    rep.finish()
    return rep.data


if __name__ == '__main__':
    main()
