"""Process groups for multi-process training: one node (`--gpus=N`) or many (`torchrun`).

Three ways a training process comes to life:

- single process (`--gpus=1`): no process group, statistics are not reduced;
- `--gpus=N` on one node: `train.py` spawns N processes with `torch.multiprocessing.spawn`, which
  meet through a rendezvous file in a temporary folder (as the official trainer does);
- `torchrun` (one or many nodes): every process runs `train.py` itself and finds its rank and the
  world size in the environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, ...); the group
  is initialised with `env://`.

The backend is NCCL for CUDA devices and gloo for CPU. Gradients are averaged explicitly with one
all-reduce per optimizer step (`average_gradients`), which keeps the loop free of
DistributedDataParallel wrappers and works the same on both backends.
"""

import os

import torch

from torch_utils import custom_ops, training_stats

_TORCHRUN_KEYS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')


def torchrun_env():
    """(rank, world_size, local_rank) when launched by torchrun (or any env:// launcher), else None."""
    if not all(key in os.environ for key in _TORCHRUN_KEYS):
        return None
    return int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), int(os.environ['LOCAL_RANK'])


def backend_for(device_type):
    """Collective backend for a device type: 'nccl' for CUDA, 'gloo' otherwise."""
    return 'nccl' if device_type == 'cuda' else 'gloo'


def init_process_group(device_type, rank, world_size, init_file=None):
    """Join the process group (no-op for world_size 1).

    init_file: rendezvous file of a `--gpus=N` spawn; None means `env://` (torchrun).
    """
    if world_size <= 1 or torch.distributed.is_initialized():
        return
    backend = backend_for(device_type)
    if init_file is not None:
        init_method = 'file://' + os.path.abspath(init_file).replace(os.sep, '/')
        torch.distributed.init_process_group(backend=backend, init_method=init_method,
                                             rank=rank, world_size=world_size)
    else:
        torch.distributed.init_process_group(backend=backend, init_method='env://')


def shutdown():
    """Leave the process group, if any."""
    if is_distributed():
        torch.distributed.destroy_process_group()


def init_process_state(device, rank, world_size, local_world_size=None):
    """Per-process settings that must precede training: stats reduction, threads, quiet ops.

    CPU processes share the machine's cores: each gets an equal share of torch threads, so that
    N gloo processes do not oversubscribe the CPU.
    """
    sync_device = None
    if world_size > 1:
        sync_device = device if device.type == 'cuda' else torch.device('cpu')
    training_stats.init_multiprocessing(rank=rank, sync_device=sync_device)
    if rank != 0:
        custom_ops.verbosity = 'none'
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    elif world_size > 1:
        sharing = local_world_size or world_size
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // sharing))


def is_distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def broadcast_object(obj, src=0):
    """Send a picklable object from rank `src` to every process; returns it everywhere."""
    if not is_distributed():
        return obj
    holder = [obj]
    torch.distributed.broadcast_object_list(holder, src=src)
    return holder[0]


def gather_objects(obj):
    """List of `obj` from every process, in rank order (a one-element list without a group)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


@torch.no_grad()
def broadcast_module(module, src=0):
    """Overwrite every parameter and buffer of `module` with rank `src`'s values."""
    if module is None or not is_distributed():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(tensor.data, src=src)


@torch.no_grad()
def average_gradients(params, world_size):
    """Average `.grad` of `params` over all processes with one flat all-reduce.

    Parameters whose grad is None on this process are treated as zero-gradient on every process;
    the set of parameters must be the same everywhere (it is: all ranks run the same phases).
    A grad that was None everywhere stays None, so the optimizer still skips it.
    """
    if world_size <= 1 or not is_distributed():
        return
    params = list(params)
    if not params:
        return
    device = params[0].device
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    torch.distributed.all_reduce(has_grad)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                      for p in params])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for param, anyone in zip(params, has_grad.tolist()):
        numel = param.numel()
        if anyone:
            grad = flat[offset:offset + numel].view_as(param).to(param.dtype)
            if param.grad is None:
                param.grad = grad.clone()
            else:
                param.grad.copy_(grad)
        offset += numel


def barrier():
    if is_distributed():
        torch.distributed.barrier()
