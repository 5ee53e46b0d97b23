"""Starting the training processes once the options are final (used by train.py).

- one process: runs in the calling process;
- `--gpus=N`: `torch.multiprocessing.spawn` of N processes (start method `spawn`), meeting
  through a file in a temporary folder;
- under torchrun: this process is one rank; the group is joined with `env://`, rank 0 creates the
  run folder and tells the others its name.
"""

import json
import os
import tempfile

import torch

import dnnlib

from . import distributed, setup
from . import training_loop as training_loop_lib
from .options import create_run_dir, summary_lines


def print_options(args):
    print()
    print('Training options:')
    print(json.dumps(args, indent=2))
    print()
    for line in summary_lines(args):
        print(line)
    print()


def write_options(args):
    with open(os.path.join(args.run_dir, 'training_options.json'), 'wt') as f:
        json.dump(args, f, indent=2)


def subprocess_fn(rank, args, temp_dir, local_world_size=None):
    """Body of one training process (rank `rank`), spawned or in-process."""
    log_path = os.path.join(args.run_dir, 'log.txt')
    logger = None
    if rank == 0 or os.path.isdir(args.run_dir):
        logger = dnnlib.util.Logger(file_name=log_path, file_mode='a', should_flush=True)
    init_file = None if temp_dir is None else os.path.join(temp_dir, '.torch_distributed_init')
    try:
        device = setup.resolve_device(args.get('device'), rank)
        distributed.init_process_group(device.type, rank, args.num_gpus, init_file=init_file)
        distributed.init_process_state(device, rank, args.num_gpus, local_world_size)
        training_loop_lib.training_loop(rank=rank, **args)
    except KeyboardInterrupt:
        if rank == 0:
            print(f'\nInterrupted. Snapshots written so far in {args.run_dir} are complete; '
                  f'continue with --resume=latest.')
        raise
    finally:
        distributed.shutdown()
        if logger is not None:
            logger.close()


def launch_local(args, outdir, desc):
    """Create the run folder, write training_options.json and train with `args.num_gpus` processes."""
    args.run_dir = create_run_dir(outdir, desc)
    write_options(args)
    print('Launching processes...')
    torch.multiprocessing.set_start_method('spawn', force=True)
    with tempfile.TemporaryDirectory() as temp_dir:
        if args.num_gpus == 1:
            subprocess_fn(rank=0, args=args, temp_dir=temp_dir)
        else:
            torch.multiprocessing.spawn(fn=subprocess_fn, args=(args, temp_dir, args.num_gpus),
                                        nprocs=args.num_gpus)
    return args.run_dir


def launch_torchrun(args, outdir, desc, env):
    """This process is rank `env[0]` of a torchrun job: join it, agree on the run folder, train."""
    rank, world_size, _local_rank = env
    device = setup.resolve_device(args.get('device'), rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)   # NCCL collectives below need the device chosen first
    distributed.init_process_group(device.type, rank, world_size)
    run_dir = None
    if rank == 0:
        run_dir = create_run_dir(outdir, desc)
        args.run_dir = run_dir
        write_options(args)
    args.run_dir = distributed.broadcast_object(run_dir)
    local_world = int(os.environ.get('LOCAL_WORLD_SIZE', world_size))
    subprocess_fn(rank=rank, args=args, temp_dir=None, local_world_size=local_world)
    return args.run_dir
