"""Framework overhead: `train.py --cfg=dcgan` against a minimal hand-written PyTorch loop.

    python -m benchmarks.framework_overhead [--repeats 3] [--iterations 32] [--cbase 1024] [--out FILE]
    python -m benchmarks.framework_overhead --profile      # where train.py's loop spends its time

Both train the same DCGAN G and D (stylegan_plus.networks.dcgan, the preset's widths) on the same
16-px digits, batch 64, with the same work per iteration: a non-saturating G step, a D step on
fakes and reals, lazy R1 every 16 iterations (gain 16, Adam rates and betas adjusted as the
preset does), the G_ema update, Adam 2e-4 / (0.5, 0.999), no augmentation. The hand loop is what
a researcher would write in one file (data preloaded as one tensor); it lives here, not in the
package.

Measurement: CPU seconds (user + system, of the run's process and every process it waited for,
e.g. data-loader workers), so machine load does not count; both programs run with one compute
thread (OMP_NUM_THREADS=1), whose spinning would otherwise be counted as work. Each program runs twice in fresh
processes, for `base` and `base + iterations` iterations (both multiples of the R1 interval, so
the difference holds exactly iterations/16 R1 steps and one tick per 16 iterations); subtracting
the two totals removes start-up, data set-up, image grids and the final snapshot, i.e. all
warm-up. Runs alternate (train.py short, hand short, train.py long, hand long, ...), the minimum
of each over the repeats is kept, and the cost per kimg is (min long - min short) / kimg between
them. Goal (issue 19): train.py <= 1.15x the hand loop.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64
R1_INTERVAL = 16
RESOLUTION = 16
GOAL = 1.15
# One compute thread in both programs: on a shared machine, idle threads of a second one spin
# and their CPU time would measure the load, not the work.
ONE_THREAD = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def _load_images(folder):
    """All PNGs under `folder` (sub-folders too) as float32 [N, C, H, W] in [-1, 1]."""
    import numpy as np
    import PIL.Image
    import torch
    paths = sorted(os.path.join(root, n) for root, _dirs, files in os.walk(folder) for n in files if n.endswith('.png'))
    arrays = [np.asarray(PIL.Image.open(path)) for path in paths]
    images = np.stack([a if a.ndim == 3 else a[:, :, None] for a in arrays]).transpose(0, 3, 1, 2)
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1)


def hand_loop(data_dir, iterations, cbase, seed=0):
    """The reference loop: `iterations` iterations of the preset's work, written plainly."""
    import copy
    import torch
    import torch.nn.functional as F
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
    for step in range(iterations):
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


def _train_py_argv(data_dir, iterations, cbase, outdir):
    tick_kimg = R1_INTERVAL * BATCH / 1000  # one tick per R1 interval
    return [sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data_dir}', '--cfg=dcgan',
            f'--cbase={cbase}', '--aug=noaug', '--metrics=none', '--snap=1000', '--device=cpu', '--workers=1',
            f'--nimg={iterations * BATCH}', f'--kimg-per-tick={tick_kimg:g}']


def _hand_argv(data_dir, iterations, cbase):
    return [sys.executable, '-m', 'benchmarks.framework_overhead', f'--hand={data_dir}', f'--iterations={iterations}',
            f'--cbase={cbase}']


def _cpu_seconds(argv):
    """Run `argv` from the repository root; return (CPU seconds of it and its waited-for children, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, **ONE_THREAD))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f'{" ".join(argv[1:3])} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}')
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(data_dir, workdir, base, iterations, cbase, repeats):
    """Alternating runs; returns {program: {'short': [cpu...], 'long': [cpu...], 'wall_short': ..., ...}}."""
    lengths = {'short': base, 'long': base + iterations}
    runs = {name: {key: [] for key in ('short', 'long', 'wall_short', 'wall_long')} for name in ('train.py', 'hand')}
    for round_index in range(repeats):
        for length, count in lengths.items():
            for name in runs:
                argv = (_train_py_argv(data_dir, count, cbase, tempfile.mkdtemp(dir=workdir, prefix='run'))
                        if name == 'train.py' else _hand_argv(data_dir, count, cbase))
                cpu, wall = _cpu_seconds(argv)
                runs[name][length].append(cpu)
                runs[name][f'wall_{length}'].append(wall)
                print(f'round {round_index + 1}/{repeats} {name:8s} {count:3d} iterations: {cpu:6.2f} CPU s '
                      f'({wall:.1f} s wall)', flush=True)
    return runs


def per_kimg(runs, iterations):
    """CPU seconds per kimg from the minima of the long and the short runs."""
    kimg = iterations * BATCH / 1000
    return (min(runs['long']) - min(runs['short'])) / kimg


def profile(data_dir, workdir, base, iterations, cbase, top):
    """One train.py run under cProfile; print our functions by cumulative time (loop internals)."""
    stats_path = os.path.join(workdir, 'train.prof')
    argv = _train_py_argv(data_dir, base + iterations, cbase, tempfile.mkdtemp(dir=workdir, prefix='run'))
    argv = [argv[0], '-m', 'cProfile', '-o', stats_path] + argv[1:]
    _cpu_seconds(argv)
    import pstats
    stats = pstats.Stats(stats_path)
    stats.sort_stats('cumulative').print_stats(r'stylegan_plus|torch_utils|train\.py', top)
    # What one iteration and one phase spend their time on, beyond the networks' own work.
    stats.print_callees(r'loop\.py:\d+\(_iteration\)')
    stats.print_callees(r'phases\.py:\d+\(run_phase\)')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iterations', type=int, default=2 * R1_INTERVAL,
                        help=f'timed iterations: the long run minus the short one (a multiple of {R1_INTERVAL})')
    parser.add_argument('--base', type=int, default=R1_INTERVAL,
                        help=f'iterations of the short run (a multiple of {R1_INTERVAL})')
    parser.add_argument('--repeats', type=int, default=3, help='alternating rounds (the minimum is kept)')
    parser.add_argument('--cbase', type=int, default=1024, help='channel_base of G and D (the main job uses 1024)')
    parser.add_argument('--profile', action='store_true', help='profile one train.py run instead of comparing')
    parser.add_argument('--top', type=int, default=40, help='--profile: rows to print')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--hand', metavar='DATA', help=argparse.SUPPRESS)  # worker: the hand loop in a fresh process
    args = parser.parse_args()
    if args.hand:
        return hand_loop(args.hand, args.iterations, args.cbase)
    for name in ('iterations', 'base'):
        value = getattr(args, name)
        if value < R1_INTERVAL or value % R1_INTERVAL:
            parser.error(f'--{name}={value}: must be a positive multiple of {R1_INTERVAL} (the R1 interval)')
    if args.repeats < 1:
        parser.error(f'--repeats={args.repeats}: must be >= 1')
    print('command:', ' '.join([os.path.basename(sys.executable)] + sys.argv))
    print('load average at start: ' + ', '.join(f'{v:.2f}' for v in os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        data_dir = os.path.join(workdir, 'digits16')
        subprocess.run([sys.executable, '-m', 'stylegan_plus.cli.make_digits', f'--dest={data_dir}',
                        f'--resolution={RESOLUTION}', '--no-labels'], cwd=REPO, check=True, capture_output=True)
        if args.profile:
            return profile(data_dir, workdir, args.base, args.iterations, args.cbase, args.top)
        runs = measure(data_dir, workdir, args.base, args.iterations, args.cbase, args.repeats)
    cost = {name: per_kimg(values, args.iterations) for name, values in runs.items()}
    ratio = cost['train.py'] / cost['hand']
    print(f'\nCPU seconds per kimg ({args.iterations} iterations = {args.iterations * BATCH / 1000:g} kimg between '
          f'runs of {args.base} and {args.base + args.iterations}; minimum of {args.repeats}):')
    print(f'train.py {cost["train.py"]:.2f}, hand loop {cost["hand"]:.2f}; overhead {ratio:.3f}x '
          f'(goal <= {GOAL}x: {"met" if ratio <= GOAL else "not met"})')
    print('train.py command: ' + ' '.join(_train_py_argv('DATA', args.base + args.iterations, args.cbase, 'OUT')[1:]))
    print('load average at end: ' + ', '.join(f'{v:.2f}' for v in os.getloadavg()))
    if args.out:
        from benchmarks.common.report import write_json  # pylint: disable=import-outside-toplevel  # not in the timed child
        write_json(args.out, dict(command=' '.join(sys.argv), iterations=args.iterations, base=args.base,
                                   cpu_sec_per_kimg=cost, ratio=ratio, runs=runs, load_average=os.getloadavg()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
