"""Compile every CUDA plugin of `torch_utils.ops` and check that it loads (developer tool).

Needs a CUDA build of torch, nvcc and ninja, but no GPU: each op's own `_init()` builds its plugin
exactly as a first CUDA call would. Not part of the test suite and never run in CI (minutes of
compilation). Example:

    CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST="8.0;9.0" TORCH_EXTENSIONS_DIR=/tmp/ext_build \\
        PYTHONPATH=. python tools/check_cuda_build.py [--ops bias_act,upfirdn2d] [--verbose]

Prints one OK/FAILED/SKIPPED line per op; exits with 1 when any build fails, 2 when torch has no CUDA.
"""

import argparse
import importlib
import importlib.util
import os
import sys
import time
import warnings

# Op module under torch_utils.ops -> function its plugin must export.
PLUGIN_OPS = {'bias_act': 'bias_act', 'upfirdn2d': 'upfirdn2d'}

#----------------------------------------------------------------------------

def check_op(op_name, exported):
    """Build one op's plugin; return (status, detail) with status 'OK', 'FAILED' or 'SKIPPED'."""
    module_path = f'torch_utils.ops.{op_name}'
    if importlib.util.find_spec(module_path) is None:
        return 'SKIPPED', f'{module_path} does not exist yet'
    try:
        op = importlib.import_module(module_path)
    except Exception as err:
        return 'FAILED', f'import {module_path}: {type(err).__name__}: {err}'
    if not callable(getattr(op, '_init', None)):
        return 'FAILED', f'{module_path} has no _init() to build its plugin'
    start = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        built = op._init()
    seconds = time.time() - start
    if not built:
        reasons = '\n'.join(str(w.message) for w in caught) or '_init() returned False without a warning'
        return 'FAILED', f'build failed after {seconds:.0f} s:\n{reasons}'
    plugin = getattr(op, '_plugin', None)
    if not callable(getattr(plugin, exported, None)):
        return 'FAILED', f'the plugin loaded but does not export {exported}()'
    return 'OK', f'{getattr(plugin, "__file__", plugin)} exports {exported}() ({seconds:.0f} s)'

def main():
    parser = argparse.ArgumentParser(description='Build and load the CUDA plugins of torch_utils.ops.')
    parser.add_argument('--ops', default=','.join(PLUGIN_OPS),
                        help=f'comma-separated ops to build (default: {",".join(PLUGIN_OPS)})')
    parser.add_argument('--verbose', action='store_true', help="show torch's full build log")
    args = parser.parse_args()
    ops = [name.strip() for name in args.ops.split(',') if name.strip()]
    unknown = [name for name in ops if name not in PLUGIN_OPS]
    if unknown:
        parser.error(f'unknown op(s) {", ".join(unknown)}; choose from {", ".join(PLUGIN_OPS)}')

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import torch
    from torch_utils import custom_ops
    if torch.version.cuda is None:
        print(f'torch {torch.__version__} is a CPU-only build: the CUDA plugins cannot be built with it.')
        return 2
    custom_ops.verbosity = 'full' if args.verbose else 'brief'
    print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), CUDA_HOME={os.environ.get("CUDA_HOME")}, '
          f'TORCH_CUDA_ARCH_LIST={os.environ.get("TORCH_CUDA_ARCH_LIST")}, '
          f'TORCH_EXTENSIONS_DIR={os.environ.get("TORCH_EXTENSIONS_DIR")}')

    results = {name: check_op(name, PLUGIN_OPS[name]) for name in ops}
    print('\nSummary:')
    for name, (status, detail) in results.items():
        print(f'  {name:<10} {status:<8} {detail}')
    return 1 if any(status == 'FAILED' for status, _ in results.values()) else 0

if __name__ == '__main__':
    sys.exit(main())
