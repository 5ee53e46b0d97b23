"""CPU speed of the StyleGAN2 networks, this tree against another one (e.g. the code before a rewrite).

    python -m benchmarks.networks_speed --base=/tmp/base            # ~1 min
    python -m benchmarks.networks_speed --base=/tmp/base --repeats=9

Both trees' `stylegan_plus/networks/stylegan2.py` are loaded into one process (sharing this tree's
torch_utils, so only the network code differs), built with the same seed, and timed interleaved
(A B A B ...) so that machine noise hits both alike; the minimum over repeats is reported, both as
wall time and as process CPU time (with one thread the CPU time is the robust number on a machine
shared with other jobs, where wall time also counts waiting for a core).
(a) generator forward: 32 px, channel_base 4096, channel_max 128, z/w 128, batch 8, eval mode.
(b) one training step: G forward + D forward + backward for G's loss, then D on fakes and reals
    + backward for D's loss (non-saturating logistic), train mode, fp32.
Prints the command, the configuration, the times and the ratio base/this (> 1 = this tree faster),
and the max abs difference between the two trees' outputs (same weights, same inputs).
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import importlib.util
import os
import sys
import time

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_PATH = os.path.join('stylegan_plus', 'networks', 'stylegan2.py')

G_KWARGS = dict(z_dim=128, c_dim=0, w_dim=128, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
                synthesis_kwargs=dict(channel_base=4096, channel_max=128))
D_KWARGS = dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=4096, channel_max=128,
                epilogue_kwargs=dict(mbstd_group_size=4))


def load_networks(tree, alias):
    """Import `<tree>/stylegan_plus/networks/stylegan2.py` as module `alias`."""
    path = os.path.join(tree, MODULE_PATH)
    spec = importlib.util.spec_from_file_location(alias, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module  # persistent_class looks its module up by name
    spec.loader.exec_module(module)
    return module


class Case:
    """Networks and inputs of one tree; `forward()` and `train_step()` are the timed bodies."""

    def __init__(self, nets, batch):
        torch.manual_seed(0)
        self.G = nets.Generator(**G_KWARGS)
        self.D = nets.Discriminator(**D_KWARGS)
        gen = torch.Generator().manual_seed(1)
        self.z = torch.randn([batch, G_KWARGS['z_dim']], generator=gen)
        self.c = torch.zeros([batch, 0])
        self.reals = torch.randn([batch, 3, 32, 32], generator=gen)

    def forward(self):
        self.G.eval()
        with torch.no_grad():
            torch.manual_seed(2)
            return self.G(self.z, self.c)

    def train_step(self):
        softplus = torch.nn.functional.softplus
        self.G.train(), self.D.train()
        for net in (self.G, self.D):
            net.zero_grad(set_to_none=True)
        torch.manual_seed(3)
        fakes = self.G(self.z, self.c)
        softplus(-self.D(fakes, self.c)).mean().backward()
        loss_d = softplus(self.D(fakes.detach(), self.c)).mean() + softplus(-self.D(self.reals, self.c)).mean()
        loss_d.backward()
        return fakes.detach(), loss_d.detach()


def best_times(cases, method, repeats):
    """[(min wall s, min CPU s)] of `method` per case, timed interleaved after one warm-up call each."""
    for case in cases:
        getattr(case, method)()
    best = [[float('inf'), float('inf')] for _ in cases]
    for _ in range(repeats):
        for i, case in enumerate(cases):
            wall, cpu = time.perf_counter(), time.process_time()
            getattr(case, method)()
            best[i][0] = min(best[i][0], time.perf_counter() - wall)
            best[i][1] = min(best[i][1], time.process_time() - cpu)
    return best


def max_difference(cases, method):
    outs = [getattr(case, method)() for case in cases]
    flat = [out if isinstance(out, tuple) else (out,) for out in outs]
    return max(float((a - b).abs().max()) for a, b in zip(*flat))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--base', required=True, help='root of the other tree (e.g. /tmp/base)')
    parser.add_argument('--repeats', type=int, default=5, help='timed calls per case and tree (min is kept)')
    parser.add_argument('--batch', type=int, default=8, help='batch size')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads')
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch < 1 or args.threads < 1:
        parser.error(f'--repeats/--batch/--threads must be >= 1, got {args.repeats}/{args.batch}/{args.threads}')
    if not os.path.isfile(os.path.join(args.base, MODULE_PATH)):
        parser.error(f'--base={args.base}: no {MODULE_PATH} there (expected the root of a checkout)')
    torch.set_num_threads(args.threads)

    print('command:', ' '.join([os.path.basename(sys.executable), *sys.argv]))
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, repeats {args.repeats}')
    print(f'G: {G_KWARGS}\nD: {D_KWARGS}')
    trees = dict(base=os.path.abspath(args.base), this=REPO_ROOT)
    cases = [Case(load_networks(tree, f'_speed_{name}_stylegan2'), args.batch) for name, tree in trees.items()]
    for label, method in (('generator forward', 'forward'), ('training step', 'train_step')):
        base, this = best_times(cases, method, args.repeats)
        diff = max_difference(cases, method)
        for clock, idx in (('wall', 0), ('cpu', 1)):
            print(f'{label:18s} {clock:4s}  base {base[idx] * 1e3:8.1f} ms   this {this[idx] * 1e3:8.1f} ms   '
                  f'ratio base/this {base[idx] / this[idx]:5.2f}x')
        print(f'{label:18s} max|this - base| {diff:.2e}')


if __name__ == '__main__':
    main()
