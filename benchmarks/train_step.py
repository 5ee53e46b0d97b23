"""One StyleGAN2-ADA training cycle on the CPU, timed phase by phase; ours against another tree.

    python benchmarks/train_step.py --official=/path/to/stylegan2-ada-pytorch [--repeats 5]
    python benchmarks/train_step.py --other=/tmp/base --other-name=before   # any tree with training.*
    python benchmarks/train_step.py --profile                                # ours alone, top operators

The cycle is what the official loop does between two lazy-regularisation steps, in miniature:
2 x (Gmain + Dmain) + Greg + Dreg, each followed by its Adam step, on a 32-px network
(channel_base 4096, channel_max 128, z/w 128, 2 mapping layers), batch 8, ADA `bgc` at p = 0.3,
R1 (gamma 1) and path length (weight 2) on, fp32, one thread. Networks, loss and augmentation
are built by the official class names (`training.networks.Generator`/`Discriminator`,
`training.loss.StyleGAN2Loss`, `training.augment.AugmentPipe`) inside each tree, each tree in its
own subprocess; the subprocesses alternate (A B A B ...) and the minimum over repeats is kept, so
machine load hits both alike. Printed: seconds per cycle (wall, and `cpu` = CPU time of the
worker process, the steadier number on a shared machine) and per phase (augment = time inside
AugmentPipe.forward, also counted in its phase), and the ratio other/ours (> 1: ours faster).
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CYCLE = ['Gmain', 'Dmain', 'Gmain', 'Dmain', 'Greg', 'Dreg']
REG_INTERVAL = 4  # gain of the regularisation phases, as the official loop's lazy regularisation


def build(resolution=32, batch=8, seed=0):
    """Build G, D, augment pipe, loss and optimizers by the official class names of the tree on sys.path."""
    import torch
    from training import augment, loss, networks
    torch.manual_seed(seed)
    synthesis = dict(channel_base=4096, channel_max=128, num_fp16_res=0, conv_clamp=None)
    G = networks.Generator(z_dim=128, c_dim=0, w_dim=128, img_resolution=resolution, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=synthesis).train()
    D = networks.Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, channel_base=4096,
                               channel_max=128, num_fp16_res=0, conv_clamp=None,
                               epilogue_kwargs=dict(mbstd_group_size=4)).train()
    pipe = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                               brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1).train()
    pipe.p.copy_(torch.as_tensor(0.3))
    device = torch.device('cpu')
    objective = loss.StyleGAN2Loss(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                   augment_pipe=pipe, style_mixing_prob=0.9, r1_gamma=1, pl_weight=2)
    opts = dict(G=torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8),
                D=torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8))
    gen = torch.Generator().manual_seed(seed + 1)
    data = dict(real=torch.rand([batch, 3, resolution, resolution], generator=gen) * 2 - 1,
                c=torch.zeros([batch, 0]), z=torch.randn([batch, 128], generator=gen))
    return dict(G=G, D=D, pipe=pipe, loss=objective, opts=opts, data=data)


def run_phase(parts, phase):
    """One phase as the official loop runs it: only that module trains, gradients, Adam step."""
    module = parts['G'] if phase.startswith('G') else parts['D']
    for other in (parts['G'], parts['D']):
        other.requires_grad_(other is module)
    opt = parts['opts']['G' if phase.startswith('G') else 'D']
    opt.zero_grad(set_to_none=True)
    data = parts['data']
    gain = REG_INTERVAL if phase.endswith('reg') else 1
    parts['loss'].accumulate_gradients(phase=phase, real_img=data['real'], real_c=data['c'], gen_z=data['z'],
                                       gen_c=data['c'], sync=True, gain=gain)
    module.requires_grad_(False)
    opt.step()


def _time_augment(pipe):
    """Wrap the pipe's forward so that its time accumulates in the returned dict."""
    spent = {'augment': 0.0}
    forward = pipe.forward

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = forward(*args, **kwargs)
        spent['augment'] += time.perf_counter() - start
        return out
    pipe.forward = timed
    return spent


def _precision_runner(parts, precision):
    """run_phase under `precision` (ours only: torch_utils.misc.precision_context), plus the bf16
    forward's largest |difference| from fp32 on G's images and D's logits (same z, same weights)."""
    if precision == 'fp32':
        return run_phase, {}
    import torch
    from torch_utils import misc
    G, D, data = parts['G'], parts['D'], parts['data']

    def forward(prec):
        with torch.no_grad(), misc.precision_context(prec, 'cpu'):
            img = G(data['z'], data['c'], noise_mode='const').float()
            return img, D(img, data['c']).float()
    (img32, logit32), (img16, logit16) = forward('fp32'), forward(precision)
    quality = dict(img_maxdiff=float((img32 - img16).abs().max()), img_meandiff=float((img32 - img16).abs().mean()),
                   logit_maxdiff=float((logit32 - logit16).abs().max()))

    def run(parts, phase):
        with misc.precision_context(precision, 'cpu'):
            run_phase(parts, phase)
    return run, quality


def worker(tree, cycles, precision='fp32'):
    """Time `cycles` cycles in this process (tree on sys.path); print one JSON line of minima."""
    sys.path.insert(0, tree)
    import torch
    torch.set_num_threads(1)
    parts = build()
    run_phase, quality = _precision_runner(parts, precision)
    spent = _time_augment(parts['pipe'])
    for phase in CYCLE:  # warm-up: allocator, caches, lazy set-up
        run_phase(parts, phase)
    best = None
    for _ in range(cycles):
        spent['augment'] = 0.0
        times = {}
        start, cpu_start = time.perf_counter(), time.process_time()
        for phase in CYCLE:
            t0 = time.perf_counter()
            run_phase(parts, phase)
            times[phase] = times.get(phase, 0.0) + time.perf_counter() - t0
        times['cycle'] = time.perf_counter() - start
        times['cpu'] = time.process_time() - cpu_start   # this process's CPU time: robust to machine load
        times['augment'] = spent['augment']
        best = times if best is None else {k: min(best[k], v) for k, v in times.items()}
    import training.networks as nets
    best['source'] = os.path.dirname(os.path.abspath(nets.__file__))
    best.update(quality)
    print('RESULT ' + json.dumps(best), flush=True)


def _run_worker(tree, cycles, precision='fp32'):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--worker', tree, f'--cycles={cycles}',
                           f'--precision={precision}'],
                          cwd=tree, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=tree))
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f'worker for {tree} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len('RESULT '):])


def compare(trees, repeats, cycles, precisions={}):
    """Alternate the trees' workers `repeats` times; return {name: per-key minima}.

    precisions: {name: 'bf16'} for rows that run ours under another precision (default fp32)."""
    best = {}
    for round_index in range(repeats):
        for name, tree in trees.items():
            result = _run_worker(tree, cycles, precisions.get(name, 'fp32'))
            source = result.pop('source')
            best[name] = result if name not in best else {k: min(best[name][k], v) for k, v in result.items()}
            best[name]['source'] = source
            print(f'round {round_index + 1}/{repeats} {name:9s} cycle {result["cycle"]:.3f} s '
                  f'(CPU {result["cpu"]:.3f} s)', flush=True)
    return best


def profile(cycles, top):
    """Profile ours (this tree) with torch.profiler and print the top operators by self CPU time."""
    sys.path.insert(0, REPO)
    import torch
    torch.set_num_threads(1)
    parts = build()
    for phase in CYCLE:
        run_phase(parts, phase)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=False) as prof:
        for _ in range(cycles):
            for phase in CYCLE:
                with torch.profiler.record_function(f'phase/{phase}'):
                    run_phase(parts, phase)
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=top))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--official', metavar='DIR', help='a checkout of the official StyleGAN2-ADA PyTorch code')
    parser.add_argument('--other', metavar='DIR', help='any other tree with training.* (e.g. an older checkout)')
    parser.add_argument('--other-name', default='other')
    parser.add_argument('--repeats', type=int, default=5, help='alternating rounds (min is kept)')
    parser.add_argument('--cycles', type=int, default=2, help='timed cycles per worker process')
    parser.add_argument('--profile', action='store_true', help='profile ours alone and print the top operators')
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32',
                        help='bf16: also time ours under CPU bf16 autocast (row ours-bf16) and print its output difference')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--worker', metavar='TREE', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.cycles, args.precision)
    print('command:', ' '.join([os.path.basename(sys.executable)] + sys.argv))
    if args.profile or not (args.official or args.other):
        return profile(args.cycles, args.top)
    trees = {'ours': REPO}
    if args.official:
        trees['official'] = os.path.abspath(args.official)
    if args.other:
        trees[args.other_name] = os.path.abspath(args.other)
    if args.precision != 'fp32':
        trees[f'ours-{args.precision}'] = REPO
    start = time.time()
    best = compare(trees, args.repeats, args.cycles, {f'ours-{args.precision}': args.precision})
    keys = ['cycle', 'cpu'] + sorted(set(CYCLE)) + ['augment']
    print(f'\nminimum over {args.repeats} rounds x {args.cycles} cycles, seconds (fp32, 1 thread, 32 px, batch 8):')
    print(f'{"":10s}' + ''.join(f'{k:>10s}' for k in keys))
    for name, row in best.items():
        print(f'{name:10s}' + ''.join(f'{row[k]:10.3f}' for k in keys))
    for name, row in best.items():
        if name != 'ours':
            print(f'speed of ours relative to {name}: {row["cycle"] / best["ours"]["cycle"]:.2f}x '
                  f'(per phase: ' + ', '.join(f'{k} {row[k] / max(best["ours"][k], 1e-9):.2f}x' for k in keys[1:]) + ')')
    for name, row in best.items():
        if 'img_maxdiff' in row:
            print(f'{name} vs fp32 forward (same z, weights): image max |diff| {row["img_maxdiff"]:.4f}, mean '
                  f'{row["img_meandiff"]:.5f} (images in [-1, 1]); D logit max |diff| {row["logit_maxdiff"]:.4f}')
    print(f'wall time {time.time() - start:.1f} s')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)) or '.', exist_ok=True)
        with open(args.out, 'w') as fh:
            json.dump(dict(command=' '.join(sys.argv), repeats=args.repeats, cycles=args.cycles, results=best), fh, indent=2)


if __name__ == '__main__':
    main()
