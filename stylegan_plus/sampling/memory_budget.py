"""How many samples to generate per call: a memory budget divided by what one sample costs.

Every batched generation (snapshot grids, `generate.py`, the metrics' fakes, the projector's w
statistics) asks `generation_chunk` how many samples one call of the network may take.

- Budget: a fraction of the memory that is free now. On CPU it is also capped at
  `CPU_BUDGET_CAP`: CPU throughput hardly grows beyond a few samples per call (0.075 s/image at 8
  vs 0.068 at 256 for the cifar generator), while a large chunk can take all of a machine's RAM
  (1 024 cifar images in one call need about 30 GB). On CUDA, where batching pays, half the free
  device memory (counting memory torch's allocator holds but does not use).
- Cost of one sample: measured on the network itself, so that any architecture (StyleGAN2 with
  its per-sample modulated weights, DCGAN, MLP, official pickles) is covered. Two small no-grad
  forward passes (2 and 4 samples) record the size of every tensor the torch functions return;
  the growth per sample of the largest one, times `LIVE_TENSOR_FACTOR` (tensors alive at the same
  time: the layer's input, output and weight copies), is the cost. For the cifar generator the
  largest tensor is a layer's modulated weights, 512 x 512 x 3 x 3 floats (9 MiB) per sample, and
  the measured peak is 34 MiB per sample (3.7 times); the highest ratio measured, 6.0, was a 64-px
  generator with 512 channels throughout (peak RSS of no-grad passes of 4 to 64 samples on CPU, for
  StyleGAN2 at 32 to 512 px and DCGAN at 64 px).
"""

import copy
import itertools
import math

import psutil
import torch
from torch.overrides import TorchFunctionMode

CPU_BUDGET_FRACTION = 0.25      # share of the available host RAM one generation call may use
CPU_BUDGET_CAP = 2 ** 30        # bytes; beyond this CPU batching gains nothing measurable
CUDA_BUDGET_FRACTION = 0.5      # share of the free device memory
LIVE_TENSOR_FACTOR = 6          # peak bytes of a forward pass / its largest per-sample tensor (measured: 3.7 to 6.0)
PROBE_SIZES = (2, 4)            # batch sizes of the probe passes (not 1: fp16 StyleGAN2 takes another path at 1)


def memory_status(device) -> tuple:
    """(free bytes, total bytes) of `device`: host RAM for CPU, device memory for CUDA.

    CUDA's free memory includes what torch's caching allocator holds without using it.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        free, total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached, total
    info = psutil.virtual_memory()
    return info.available, info.total


def generation_budget(device) -> int:
    """Bytes one generation call may use on `device` (see the module docstring)."""
    device = torch.device(device)
    free, _total = memory_status(device)
    if device.type == 'cuda':
        return int(free * CUDA_BUDGET_FRACTION)
    return int(min(free * CPU_BUDGET_FRACTION, CPU_BUDGET_CAP))


class _TensorSizes(TorchFunctionMode):
    """Records the byte size of every tensor returned by a torch function while active."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(item, torch.Tensor):
                self.sizes.append(item.numel() * item.element_size())
        return out


def _record_sizes(net, n, device, forward_kwargs):
    """Byte sizes of the tensors returned by torch functions in one forward pass of n samples."""
    recorder = _TensorSizes()
    inputs = dict(z=torch.zeros([n, net.z_dim], device=device), c=torch.zeros([n, net.c_dim], device=device))
    with recorder:
        net(**inputs, **forward_kwargs)
    return recorder.sizes


def _probe(net, device, forward_kwargs):
    """Largest growth per sample of a tensor between the two probe passes, in bytes."""
    small, large = (_record_sizes(net, n, device, forward_kwargs) for n in PROBE_SIZES)
    if len(small) == len(large):
        return max((b - a for a, b in zip(small, large)), default=0) / (PROBE_SIZES[1] - PROBE_SIZES[0])
    # The passes took different paths: count the largest tensor of the bigger pass as if all of it grew with n.
    return max(large, default=0) / PROBE_SIZES[0]


def _meta_copy(net):
    """Deep copy of `net` whose parameters and buffers are shape-only stand-ins on the meta device."""
    memo = {}
    for tensor in itertools.chain(net.parameters(), net.buffers()):
        stand_in = torch.empty_like(tensor, device='meta')
        if isinstance(tensor, torch.nn.Parameter):
            stand_in = torch.nn.Parameter(stand_in, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = stand_in
    return copy.deepcopy(net, memo)


@torch.no_grad()
def sample_bytes(net, **forward_kwargs) -> int:
    """Peak bytes one more sample adds to a no-grad forward pass of `net` (see the module docstring).

    net: a generator-like module with `z_dim` and `c_dim` (G, G.mapping, DCGAN, MLP), called as
    `net(z=z, c=c, **forward_kwargs)`. The passes run on a copy, so that state a forward pass
    changes (counters, running statistics) stays as it was: a copy on the meta device (shapes only,
    no arithmetic, no weight memory) or, for a network that cannot run there, a full copy on its
    own device, with the caller's random streams left untouched.
    """
    first = next(itertools.chain(net.parameters(), net.buffers()), None)
    device = first.device if first is not None else torch.device('cpu')
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        try:
            largest = _probe(_meta_copy(net), torch.device('meta'), forward_kwargs)
        except Exception:  # pylint: disable=broad-except  # e.g. .item() or numpy inside forward
            largest = _probe(copy.deepcopy(net), device, forward_kwargs)
    return max(int(math.ceil(LIVE_TENSOR_FACTOR * largest)), 1)


def chunk_for(per_sample_bytes, budget_bytes, limit=None) -> int:
    """Samples per call: budget // per-sample bytes, at least 1, at most `limit` (None: no limit)."""
    chunk = max(int(budget_bytes // max(per_sample_bytes, 1)), 1)
    return chunk if limit is None else max(min(chunk, int(limit)), 1)


def generation_chunk(net, device=None, limit=None, budget=None, **forward_kwargs) -> int:
    """Samples per call for generating with `net` on `device` (default: where its weights are).

    limit: upper bound (e.g. the number of samples wanted); budget: bytes, default
    `generation_budget(device)`; forward_kwargs: as in `sample_bytes`. Returns an int >= 1.
    """
    if device is None:
        param = next(iter(net.parameters()), None)
        device = param.device if param is not None else torch.device('cpu')
    budget = generation_budget(device) if budget is None else budget
    return chunk_for(sample_bytes(net, **forward_kwargs), budget, limit)


def format_bytes(count) -> str:
    """'1.23 GiB' / '45.6 MiB'."""
    if count >= 2 ** 30:
        return f'{count / 2 ** 30:.2f} GiB'
    return f'{count / 2 ** 20:.1f} MiB'
