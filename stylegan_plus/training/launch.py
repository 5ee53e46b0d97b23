"""From final options to running training processes (called by train.py).

Three shapes of run, one code path per process (`_train_rank`):

- `--gpus=1`: training runs inside the calling process;
- `--gpus=N`: `torch.multiprocessing.spawn` starts N processes, which find each other through a
  rendezvous file in a private temporary folder;
- torchrun (one or several nodes): this process already is one rank; the group forms through
  `env://`, rank 0 creates the run folder and broadcasts its name to the others.

Whatever a process prints is also appended to `<run_dir>/log.txt`.
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
from .options import create_run_dir, summary_lines
from .snapshots import atomic_write


def print_options(args):
    """Show the options as JSON, then the one-line-per-fact summary, framed by blank lines.

    args: the options EasyDict that becomes training_options.json (with `run_dir` set).
    """
    text = ['', 'Training options:', json.dumps(args, indent=2), '', *summary_lines(args), '']
    print('\n'.join(text))


def _save_options(args):
    """Write training_options.json (the exact keyword set `training_loop` receives, minus rank)."""
    encoded = json.dumps(args, indent=2).encode('utf-8')
    atomic_write(os.path.join(args.run_dir, 'training_options.json'), lambda f: f.write(encoded))


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


def _train_rank(rank, args, rendezvous_file, local_world_size=None):
    """Everything one training process does: log, join the group, set per-process state, train.

    rendezvous_file: path of the `--gpus=N` meeting file, or None (single process, or torchrun's env://).
    local_world_size: processes sharing this machine (splits the CPU threads between them).
    """
    with _tee_to_run_log(args.run_dir, rank):
        try:
            device = setup.resolve_device(args.get('device'), rank)
            distributed.init_process_group(device.type, rank, args.num_gpus, init_file=rendezvous_file)
            distributed.init_process_state(device, rank, args.num_gpus, local_world_size)
            training_loop_lib.training_loop(rank=rank, **args)
        except KeyboardInterrupt:
            if rank == 0:
                print(f'\nStopped by the user. Every snapshot already in {args.run_dir} is complete; '
                      f'pick the run up again with --resume=latest.')
            raise
        except DatasetError as err:
            # An image that passed the start-up check failed to decode later: a data problem, no traceback.
            print(f'\nError: {err}\nTraining stopped. Every snapshot already in {args.run_dir} is complete; '
                  f'fix or remove the file, then pick the run up again with --resume=latest.')
            raise SystemExit(1) from None
        finally:
            distributed.shutdown()


def _spawn_ranks(args):
    """Run `_train_rank` in `args.num_gpus` fresh processes and wait for all of them."""
    with tempfile.TemporaryDirectory(prefix='stylegan-plus-rendezvous-') as folder:
        rendezvous_file = os.path.join(folder, 'init')
        torch.multiprocessing.spawn(_train_rank, args=(args, rendezvous_file, args.num_gpus),
                                    nprocs=args.num_gpus, join=True)


def launch_local(args, outdir, desc):
    """Create the run folder under `outdir`, save the options and train with `args.num_gpus` processes.

    Returns the run folder (str).
    """
    args.run_dir = create_run_dir(outdir, desc)
    _save_options(args)
    print(f'Starting {args.num_gpus} training process{"es" if args.num_gpus > 1 else ""}...')
    # 'spawn' everywhere (also for DataLoader workers), so runs start alike on every platform.
    torch.multiprocessing.set_start_method('spawn', force=True)
    if args.num_gpus == 1:
        _train_rank(0, args, rendezvous_file=None)
    else:
        _spawn_ranks(args)
    return args.run_dir


def launch_torchrun(args, outdir, desc, env):
    """Train as rank `env[0]` of a torchrun job; rank 0 makes the run folder and names it to all.

    env: (rank, world_size, local_rank) from `distributed.torchrun_env()`. Returns the run folder.
    """
    rank, world_size, _local_rank = env
    device = setup.resolve_device(args.get('device'), rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)   # NCCL needs each process on its own GPU before the group forms
    distributed.init_process_group(device.type, rank, world_size)
    if rank == 0:
        args.run_dir = create_run_dir(outdir, desc)
        _save_options(args)
    args.run_dir = distributed.broadcast_object(args.run_dir if rank == 0 else None)
    local_world_size = int(os.environ.get('LOCAL_WORLD_SIZE', world_size))
    _train_rank(rank, args, rendezvous_file=None, local_world_size=local_world_size)
    return args.run_dir
