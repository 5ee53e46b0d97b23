"""One StyleGAN2-ADA training cycle on the CPU, timed phase by phase; ours against another tree.

    python -m benchmarks.train_step --official=/path/to/stylegan2-ada-pytorch [--repeats 5]
    python -m benchmarks.train_step --other=/tmp/base --other-name=before   # any tree with training.*
    python -m benchmarks.train_step --profile [--by-shape] [--other=DIR]    # one tree alone, top operators

The cycle is what the official loop does between two lazy-regularisation steps, in miniature:
2 x (Gmain + Dmain) + Greg + Dreg, each followed by its Adam step, on a 32-px network
(channel_base 4096, channel_max 128, z/w 128, 2 mapping layers), batch 8, ADA `bgc` at p = 0.3,
R1 (gamma 1) and path length (weight 2) on, fp32, one thread. Networks, loss and augmentation
are built by the official class names (`training.networks.Generator`/`Discriminator`,
`training.loss.StyleGAN2Loss`, `training.augment.AugmentPipe`) inside each tree, and, as the
official training loop does before it builds anything, `conv2d_gradfix.enabled` and
`grid_sample_gradfix.enabled` are set (`--gradfix=off` leaves them unset; on the official code
with torch >= 1.10 they change nothing); where the tree has it, as this project's loop does on
the CPU, `torch_utils.misc.keep_cpu_memory_for_reuse()` too. Each tree runs in its own subprocess, started in that
tree with only that tree on PYTHONPATH (this process's module search path is never edited); the
subprocesses alternate (A B A B ...) and the minimum over repeats is kept, so machine load hits
both alike. Printed: seconds per cycle (wall, and `cpu` = CPU time of the
worker process, the steadier number on a shared machine) and per phase (augment = time inside
AugmentPipe.forward, also counted in its phase), and the ratio other/ours (> 1: ours faster).
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A worker imports this file by its path, so that nothing of this repository shadows the tree
# under test: `-c` puts only the working directory (the tree) in front of the module search path.
_WORKER_BOOT = ('import importlib.util, sys; '
                'spec = importlib.util.spec_from_file_location("train_step_worker", sys.argv[1]); '
                'module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); '
                'module.worker_main(sys.argv[2:])')
CYCLE = ['Gmain', 'Dmain', 'Gmain', 'Dmain', 'Greg', 'Dreg']
REG_INTERVAL = 4  # gain of the regularisation phases, as the official loop's lazy regularisation


def build(resolution=32, batch=8, seed=0, gradfix=True):
    """Build G, D, augment pipe, loss and optimizers by the official class names of the importable tree."""
    import torch
    from torch_utils import misc
    from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
    from training import augment, loss, networks
    # What the official training loop sets before building the networks.
    conv2d_gradfix.enabled = grid_sample_gradfix.enabled = bool(gradfix)
    # What this project's loop adds on the CPU (a tree without the helper, e.g. the official one, skips it).
    keep_memory = getattr(misc, 'keep_cpu_memory_for_reuse', None)
    if keep_memory is not None:
        keep_memory()
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


def worker(cycles, precision='fp32', gradfix=True):
    """Time `cycles` cycles in this process (the tree in the working directory); print one JSON line of minima."""
    import torch
    torch.set_num_threads(1)
    parts = build(gradfix=gradfix)
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


def _spawn(tree, args, capture=True):
    """Run this file's `worker_main(args)` in a fresh interpreter inside `tree` (its only import root)."""
    return subprocess.run([sys.executable, '-c', _WORKER_BOOT, os.path.abspath(__file__), *args], cwd=tree,
                          capture_output=capture, text=True, env=dict(os.environ, PYTHONPATH=tree))


def _run_worker(tree, cycles, precision='fp32', gradfix=True):
    proc = _spawn(tree, ['--worker', f'--cycles={cycles}', f'--precision={precision}',
                         f'--gradfix={"on" if gradfix else "off"}'])
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f'worker for {tree} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len('RESULT '):])


def worker_main(argv):
    """Entry point of a worker process (see `_spawn`): time cycles, or profile them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--worker', action='store_true')
    parser.add_argument('--profile', action='store_true')
    parser.add_argument('--cycles', type=int, default=2)
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--by-shape', action='store_true')
    parser.add_argument('--precision', default='fp32')
    parser.add_argument('--gradfix', choices=['on', 'off'], default='on')
    args = parser.parse_args(argv)
    if args.profile:
        return profile(args.cycles, args.top, args.by_shape, args.gradfix == 'on')
    return worker(args.cycles, args.precision, args.gradfix == 'on')


def compare(trees, repeats, cycles, precisions={}, gradfix=True):
    """Alternate the trees' workers `repeats` times; return {name: per-key minima}.

    precisions: {name: 'bf16'} for rows that run ours under another precision (default fp32)."""
    best = {}
    for round_index in range(repeats):
        for name, tree in trees.items():
            result = _run_worker(tree, cycles, precisions.get(name, 'fp32'), gradfix)
            source = result.pop('source')
            best[name] = result if name not in best else {k: min(best[name][k], v) for k, v in result.items()}
            best[name]['source'] = source
            print(f'round {round_index + 1}/{repeats} {name:9s} cycle {result["cycle"]:.3f} s '
                  f'(CPU {result["cpu"]:.3f} s)', flush=True)
    return best


def profile(cycles, top, by_shape=False, gradfix=True):
    """Profile the tree in the working directory with torch.profiler; print the top operators by self CPU time."""
    import torch
    torch.set_num_threads(1)
    parts = build(gradfix=gradfix)
    for phase in CYCLE:
        run_phase(parts, phase)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=by_shape) as prof:
        for _ in range(cycles):
            for phase in CYCLE:
                with torch.profiler.record_function(f'phase/{phase}'):
                    run_phase(parts, phase)
    table = prof.key_averages(group_by_input_shape=by_shape).table(sort_by='self_cpu_time_total', row_limit=top,
                                                                    max_name_column_width=48)
    print(f'{cycles} cycles, times are totals over them:\n{table}', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--official', metavar='DIR', help='a checkout of the official StyleGAN2-ADA PyTorch code')
    parser.add_argument('--other', metavar='DIR', help='any other tree with training.* (e.g. an older checkout)')
    parser.add_argument('--other-name', default='other')
    parser.add_argument('--repeats', type=int, default=5, help='alternating rounds (min is kept)')
    parser.add_argument('--cycles', type=int, default=2, help='timed cycles per worker process')
    parser.add_argument('--profile', action='store_true',
                        help='profile one tree (ours, or the one given by --official/--other) and print the top operators')
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--by-shape', action='store_true', help='--profile: one row per operator and input shapes')
    parser.add_argument('--gradfix', choices=['on', 'off'], default='on',
                        help='set conv2d_gradfix/grid_sample_gradfix.enabled in every tree, as the official loop does '
                             '(default on)')
    parser.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32',
                        help='bf16: also time ours under CPU bf16 autocast (row ours-bf16) and print its output difference')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    for flag, tree in (('--official', args.official), ('--other', args.other)):
        if tree is not None and not os.path.isfile(os.path.join(tree, 'training', 'networks.py')):
            parser.error(f'{flag}={tree}: not a StyleGAN2-ADA tree (expected {os.path.join(tree, "training", "networks.py")})')
    if args.repeats < 1 or args.cycles < 1:
        parser.error(f'--repeats={args.repeats} and --cycles={args.cycles} must both be >= 1')
    print('command:', ' '.join([os.path.basename(sys.executable)] + sys.argv))
    print('load average at start: ' + ', '.join(f'{v:.2f}' for v in os.getloadavg()))
    if args.profile or not (args.official or args.other):
        # --profile with --official or --other profiles that tree instead of ours.
        tree = os.path.abspath(args.official or args.other or REPO)
        print(f'profiling {tree}', flush=True)
        flags = ['--profile', f'--cycles={args.cycles}', f'--top={args.top}', f'--gradfix={args.gradfix}']
        return _spawn(tree, flags + (['--by-shape'] if args.by_shape else []), capture=False).returncode
    trees = {'ours': REPO}
    if args.official:
        trees['official'] = os.path.abspath(args.official)
    if args.other:
        trees[args.other_name] = os.path.abspath(args.other)
    if args.precision != 'fp32':
        trees[f'ours-{args.precision}'] = REPO
    start = time.time()
    best = compare(trees, args.repeats, args.cycles, {f'ours-{args.precision}': args.precision}, args.gradfix == 'on')
    keys = ['cycle', 'cpu'] + sorted(set(CYCLE)) + ['augment']
    print(f'\nminimum over {args.repeats} rounds x {args.cycles} cycles, seconds (fp32, 1 thread, 32 px, batch 8, '
          f'gradfix {args.gradfix}):')
    print(f'{"":10s}' + ''.join(f'{k:>10s}' for k in keys))
    for name, row in best.items():
        print(f'{name:10s}' + ''.join(f'{row[k]:10.3f}' for k in keys))
    for name, row in best.items():
        if name != 'ours':
            print(f'speed of ours relative to {name}: {row["cpu"] / best["ours"]["cpu"]:.2f}x in CPU time, '
                  f'{row["cycle"] / best["ours"]["cycle"]:.2f}x wall (per phase, wall: '
                  + ', '.join(f'{k} {row[k] / max(best["ours"][k], 1e-9):.2f}x' for k in keys[2:]) + ')')
    for name, row in best.items():
        if 'img_maxdiff' in row:
            print(f'{name} vs fp32 forward (same z, weights): image max |diff| {row["img_maxdiff"]:.4f}, mean '
                  f'{row["img_meandiff"]:.5f} (images in [-1, 1]); D logit max |diff| {row["logit_maxdiff"]:.4f}')
    print(f'wall time {time.time() - start:.1f} s; load average at end: '
          + ', '.join(f'{v:.2f}' for v in os.getloadavg()))
    if args.out:
        # Imported here: a worker runs this file inside another tree, where our benchmarks package must not load.
        from benchmarks.common.report import write_json  # pylint: disable=import-outside-toplevel
        write_json(args.out, dict(command=' '.join(sys.argv), repeats=args.repeats, cycles=args.cycles,
                                   gradfix=args.gradfix, load_average=os.getloadavg(), results=best))
    return 0


if __name__ == '__main__':
    sys.exit(main())
