"""P1: time the custom ops, CUDA kernel vs reference, side by side in one run.

    python -m benchmarks.ops [--device cuda|cpu] [--repeats 20] [--out results/ops.json]

For `bias_act` and `upfirdn2d` at the shapes the cifar (32 px, 512 channels) and 256-px configs
use, fp32 and fp16, forward and forward+backward: median milliseconds of the CUDA kernel and of
the reference on the same inputs, their ratio, and the largest absolute difference of the
outputs. Without CUDA only the reference is timed, and the output says so.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import os
import platform
import statistics
import sys
import time

import torch

from benchmarks.common.report import write_json
from torch_utils.ops import bias_act, upfirdn2d

# (label, N, C, H, W): activations of a G/D block at the resolutions the presets train.
CASES = [
    ('cifar-b32', 16, 512, 32, 32),
    ('paper256-b64', 8, 256, 64, 64),
    ('paper256-b256', 4, 64, 256, 256),
]


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _median_ms(fn, device, repeats):
    fn()  # warm-up: builds the plugin, fills caches
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _op_calls(op, x, b, f):
    """Return {impl: callable(x) -> output} for one op."""
    if op == 'bias_act':
        return {impl: (lambda x, impl=impl: bias_act.bias_act(x, b, act='lrelu', clamp=256, impl=impl))
                for impl in ('cuda', 'ref')}
    return {impl: (lambda x, impl=impl: upfirdn2d.upsample2d(x, f, up=2, impl=impl)) for impl in ('cuda', 'ref')}


def _time_case(op, shape, dtype, device, repeats, with_backward):
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn([n, c, h, w], generator=gen).to(device=device, dtype=dtype)
    b = torch.randn([c], generator=gen).to(device=device, dtype=dtype)
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    calls = _op_calls(op, x0, b, f)
    impls = ['cuda', 'ref'] if device.type == 'cuda' else ['ref']
    row, outputs = {}, {}
    for impl in impls:
        def run(impl=impl):
            x = x0.detach().requires_grad_(with_backward)
            y = calls[impl](x)
            if with_backward:
                y.square().sum().backward()
            return y
        row[f'{impl}_ms'] = _median_ms(run, device, repeats)
        outputs[impl] = run().detach().float()
    if 'cuda' in outputs:
        row['speedup'] = row['ref_ms'] / max(row['cuda_ms'], 1e-9)
        row['max_abs_diff'] = (outputs['cuda'] - outputs['ref']).abs().max().item()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--quick', action='store_true', help='first case only, 3 repeats')
    parser.add_argument('--out', default='results/ops.json')
    args = parser.parse_args()
    device = torch.device(args.device)
    cases = CASES[:1] if args.quick else CASES
    repeats = 3 if args.quick else args.repeats
    dtypes = [torch.float32, torch.float16] if device.type == 'cuda' else [torch.float32]

    print('command:', ' '.join([os.path.basename(sys.executable)] + sys.argv))
    print(f'torch {torch.__version__}, python {platform.python_version()}, device {device}')
    if device.type != 'cuda':
        print('No CUDA device: timing the reference implementation alone (fp32; fp16 on CPU is not representative).')
    results, t0 = [], time.time()
    for op in ['bias_act', 'upfirdn2d']:
        for label, *shape in cases:
            for dtype in dtypes:
                for with_backward in [False, True]:
                    row = dict(op=op, case=label, shape=shape, dtype=str(dtype).replace('torch.', ''),
                               pass_='fwd+bwd' if with_backward else 'fwd')
                    row.update(_time_case(op, shape, dtype, device, repeats, with_backward))
                    results.append(row)
                    extra = f"  cuda {row['cuda_ms']:8.3f} ms  x{row['speedup']:5.1f}  maxdiff {row['max_abs_diff']:.2e}" \
                        if 'cuda_ms' in row else ''
                    print(f"{op:10s} {label:14s} {row['dtype']:8s} {row['pass_']:8s} ref {row['ref_ms']:9.3f} ms{extra}")
    summary = dict(command=' '.join(sys.argv), torch=torch.__version__, device=str(device),
                   wall_time_sec=time.time() - t0, results=results,
                   goal='on a GPU: CUDA >= 3x the reference, fp32 differences <= 1e-5')
    write_json(args.out, summary)
    print(f'wall time {summary["wall_time_sec"]:.1f} s; results in {args.out}')


if __name__ == '__main__':
    main()
