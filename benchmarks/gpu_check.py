"""GPU acceptance check: one command that proves the CUDA side of the project on a lent GPU.

    bash benchmarks/gpu_check.sh [OUT_DIR]            # on a GPU machine, <= 8 minutes
    python benchmarks/gpu_check.py --out OUT_DIR [--smoke]

Steps, each timed and recorded in OUT_DIR/gpu_check.json (written after every step, so a
killed run still leaves what it measured):

1. build: compile the `bias_act` and `upfirdn2d` plugins (`python -m stylegan_plus.cli.check_cuda_build`);
2. cuda_tests: the tests marked `cuda` (kernel vs reference, fp32/fp16, forward/backward);
3. ops: benchmarks/ops.py, kernel vs reference speed ratio and max difference at the cifar and
   256-px shapes;
4. train: a short `--cfg=paper256` run on a synthetic 256-px data set: sec/kimg of the last tick
   and peak GPU memory, read from the run's stats.jsonl.

`--smoke` runs the CPU-safe parts at toy size (the test suite uses it): the build and the CUDA
tests are recorded as skipped when torch has no CUDA, ops.py runs its quick CPU pass, and the
training step trains a 32-px paper256-shaped network for a few images on the CPU.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_step(name, argv, log_dir, timeout, env=None):
    """Run one subprocess step; return a dict with its status, exit code, wall time and log path."""
    log_path = os.path.join(log_dir, f'{name}.log')
    start = time.time()
    with open(log_path, 'w') as log:
        try:
            proc = subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                  env=dict(os.environ, **(env or {})))
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = 'timeout'
    status = 'ok' if code == 0 else 'failed'
    print(f'[{name}] {status} (exit {code}) in {time.time() - start:.1f} s; log {log_path}', flush=True)
    return dict(status=status, exit_code=code, wall_sec=round(time.time() - start, 2), log=log_path,
                command=' '.join(argv))


def _write_synthetic_dataset(folder, resolution, count):
    """Write `count` smooth random RGB PNGs of `resolution` px (a stand-in data set; speed only)."""
    import numpy as np
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((resolution, resolution), Image.BICUBIC)
        image.save(os.path.join(folder, f'img{index:04d}.png'))
    return folder


def _last_tick_stats(run_root):
    """Return (sec_per_kimg, peak_gpu_mem_gb, run_dir) from the newest run's stats.jsonl."""
    runs = sorted(d for d in os.listdir(run_root) if os.path.isdir(os.path.join(run_root, d)))
    if not runs:
        return None, None, None
    run_dir = os.path.join(run_root, runs[-1])
    stats_path = os.path.join(run_dir, 'stats.jsonl')
    if not os.path.isfile(stats_path):
        return None, None, run_dir
    with open(stats_path) as fh:
        ticks = [json.loads(line) for line in fh if line.strip()]
    if not ticks:
        return None, None, run_dir
    last = ticks[-1]
    mean = lambda key: last.get(key, {}).get('mean')  # noqa: E731
    return mean('Timing/sec_per_kimg'), max(t.get('Resources/peak_gpu_mem_gb', {}).get('mean', 0) for t in ticks), run_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/gpu_check', help='folder for gpu_check.json and logs')
    parser.add_argument('--smoke', action='store_true', help='CPU-safe parts at toy size (for the test suite)')
    parser.add_argument('--train-kimg', type=float, default=1.0, help='length of the paper256 timing run')
    args = parser.parse_args()

    import torch
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    has_cuda = torch.cuda.is_available()
    report = dict(command=' '.join([os.path.basename(sys.executable)] + sys.argv), torch=torch.__version__,
                  cuda_available=has_cuda, gpu=torch.cuda.get_device_name(0) if has_cuda else None,
                  smoke=args.smoke, steps={})
    json_path = os.path.join(out, 'gpu_check.json')

    def save():
        tmp = json_path + '.tmp'
        with open(tmp, 'w') as fh:
            json.dump(report, fh, indent=2)
        os.replace(tmp, json_path)

    py = sys.executable
    ext_dir = os.environ.get('TORCH_EXTENSIONS_DIR', os.path.join(out, 'torch_extensions'))
    env = dict(TORCH_EXTENSIONS_DIR=ext_dir, PYTHONPATH=REPO)
    started = time.time()

    # 1-2: kernels build and CUDA tests (meaningless without a CUDA torch: recorded as skipped).
    if has_cuda:
        report['steps']['build'] = _run_step('build', [py, '-m', 'stylegan_plus.cli.check_cuda_build', '--verbose'],
                                             out, 420, env)
        save()
        report['steps']['cuda_tests'] = _run_step(
            'cuda_tests', [py, '-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider', 'tests'], out, 420, env)
    else:
        report['steps']['build'] = dict(status='skipped', reason='torch has no CUDA')
        report['steps']['cuda_tests'] = dict(status='skipped', reason='torch has no CUDA')
    save()

    # 3: kernel vs reference timings.
    ops_json = os.path.join(out, 'ops.json')
    ops_argv = [py, 'benchmarks/ops.py', '--out', ops_json] + (['--quick', '--device', 'cpu'] if args.smoke or not has_cuda else [])
    report['steps']['ops'] = _run_step('ops', ops_argv, out, 300, env)
    if os.path.isfile(ops_json):
        with open(ops_json) as fh:
            report['steps']['ops']['results'] = json.load(fh)['results']
    save()

    # 4: a short paper256 run (sec/kimg, peak GPU memory).
    resolution, count = (32, 16) if args.smoke else (256, 256)
    data = _write_synthetic_dataset(os.path.join(out, f'data{resolution}'), resolution, count)
    train_argv = [py, 'train.py', f'--outdir={os.path.join(out, "runs")}', f'--data={data}', '--cfg=paper256',
                  '--metrics=none', '--snap=100', '--aug=ada']
    if args.smoke:
        train_argv += ['--device=cpu', '--batch=4', '--cbase=512', '--cmax=32', '--nimg=8', '--kimg-per-tick=0.004']
    else:
        train_argv += [f'--nimg={int(args.train_kimg * 1000)}', f'--kimg-per-tick={args.train_kimg / 4:g}']
    step = _run_step('train', train_argv, out, 420, env)
    step['sec_per_kimg'], step['peak_gpu_mem_gb'], step['run_dir'] = _last_tick_stats(os.path.join(out, 'runs'))
    report['steps']['train'] = step
    report['wall_sec'] = round(time.time() - started, 1)
    save()

    failed = [name for name, s in report['steps'].items() if s['status'] == 'failed']
    print(f'gpu_check: {len(report["steps"]) - len(failed)} of {len(report["steps"])} steps ok or skipped; '
          f'wall {report["wall_sec"]} s; results in {json_path}')
    if step.get('sec_per_kimg') is not None:
        print(f'paper256 run: {step["sec_per_kimg"]:.2f} sec/kimg, peak GPU memory {step["peak_gpu_mem_gb"]:.2f} GB')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
