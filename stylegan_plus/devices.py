"""The one place where a device option becomes a `torch.device`.

The official tools hard-code `torch.device('cuda')`; here every tool, the training processes
and the metrics accept `cuda`, `cuda:N` or `cpu` (None: CUDA when available, else CPU) and
refuse anything else with a ValueError that names the value. The command-line tools turn that
error into a usage error (`stylegan_plus.cli.device`).
"""

import torch

ACCEPTED = 'cuda, cuda:N or cpu'


def resolve_device(spec=None, local_rank: int = None) -> torch.device:
    """The torch.device a process should run on.

    spec:       'cuda', 'cuda:N', 'cpu', a torch.device, or None (CUDA when available, else CPU).
    local_rank: index of this process among those of one machine, or None for a lone process.
                CUDA processes are placed one per GPU from the given one on: 'cuda' -> cuda:<local_rank>,
                'cuda:N' -> cuda:<N + local_rank>; CPU processes all share 'cpu'.
    Returns a 'cpu' or 'cuda' device; 'cuda' without an index and without a local rank stays
    index-less (the current CUDA device), as torch.device('cuda') is.
    Raises ValueError naming `spec` when it is not a device, not cuda/cpu, or names a CUDA device
    this machine does not have.
    """
    device = _parse(spec)
    if device.type == 'cpu':
        return device
    if device.type != 'cuda':
        raise ValueError(f'device {_shown(spec)} is not supported; accepted are {ACCEPTED}')
    if not torch.cuda.is_available():
        raise ValueError(f'device {_shown(spec)} was requested, but CUDA is not available on this machine; use cpu')
    if local_rank is None and device.index is None:
        return device
    index = (device.index or 0) + (local_rank or 0)
    _require_gpu(spec, index, local_rank)
    return torch.device('cuda', index)


def _parse(spec) -> torch.device:
    """torch.device of an option value; None picks CUDA when it is available."""
    if spec is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if isinstance(spec, torch.device):
        return spec
    try:
        return torch.device(str(spec).strip())
    except (RuntimeError, ValueError):
        raise ValueError(f'{_shown(spec)} is not a device; accepted are {ACCEPTED}') from None


def _require_gpu(spec, index, local_rank):
    """ValueError unless cuda:<index> exists; the message says how the index came about."""
    count = torch.cuda.device_count()
    if index < count:
        return
    have = f'this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}'
    if local_rank:
        raise ValueError(f'device {_shown(spec)} for process {local_rank} of this machine needs cuda:{index}; {have}')
    raise ValueError(f'device {_shown(spec)} does not exist: {have}')


def _shown(spec) -> str:
    """How messages quote the user's value (None is the automatic choice)."""
    return 'auto' if spec is None else repr(str(spec))
