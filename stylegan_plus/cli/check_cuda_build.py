"""Compile every CUDA plugin of `torch_utils.ops` and check that it loads (developer tool).

Needs a CUDA build of torch, nvcc and ninja, but no GPU: each op's own `_init()` builds its plugin
exactly as a first CUDA call would. Not part of the test suite (minutes of compilation). Run from
the repository root, or anywhere once the package is installed:

    CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST="8.0;9.0" TORCH_EXTENSIONS_DIR=/tmp/ext_build \\
        python -m stylegan_plus.cli.check_cuda_build [--ops bias_act,upfirdn2d] [--verbose]

Prints one OK/FAILED line per op; exits with 1 when any build fails, 2 when torch has no CUDA.
"""

import argparse
import os
import sys
import time
import warnings

import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act, upfirdn2d

# Op name -> (its module, the function its compiled plugin must export).
PLUGIN_OPS = {'bias_act': (bias_act, 'bias_act'), 'upfirdn2d': (upfirdn2d, 'upfirdn2d')}


def build_op(module, exported):
    """Build one op's plugin through its `_init()`; (status 'OK' or 'FAILED', one-line detail)."""
    started = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        built = module._init()  # pylint: disable=protected-access
    seconds = time.time() - started
    if not built:
        why = '\n'.join(str(w.message) for w in caught) or '_init() returned False without a warning'
        return 'FAILED', f'build failed after {seconds:.0f} s:\n{why}'
    plugin = getattr(module, '_plugin', None)
    if not callable(getattr(plugin, exported, None)):
        return 'FAILED', f'the plugin loaded but does not export {exported}()'
    return 'OK', f'{getattr(plugin, "__file__", plugin)} exports {exported}() ({seconds:.0f} s)'


def _parse_args(argv):
    parser = argparse.ArgumentParser(description='Build and load the CUDA plugins of torch_utils.ops.')
    parser.add_argument('--ops', default=','.join(PLUGIN_OPS),
                        help=f'comma-separated ops to build (default: {",".join(PLUGIN_OPS)})')
    parser.add_argument('--verbose', action='store_true', help="show torch's full build log")
    args = parser.parse_args(argv)
    args.ops = [name.strip() for name in args.ops.split(',') if name.strip()]
    unknown = [name for name in args.ops if name not in PLUGIN_OPS]
    if unknown:
        parser.error(f'unknown op(s) {", ".join(unknown)}; choose from {", ".join(PLUGIN_OPS)}')
    return args


def main(argv=None):
    """Build the chosen plugins and print a summary; returns the exit status (0, 1 or 2)."""
    args = _parse_args(argv)
    if torch.version.cuda is None:
        print(f'torch {torch.__version__} is a CPU-only build: the CUDA plugins cannot be built with it.')
        return 2
    custom_ops.verbosity = 'full' if args.verbose else 'brief'
    settings = ', '.join(f'{key}={os.environ.get(key)}' for key in
                         ('CUDA_HOME', 'TORCH_CUDA_ARCH_LIST', 'TORCH_EXTENSIONS_DIR'))
    print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), {settings}')
    results = {name: build_op(*PLUGIN_OPS[name]) for name in args.ops}
    print('\nSummary:')
    for name, (status, detail) in results.items():
        print(f'  {name:<10} {status:<8} {detail}')
    return 1 if any(status == 'FAILED' for status, _ in results.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
