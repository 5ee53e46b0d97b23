"""P3: the official cifar generator on CPU, run our way (fp32, one notice) vs forced fp16.

    python benchmarks/cpu_precision.py --quick          # < 1 min
    python benchmarks/cpu_precision.py                  # more repeats (~2 min)

The network is our Generator with the official cifar settings and the precision settings a
cifar pickle stores (z_dim = w_dim = 512, 10 classes, 2 mapping layers, channel_base 32768,
channel_max 512, num_fp16_res 4, conv_clamp 256, 32 px RGB), random weights (seed 0).
- ours: the tools' device preparation (`stylegan_plus.tools.device.prepare_generator`, used by
  generate.py, projector.py and calc_metrics.py) rebuilds the fp16 blocks in fp32 on CPU, with
  one notice;
- forced fp16: the same module called as is on CPU, which is what the official tools do: its
  8-32 px blocks compute in float16 on the CPU.
Timed: the whole forward G(z, c) (mapping + synthesis, noise_mode const) at batch 1 for both,
plus ours at batch 16 for throughput: medians of the repeats after one warm-up call, the calls
interleaved; CPU time of this process (robust on a shared machine) and wall time. Compared:
the largest and mean absolute difference of the two outputs at the same z, c, in [-1, 1] units.
Goal (BENCHMARKS.md P3): the official code runs fp16 about 40x slower than fp32 on CPU; ours
>= 20x faster than forced fp16, outputs within fp16 tolerance (here: max |diff| <= 0.05, i.e.
about 6 of 255 levels, and mean |diff| <= 0.005).
"""

import copy
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgcommon import figures, runinfo  # noqa: E402

BENCH_ID = 'cpu_precision'
OFFICIAL_CIFAR = dict(z_dim=512, w_dim=512, c_dim=10, img_resolution=32, img_channels=3,
                      mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
SMOKE_NET = dict(OFFICIAL_CIFAR, synthesis_kwargs=dict(channel_base=1024, channel_max=32, num_fp16_res=4,
                                                       conv_clamp=256))
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


def build_generator(net_kwargs, seed=0):
    from training.networks import Generator  # pylint: disable=import-outside-toplevel
    torch.manual_seed(seed)
    return Generator(**copy.deepcopy(net_kwargs)).eval().requires_grad_(False)


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


def main(argv=None):
    args = runinfo.base_parser(BENCH_ID, __doc__).parse_args(argv)
    proto = PROTOCOLS[runinfo.mode_of(args)]
    run = runinfo.BenchmarkRun(BENCH_ID, 'official cifar G on CPU: ours (fp32) vs forced fp16', args, [0])
    run.setting(network=proto['net'], repeats_fp32=proto['repeats_fp32'], repeats_fp16=proto['repeats_fp16'],
                batch=proto['batch'], tolerance=TOLERANCE, weights='random (torch seed 0)')
    from stylegan_plus.tools import device as devices  # pylint: disable=import-outside-toplevel
    G16 = build_generator(proto['net'])
    notices = []
    G32 = devices.prepare_generator(copy.deepcopy(G16), torch.device('cpu'), log=notices.append)
    for line in notices:
        print(line)
    z1, c1 = inputs(1, G16, seed=0)
    zb, cb = inputs(proto['batch'], G16, seed=1)
    with torch.no_grad():
        timed = interleaved_medians({
            'ours_1': (lambda: G32(z1, c1, noise_mode='const'), None),
            'fp16_1': (lambda: G16(z1, c1, noise_mode='const'), proto['repeats_fp16']),
            'ours_b': (lambda: G32(zb, cb, noise_mode='const'), None)}, proto['repeats_fp32'])
    (ours_wall, ours_1), (fp16_wall, fp16_1), (_, ours_b) = timed['ours_1'], timed['fp16_1'], timed['ours_b']
    print(f'ours (fp32): {ours_1 * 1e3:.1f} ms CPU ({ours_wall * 1e3:.1f} ms wall) at batch 1; '
          f'{proto["batch"] / ours_b:.1f} images/s at batch {proto["batch"]}')
    print(f'forced fp16: {fp16_1 * 1e3:.1f} ms CPU ({fp16_wall * 1e3:.1f} ms wall) at batch 1', flush=True)
    max_abs, mean_abs = compare_outputs(G16, G32, proto['samples'])
    dtypes = dict(forced_fp16=block_dtypes(G16, z1, c1), ours=block_dtypes(G32, z1, c1))
    print(f'block output dtypes: {dtypes}')
    speedup = fp16_1 / ours_1
    within = max_abs <= TOLERANCE['max_abs'] and mean_abs <= TOLERANCE['mean_abs']
    run.result(ours_fp32_ms_batch1=ours_1 * 1e3, forced_fp16_ms_batch1=fp16_1 * 1e3, speedup_vs_forced_fp16=speedup,
               wall_ms_batch1=dict(ours_fp32=ours_wall * 1e3, forced_fp16=fp16_wall * 1e3),
               wall_speedup_vs_forced_fp16=fp16_wall / ours_wall,
               ours_fp32_images_per_s=proto['batch'] / ours_b, max_abs_diff=max_abs, mean_abs_diff=mean_abs,
               block_dtypes=dtypes, notices=notices, within_tolerance=within)
    run.compare('CPU forward time, ours (fp32 automatically) vs forced fp16', 'official: fp16 on CPU ~40x slower than fp32',
                f'{speedup:.1f}x faster ({ours_1 * 1e3:.1f} vs {fp16_1 * 1e3:.1f} ms CPU per image at batch 1; '
                f'wall {fp16_wall / ours_wall:.1f}x); '
                f'max |diff| {max_abs:.4f}, mean |diff| {mean_abs:.5f}',
                f'>= {GOAL_SPEEDUP}x faster, within fp16 tolerance', bool(speedup >= GOAL_SPEEDUP and within))
    run.figure(figures.bar_plot(run.path('cpu_precision.png'), ['ours fp32', 'forced fp16'],
                                [ours_1 * 1e3, fp16_1 * 1e3], title='P3: official cifar G forward on CPU, batch 1',
                                ylabel='CPU ms per image'))
    run.compare('one notice when the fp16 blocks are switched to fp32', 'n/a (official: silent fp16 on CPU)',
                f'{len(notices)} notice(s)', 'exactly one', len(notices) == 1)
    run.finish()


if __name__ == '__main__':
    main()
