"""P3: the official cifar generator on CPU, run our way (fp32, one notice) vs forced fp16.

    python benchmarks/cpu_precision.py --quick          # < 1 min
    python benchmarks/cpu_precision.py                  # more repeats (~2 min)

The network is our Generator with the official cifar settings and the precision settings a
cifar pickle stores (z_dim = w_dim = 512, 10 classes, 2 mapping layers, channel_base 32768,
channel_max 512, num_fp16_res 4, conv_clamp 256, 32 px RGB), random weights (seed 0).
- ours: the tools' device preparation (`stylegan_plus.networks.inference.prepare_generator`, used by
  generate.py, projector.py and calc_metrics.py) rebuilds the fp16 blocks in fp32 on CPU, with
  one notice;
- forced fp16: the same module called as is on CPU, which is what the official tools do: its
  8-32 px blocks compute in float16 on the CPU.
Timed: the whole forward G(z, c) (mapping + synthesis, noise_mode const) at batch 1 for both,
plus ours at batch 16 for throughput: medians of the repeats after one warm-up call, the calls
interleaved; CPU time of this process (robust on a shared machine) and wall time. Compared:
the largest and mean absolute difference of the two outputs at the same z, c, in [-1, 1] units.
Goal (docs/benchmarks.md P3): the official code runs fp16 about 40x slower than fp32 on CPU; ours
>= 20x faster than forced fp16, outputs within fp16 tolerance (here: max |diff| <= 0.05, i.e.
about 6 of 255 levels, and mean |diff| <= 0.005).
This CPU may have native half-precision units (AVX512-FP16, AMX: see `versions` in results.json),
which make forced fp16 only a little slower than fp32. So the timing is repeated in a child
process with ONEDNN_MAX_CPU_ISA=AVX2, i.e. as on a CPU without them, and both are reported.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.common import figures, report as runinfo_report
from benchmarks.common.official_cifar import OFFICIAL_CIFAR, SMOKE_NET, build_generator

BENCH_ID = 'cpu_precision'
TOLERANCE = dict(max_abs=0.05, mean_abs=0.005)
GOAL_SPEEDUP = 20
PROTOCOLS = {
    'full': dict(net=OFFICIAL_CIFAR, repeats_fp32=15, repeats_fp16=7, batch=16, samples=4),
    'quick': dict(net=OFFICIAL_CIFAR, repeats_fp32=5, repeats_fp16=3, batch=16, samples=2),
    'smoke': dict(net=SMOKE_NET, repeats_fp32=1, repeats_fp16=1, batch=2, samples=1),
}


def interleaved_medians(fns, repeats):
    """{name: (median wall s, median CPU s)} of each fn(), calls interleaved round by round.

    fns: {name: (callable, repeats or None)}; each fn is warmed up once first. Interleaving
    spreads any drift of the machine's load over all of them alike; CPU time (this process's,
    `time.process_time`) hardly moves when other processes compete for the cores, wall time does.
    """
    timings = {name: ([], []) for name in fns}
    for fn, _count in fns.values():
        fn()
    for round_idx in range(max(count or repeats for _fn, count in fns.values())):
        for name, (fn, count) in fns.items():
            if round_idx >= (count or repeats):
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            timings[name][0].append(time.perf_counter() - wall)
            timings[name][1].append(time.process_time() - cpu)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in timings.items()}


def inputs(count, G, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([count, G.z_dim], generator=gen)
    c = torch.nn.functional.one_hot(torch.randint(0, G.c_dim, [count], generator=gen), G.c_dim).float()
    return z, c


def block_dtypes(G, z, c):
    """{block name: dtype of its feature output} in one call of G: shows which blocks really ran in fp16."""
    seen, hooks = {}, []
    for name, block in G.synthesis.named_children():
        hooks.append(block.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, str((out[0] if isinstance(out, tuple) else out).dtype))))
    try:
        with torch.no_grad():
            G(z, c, noise_mode='const')
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@torch.no_grad()
def compare_outputs(G16, G32, samples):
    """Largest and mean |G16(z, c) - G32(z, c)| over `samples` single-image calls."""
    max_abs, mean_abs = 0.0, 0.0
    for i in range(samples):
        z, c = inputs(1, G16, seed=100 + i)
        diff = (G16(z, c, noise_mode='const').float() - G32(z, c, noise_mode='const')).abs()
        max_abs = max(max_abs, float(diff.max()))
        mean_abs += float(diff.mean()) / samples
    return max_abs, mean_abs


def build_pair(net_kwargs):
    """(G16 as built, G32 prepared by the tools, the notices the preparation printed)."""
    from stylegan_plus.networks import inference  # pylint: disable=import-outside-toplevel
    G16 = build_generator(net_kwargs)
    notices = []
    G32 = inference.prepare_generator(copy.deepcopy(G16), torch.device('cpu'), log=notices.append)
    return G16, G32, notices


def time_pair(G16, G32, proto, repeats_fp16):
    """Interleaved timings: dict(ours_ms, fp16_ms (CPU, batch 1), ours_wall_ms, fp16_wall_ms, ours_images_per_s)."""
    z1, c1 = inputs(1, G16, seed=0)
    zb, cb = inputs(proto['batch'], G16, seed=1)
    with torch.no_grad():
        timed = interleaved_medians({
            'ours_1': (lambda: G32(z1, c1, noise_mode='const'), None),
            'fp16_1': (lambda: G16(z1, c1, noise_mode='const'), repeats_fp16),
            'ours_b': (lambda: G32(zb, cb, noise_mode='const'), None)}, proto['repeats_fp32'])
    return dict(ours_ms=timed['ours_1'][1] * 1e3, fp16_ms=timed['fp16_1'][1] * 1e3,
                ours_wall_ms=timed['ours_1'][0] * 1e3, fp16_wall_ms=timed['fp16_1'][0] * 1e3,
                ours_images_per_s=proto['batch'] / timed['ours_b'][1])


def time_without_fp16_units(run, mode):
    """The same timings in a child process whose oneDNN may use AVX2 at most (no AVX512-FP16/AMX).

    ONEDNN_MAX_CPU_ISA=AVX2 makes this CPU compute like one without native half-precision units,
    which is where the official tools' fp16-on-CPU is tens of times slower. Returns the dict of
    `time_pair`, or None if the child fails.
    """
    out = run.path('avx2_timings.json')
    argv = [sys.executable, os.path.abspath(__file__), f'--out={run.out}', f'--threads={run.threads}',
            f'--timings-only={out}'] + ([f'--{mode}'] if mode != 'full' else [])
    run.command(argv)
    print('timing again with ONEDNN_MAX_CPU_ISA=AVX2 (as a CPU without fp16 units; slow on the fp16 side) ...',
          flush=True)
    proc = subprocess.run(argv, env=dict(os.environ, ONEDNN_MAX_CPU_ISA='AVX2'), capture_output=True, text=True)
    if proc.returncode != 0:
        print(f'the AVX2-limited child failed: {proc.stderr[-800:]}')
        return None
    with open(out) as f:
        return json.load(f)


def report(run, label, timings, within, max_abs, mean_abs):
    speedup = timings['fp16_ms'] / timings['ours_ms']
    run.compare(f'CPU forward time, ours (fp32 automatically) vs forced fp16 -- {label}',
                'official: fp16 on CPU ~40x slower than fp32',
                f'{speedup:.1f}x faster ({timings["ours_ms"]:.1f} vs {timings["fp16_ms"]:.1f} ms CPU per image at '
                f'batch 1; wall {timings["fp16_wall_ms"] / timings["ours_wall_ms"]:.1f}x); '
                f'max |diff| {max_abs:.4f}, mean |diff| {mean_abs:.5f}',
                f'>= {GOAL_SPEEDUP}x faster, within fp16 tolerance', bool(speedup >= GOAL_SPEEDUP and within))
    return speedup


def parse_args(argv):
    parser = runinfo_report.make_parser(__doc__, BENCH_ID)
    parser.add_argument('--timings-only', metavar='JSON', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    return runinfo_report.benchmark_main(argv, parse_args, run_benchmark)


def run_benchmark(args, argv):
    proto = PROTOCOLS[runinfo_report.mode_name(args)]
    if args.timings_only:     # child of time_without_fp16_units: fp16 once (it can take ~20 s a call)
        G16, G32, _notices = build_pair(proto['net'])
        with open(args.timings_only, 'wt') as f:
            json.dump(time_pair(G16, G32, proto, repeats_fp16=1), f)
        return
    run = runinfo_report.Report(BENCH_ID, 'official cifar G on CPU: ours (fp32) vs forced fp16', args, [0],
                                script=__file__, argv=argv, layout='image')
    run.setting(network=proto['net'], repeats_fp32=proto['repeats_fp32'], repeats_fp16=proto['repeats_fp16'],
                batch=proto['batch'], tolerance=TOLERANCE, weights='random (torch seed 0)')
    G16, G32, notices = build_pair(proto['net'])
    for line in notices:
        print(line)
    native = time_pair(G16, G32, proto, proto['repeats_fp16'])
    print(f'this CPU: ours (fp32) {native["ours_ms"]:.1f} ms CPU, forced fp16 {native["fp16_ms"]:.1f} ms CPU '
          f'(batch 1); ours {native["ours_images_per_s"]:.1f} images/s at batch {proto["batch"]}', flush=True)
    max_abs, mean_abs = compare_outputs(G16, G32, proto['samples'])
    z1, c1 = inputs(1, G16, seed=0)
    dtypes = dict(forced_fp16=block_dtypes(G16, z1, c1), ours=block_dtypes(G32, z1, c1))
    print(f'block output dtypes: {dtypes}')
    within = max_abs <= TOLERANCE['max_abs'] and mean_abs <= TOLERANCE['mean_abs']
    avx2 = time_without_fp16_units(run, run.mode)
    run.result(native=native, avx2_limited=avx2, max_abs_diff=max_abs, mean_abs_diff=mean_abs, block_dtypes=dtypes,
               notices=notices, within_tolerance=within)
    flags = run.data['versions'].get('cpu_half_precision_flags') or []
    label = 'this CPU (native AVX512-FP16/AMX)' if {'avx512_fp16', 'amx_tile'} & set(flags) else 'this CPU'
    speedups = dict(native=report(run, label, native, within, max_abs, mean_abs))
    if avx2 is not None:
        speedups['avx2_limited'] = report(run, 'same CPU limited to AVX2 (no fp16 units)', avx2, within,
                                          max_abs, mean_abs)
    run.result(speedup_vs_forced_fp16=speedups)
    labels, values = ['fp32 native', 'fp16 native'], [native['ours_ms'], native['fp16_ms']]
    if avx2 is not None:
        labels, values = labels + ['fp32 AVX2', 'fp16 AVX2'], values + [avx2['ours_ms'], avx2['fp16_ms']]
    run.figure(figures.bar_plot(run.path('cpu_precision.png'), labels, values,
                                title='P3: official cifar G forward on CPU, batch 1 (ms CPU per image)',
                                ylabel='ms'))
    run.compare('one notice when the fp16 blocks are switched to fp32', 'n/a (official: silent fp16 on CPU)',
                f'{len(notices)} notice(s)', 'exactly one', len(notices) == 1)
    run.finish()


if __name__ == '__main__':
    main()
