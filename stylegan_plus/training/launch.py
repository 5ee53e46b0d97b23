"""From final options to running training processes (called by train.py).

Three shapes of run, one code path per process (`_train_rank`):

- `--gpus=1`: training runs inside the calling process;
- `--gpus=N`: `torch.multiprocessing.spawn` starts N processes, which find each other through a
  rendezvous file in a private temporary folder;
- torchrun (one or several nodes): this process already is one rank; the group forms through
  `env://`, rank 0 creates the run folder and broadcasts its name to the others.

Whatever a process prints is also appended to `<run_dir>/log.txt`. Every process gets the
`TrainingOptions` and the metrics callable (`metrics_fn`, a module-level function of the metrics
layer, so it pickles for spawned processes) and calls `training_loop(**options.loop_kwargs())`.
"""

import contextlib
import json
import os
import tempfile

import torch

import dnnlib

from . import distributed, setup
from . import training_loop as training_loop_lib
from stylegan_plus.data.datasets import DatasetError
from .run_dirs import create_run_dir
from stylegan_plus.io import atomic


def print_options(options):
    """Show the options as training_options.json has them, then a one-line-per-fact summary,
    framed by blank lines. options: TrainingOptions with `run_dir` set."""
    text = ['', 'Training options:', json.dumps(options.to_json(), indent=2), '', *options.summary_lines(), '']
    print('\n'.join(text))


def _save_options(options):
    """Write training_options.json atomically: the keywords `training_loop` receives (minus rank and
    the callables), with official class names."""
    encoded = json.dumps(options.to_json(), indent=2).encode('utf-8')
    atomic.write_atomic(os.path.join(options.run_dir, 'training_options.json'), lambda f: f.write(encoded))


@contextlib.contextmanager
def _tee_to_run_log(run_dir, rank):
    """Copy stdout/stderr into run_dir/log.txt while the block runs.

    A rank on another node of a torchrun job may not see the run folder (it exists on rank 0's
    file system only); such a rank keeps printing to its console alone.
    """
    if rank != 0 and not os.path.isdir(run_dir):
        yield
        return
    logger = dnnlib.util.Logger(file_name=os.path.join(run_dir, 'log.txt'), file_mode='a', should_flush=True)
    try:
        yield
    finally:
        logger.close()


def _train_rank(rank, options, rendezvous_file, local_world_size=None, metrics_fn=None):
    """Everything one training process does: log, join the group, set per-process state, train.

    rendezvous_file: path of the `--gpus=N` meeting file, or None (single process, or torchrun's env://).
    local_world_size: processes sharing this machine (splits the CPU threads between them).
    metrics_fn: the loop's metrics callable (see training_loop), or None when no metrics are asked for.
    """
    with _tee_to_run_log(options.run_dir, rank):
        try:
            device = setup.resolve_device(options.device or None, rank)
            distributed.init_process_group(device.type, rank, options.num_gpus, init_file=rendezvous_file)
            distributed.init_process_state(device, rank, options.num_gpus, local_world_size)
            training_loop_lib.training_loop(rank=rank, metrics_fn=metrics_fn, **options.loop_kwargs())
        except KeyboardInterrupt:
            if rank == 0:
                print(f'\nStopped by the user. Every snapshot already in {options.run_dir} is complete; '
                      f'pick the run up again with --resume=latest.')
            raise
        except DatasetError as err:
            # An image that passed the start-up check failed to decode later: a data problem, no traceback.
            print(f'\nError: {err}\nTraining stopped. Every snapshot already in {options.run_dir} is complete; '
                  f'fix or remove the file, then pick the run up again with --resume=latest.')
            raise SystemExit(1) from None
        finally:
            distributed.shutdown()


def _spawn_ranks(options, metrics_fn):
    """Run `_train_rank` in `options.num_gpus` fresh processes and wait for all of them."""
    with tempfile.TemporaryDirectory(prefix='stylegan-plus-rendezvous-') as folder:
        rendezvous_file = os.path.join(folder, 'init')
        torch.multiprocessing.spawn(_train_rank, args=(options, rendezvous_file, options.num_gpus, metrics_fn),
                                    nprocs=options.num_gpus, join=True)


def launch_local(options, outdir, metrics_fn=None):
    """Create the run folder `<outdir>/<id>-<options.desc>`, save the options and train with
    `options.num_gpus` processes. Returns the run folder (str)."""
    options.run_dir = create_run_dir(outdir, options.desc)
    _save_options(options)
    print(f'Starting {options.num_gpus} training process{"es" if options.num_gpus > 1 else ""}...')
    # 'spawn' everywhere (also for DataLoader workers), so runs start alike on every platform.
    torch.multiprocessing.set_start_method('spawn', force=True)
    if options.num_gpus == 1:
        _train_rank(0, options, rendezvous_file=None, metrics_fn=metrics_fn)
    else:
        _spawn_ranks(options, metrics_fn)
    return options.run_dir


def launch_torchrun(options, outdir, env, metrics_fn=None):
    """Train as rank `env[0]` of a torchrun job; rank 0 makes the run folder and names it to all.

    env: (rank, world_size, local_rank) from `distributed.torchrun_env()`. Returns the run folder.
    """
    rank, world_size, _local_rank = env
    device = setup.resolve_device(options.device or None, rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)   # NCCL needs each process on its own GPU before the group forms
    distributed.init_process_group(device.type, rank, world_size)
    if rank == 0:
        options.run_dir = create_run_dir(outdir, options.desc)
        _save_options(options)
    options.run_dir = distributed.broadcast_object(options.run_dir if rank == 0 else None)
    local_world_size = int(os.environ.get('LOCAL_WORLD_SIZE', world_size))
    _train_rank(rank, options, rendezvous_file=None, local_world_size=local_world_size, metrics_fn=metrics_fn)
    return options.run_dir
