"""Run the same train.py command in two source trees and compare the snapshots bit for bit.

Used to show that a refactoring changed no numbers:

    python scripts/compare_snapshots.py --before=/tmp/base --after=. --data=/tmp/digits16 \
        -- --cfg=dcgan --loss=clr --nimg=64 --snap=1 --batch=16 --metrics=none --device=cpu --workers=1

Each tree trains in its own subprocess (cwd and PYTHONPATH set to that tree, one thread), then
dumps every tensor of the last network snapshot (G, D, G_ema, extra networks, augment pipe) and of
its training state (optimizer moments) into a .pt file; the two dumps are compared tensor by
tensor. Prints one line per differing tensor and a summary; exits 1 when anything differs.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch

_DUMP = r'''
import glob, os, pickle, sys, torch
run = sorted(glob.glob(os.path.join(sys.argv[1], '*', '')))[-1]
pkl = sorted(glob.glob(os.path.join(run, 'network-snapshot-*.pkl')))[-1]
with open(pkl, 'rb') as f:
    data = pickle.load(f)
flat = {}
for key, value in data.items():
    if isinstance(value, torch.nn.Module):
        for name, tensor in value.state_dict().items():
            flat[f'{key}.{name}'] = tensor.detach().cpu()
states = sorted(glob.glob(os.path.join(run, 'training-state-*')))
if states:
    state = torch.load(states[-1], map_location='cpu', weights_only=False)
    for opt_key, opt_state in sorted(state.get('optimizers', {}).items()):
        for pid, moments in sorted(opt_state.get('state', {}).items()):
            for name, tensor in moments.items():
                if torch.is_tensor(tensor):
                    flat[f'opt.{opt_key}.{pid}.{name}'] = tensor.detach().cpu()
torch.save(flat, sys.argv[2])
print(f'{len(flat)} tensors from {pkl}')
'''


def _run_tree(tree, outdir, data, train_args, dump_path):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    cmd = [sys.executable, 'train.py', f'--outdir={outdir}', f'--data={data}', *train_args]
    print(f'[{tree}] {" ".join(cmd)}', flush=True)
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, '-c', _DUMP, outdir, dump_path], cwd=tree, env=env, check=True)


def compare(before, after):
    """Names of tensors that differ (or exist on one side only) between two dumps, with max |diff|."""
    problems = []
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            problems.append(f'{name}: only in {"after" if name in after else "before"}')
        elif before[name].shape != after[name].shape or not torch.equal(before[name], after[name]):
            diff = (before[name].double() - after[name].double()).abs().max().item() \
                if before[name].shape == after[name].shape else float('nan')
            problems.append(f'{name}: differs (max |diff| {diff:.3g})')
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--before', required=True, help='source tree of the reference run')
    parser.add_argument('--after', default='.', help='source tree to check (default: this one)')
    parser.add_argument('--data', required=True, help='--data of both runs (absolute path)')
    parser.add_argument('train_args', nargs=argparse.REMAINDER, help='train.py options after --')
    args = parser.parse_args()
    train_args = [a for a in args.train_args if a != '--']
    with tempfile.TemporaryDirectory(prefix='compare-snapshots-') as tmp:
        dumps = {}
        for label, tree in (('before', args.before), ('after', args.after)):
            dumps[label] = os.path.join(tmp, f'{label}.pt')
            _run_tree(tree, os.path.join(tmp, label), os.path.abspath(args.data), train_args, dumps[label])
        before, after = (torch.load(dumps[k], weights_only=True) for k in ('before', 'after'))
    problems = compare(before, after)
    for line in problems:
        print(line)
    print(f'{len(before)} tensors compared: ' + ('identical, bit for bit' if not problems else f'{len(problems)} differ'))
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
