"""Framework overhead: `train.py --cfg=dcgan` against a minimal hand-written PyTorch loop.

    python benchmarks/framework_overhead.py [--kimg 2] [--repeats 3] [--cbase 1024] [--out results/overhead.json]

Both train the same DCGAN G and D (stylegan_plus.networks.dcgan, the preset's widths) on the same
16-px digits, batch 64, with the same work per iteration: a non-saturating G step, a D step on
fakes and reals, lazy R1 every 16 iterations (gain 16, Adam rates and betas adjusted the same
way as the preset), the G_ema update, Adam 2e-4 / (0.5, 0.999), no augmentation. The hand loop
is what a researcher would write in one file; it lives here, not in the package. train.py's
sec/kimg comes from its stats.jsonl (ticks after the first, so start-up and the initial image
grids are not counted); the hand loop's from its own clock after one warm-up iteration. Runs
alternate (train.py, hand, train.py, hand, ...) and the minimum of each is kept.
Goal (issue 19): train.py <= 1.15x the hand loop's sec/kimg.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64
R1_INTERVAL = 16
RESOLUTION = 16


def _load_images(folder):
    """All PNGs under `folder` (sub-folders too) as float32 [N, C, H, W] in [-1, 1]."""
    import numpy as np
    import PIL.Image
    import torch
    paths = sorted(os.path.join(root, n) for root, _dirs, files in os.walk(folder) for n in files if n.endswith('.png'))
    arrays = [np.asarray(PIL.Image.open(path)) for path in paths]
    images = np.stack([a if a.ndim == 3 else a[:, :, None] for a in arrays]).transpose(0, 3, 1, 2)
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1)


def hand_loop(data_dir, kimg, cbase, seed=0):
    """The reference loop; returns sec/kimg after one warm-up iteration."""
    import copy
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, REPO)
    from stylegan_plus.networks import dcgan
    torch.manual_seed(seed)
    reals = _load_images(data_dir)
    channels = reals.shape[1]
    G = dcgan.Generator(z_dim=100, c_dim=0, img_resolution=RESOLUTION, img_channels=channels, channel_base=cbase)
    D = dcgan.Discriminator(c_dim=0, img_resolution=RESOLUTION, img_channels=channels, channel_base=cbase)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    gamma = 0.0002 * RESOLUTION ** 2 / BATCH
    ratio = R1_INTERVAL / (R1_INTERVAL + 1)  # lazy regularisation: the preset's rule for D's Adam
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0002, betas=(0.5, 0.999), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0002 * ratio, betas=(0.5 ** ratio, 0.999 ** ratio), eps=1e-8)
    ema_nimg = BATCH * 10 / 32 * 1000
    iterations = max(int(kimg * 1000 / BATCH), 2)
    start, done = None, 0
    for step in range(iterations + 1):
        if step == 1:
            start = time.perf_counter()  # the first iteration is warm-up
        real = reals[torch.randint(len(reals), [BATCH])]
        # G: non-saturating loss.
        G.requires_grad_(True)
        D.requires_grad_(False)
        opt_G.zero_grad(set_to_none=True)
        F.softplus(-D(G(torch.randn([BATCH, 100])))).mean().backward()
        opt_G.step()
        # D: fakes and reals.
        G.requires_grad_(False)
        D.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        fake = G(torch.randn([BATCH, 100]))
        (F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()).backward()
        opt_D.step()
        if step % R1_INTERVAL == 0:  # lazy R1
            opt_D.zero_grad(set_to_none=True)
            real_x = real.detach().requires_grad_(True)
            grads, = torch.autograd.grad(D(real_x).sum(), real_x, create_graph=True)
            (grads.square().sum(dim=[1, 2, 3]).mean() * (gamma / 2) * R1_INTERVAL).backward()
            opt_D.step()
        D.requires_grad_(False)
        # G_ema with the preset's ramp-up.
        nimg = (step + 1) * BATCH
        beta = 0.5 ** (BATCH / max(min(ema_nimg, nimg * 0.05), 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        if step >= 1:
            done += BATCH
    return (time.perf_counter() - start) / (done / 1000)


def train_py(data_dir, kimg, cbase, workdir):
    """Run train.py as a user does; return the mean sec/kimg of its ticks after the first."""
    outdir = tempfile.mkdtemp(dir=workdir, prefix='run')
    tick = kimg / 4
    argv = [sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data_dir}', '--cfg=dcgan',
            f'--cbase={cbase}', '--aug=noaug', '--metrics=none', '--snap=1000', '--device=cpu', '--workers=1',
            f'--nimg={int(kimg * 1000)}', f'--kimg-per-tick={tick:g}']
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'train.py failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}')
    run_dir = os.path.join(outdir, sorted(os.listdir(outdir))[0])
    with open(os.path.join(run_dir, 'stats.jsonl')) as fh:
        ticks = [json.loads(line) for line in fh if line.strip()]
    timed = [t for t in ticks[1:] if 'Timing/sec_per_kimg' in t]
    if not timed:
        raise SystemExit(f'train.py wrote no timed tick after the first in {run_dir}')
    # Weight each tick by its kimg, i.e. total seconds over total kimg of the timed ticks.
    seconds = sum(t['Timing/sec_per_tick']['mean'] for t in timed)
    kimgs = sum(t['Timing/sec_per_tick']['mean'] / t['Timing/sec_per_kimg']['mean'] for t in timed)
    return seconds / kimgs, ' '.join(argv)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--kimg', type=float, default=2.0, help='images (thousands) per run')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--cbase', type=int, default=1024, help='channel_base of G and D (the main job uses 1024)')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--hand', metavar='DATA', help=argparse.SUPPRESS)  # worker: hand loop in a fresh process
    args = parser.parse_args()
    if args.hand:
        print(f'RESULT {hand_loop(args.hand, args.kimg, args.cbase):.6f}')
        return
    print('command:', ' '.join([os.path.basename(sys.executable)] + sys.argv))
    with tempfile.TemporaryDirectory() as workdir:
        data_dir = os.path.join(workdir, 'digits16')
        subprocess.run([sys.executable, '-m', 'stylegan_plus.cli.make_digits', f'--dest={data_dir}',
                        f'--resolution={RESOLUTION}', '--no-labels'], cwd=REPO, check=True, capture_output=True)
        ours, hand, command = [], [], None
        for round_index in range(args.repeats):
            sec, command = train_py(data_dir, args.kimg, args.cbase, workdir)
            ours.append(sec)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), f'--hand={data_dir}',
                                   f'--kimg={args.kimg}', f'--cbase={args.cbase}'], cwd=REPO, capture_output=True,
                                  text=True, check=True)
            hand.append(float(proc.stdout.split('RESULT ')[-1]))
            print(f'round {round_index + 1}/{args.repeats}: train.py {ours[-1]:.2f} s/kimg, hand loop {hand[-1]:.2f} s/kimg',
                  flush=True)
    ratio = min(ours) / min(hand)
    print(f'\ntrain.py command: {command}')
    print(f'min sec/kimg: train.py {min(ours):.2f}, hand loop {min(hand):.2f}; overhead {ratio:.3f}x (goal <= 1.15x: '
          f'{"met" if ratio <= 1.15 else "not met"})')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)) or '.', exist_ok=True)
        with open(args.out, 'w') as fh:
            json.dump(dict(command=' '.join(sys.argv), train_py=ours, hand=hand, ratio=ratio), fh, indent=2)


if __name__ == '__main__':
    main()
