"""Small torch helpers shared by the networks, the training loop and embedded pickle code.

Official StyleGAN2-ADA network source (executed when loading its pickles) calls `constant`,
`assert_shape`, `profiled_function` and `suppress_tracer_warnings` from here, so their names and
behaviour are fixed by that code.
"""

import contextlib
import functools
import re
import warnings

import numpy as np
import torch

#----------------------------------------------------------------------------
# Cached constant tensors.

_constant_cache = {}


def constant(value, shape=None, dtype=None, device=None, memory_format=None):
    """Tensor holding `value`, created once per distinct request and then reused.

    value: anything `np.asarray` accepts. shape: optional target shape that `value` is broadcast
    to. dtype: default `torch.get_default_dtype()`. device: default CPU. memory_format: default
    `torch.contiguous_format`. The result is shared between callers: never modify it in place.
    """
    array = np.asarray(value)
    shape = None if shape is None else tuple(shape)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    device = torch.device('cpu') if device is None else torch.device(device)
    memory_format = torch.contiguous_format if memory_format is None else memory_format

    key = (array.shape, array.dtype, array.tobytes(), shape, dtype, device, memory_format)
    cached = _constant_cache.get(key)
    if cached is None:
        cached = torch.as_tensor(array.copy(), dtype=dtype, device=device)
        if shape is not None:
            cached = torch.broadcast_to(cached, torch.broadcast_shapes(cached.shape, shape))
        cached = cached.contiguous(memory_format=memory_format)
        _constant_cache[key] = cached
    return cached

#----------------------------------------------------------------------------
# Aliases kept for code written against older torch releases.

def _nan_to_num_fallback(input, nan=0.0, posinf=None, neginf=None, *, out=None): # pylint: disable=redefined-builtin
    """`torch.nan_to_num` for torch builds that lack it (before 1.8)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f'nan_to_num expects a tensor, got {type(input).__name__}')
    info = torch.finfo(input.dtype)
    high = info.max if posinf is None else posinf
    low = info.min if neginf is None else neginf
    result = torch.where(torch.isnan(input), torch.full_like(input, nan), input).clamp(low, high)
    return result if out is None else out.copy_(result)


nan_to_num = getattr(torch, 'nan_to_num', _nan_to_num_fallback)
symbolic_assert = getattr(torch, '_assert', None) or getattr(torch, 'Assert')

#----------------------------------------------------------------------------

class suppress_tracer_warnings(warnings.catch_warnings):
    """Context manager that silences `torch.jit.TracerWarning` inside its block."""

    def __enter__(self):
        result = super().__enter__()
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        return result


def assert_shape(tensor, ref_shape):
    """Raise AssertionError unless `tensor.shape` matches `ref_shape`.

    ref_shape: sequence with one entry per dimension: None (any size), an int, or a 0-dim tensor
    (compared symbolically, so the check survives `torch.jit.trace`).
    """
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f'Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}')
    for dim, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(size, torch.Tensor) or isinstance(ref_size, torch.Tensor):
            # Only happens while tracing: keep the comparison in the graph.
            with suppress_tracer_warnings():
                same = torch.equal(torch.as_tensor(size), torch.as_tensor(ref_size))
                symbolic_assert(same, f'Wrong size for dimension {dim}: expected {ref_size}')
        elif size != ref_size:
            raise AssertionError(f'Wrong size for dimension {dim}: got {size}, expected {ref_size}')


def profiled_function(fn):
    """Decorator: run `fn` inside `torch.autograd.profiler.record_function(fn.__name__)`."""
    @functools.wraps(fn)
    def profiled(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    return profiled

#----------------------------------------------------------------------------

class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices, split between `num_replicas` processes.

    The sequence is a seeded permutation that is continually perturbed: after visiting position
    `i`, entry `i` is swapped with one of the `window` entries before it, where
    `window = rint(len(dataset) * window_size)`. Process `rank` yields every `num_replicas`-th
    index. The order is identical to the official sampler, which fixes the real-image order.
    """

    def __init__(self, dataset, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5):
        size = len(dataset)
        if size <= 0:
            raise ValueError(f'InfiniteSampler needs a non-empty dataset, got {size} items')
        if not _is_int(num_replicas) or num_replicas < 1:
            raise ValueError(f'InfiniteSampler: num_replicas must be an integer >= 1, got {num_replicas!r}')
        if not _is_int(rank) or not 0 <= rank < num_replicas:
            raise ValueError(f'InfiniteSampler: rank must be an integer in [0, {num_replicas - 1}], got {rank!r}')
        if not _is_int(seed):
            raise ValueError(f'InfiniteSampler: seed must be an integer, got {seed!r}')
        if not 0 <= window_size <= 1:
            raise ValueError(f'InfiniteSampler: window_size must be in [0, 1], got {window_size!r}')
        super().__init__() # torch >= 2.x: Sampler takes no data source.
        self.dataset = dataset
        self.rank = int(rank)
        self.num_replicas = int(num_replicas)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.window_size = window_size

    def __iter__(self):
        size = len(self.dataset)
        order = np.arange(size)
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(size * self.window_size))

        position = 0
        while True:
            slot = position % size
            if position % self.num_replicas == self.rank:
                yield int(order[slot])
            if window >= 2:
                other = (slot - rnd.randint(window)) % size
                order[slot], order[other] = order[other], order[slot]
            position += 1


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

#----------------------------------------------------------------------------
# Parameter and buffer utilities.

def params_and_buffers(module):
    """List of all parameters of `module` followed by all its buffers."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'Expected a torch.nn.Module, got {type(module).__name__}')
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module):
    """List of (name, tensor) for all parameters of `module`, then all its buffers."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'Expected a torch.nn.Module, got {type(module).__name__}')
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module, dst_module, require_all=False):
    """Copy every parameter/buffer of `dst_module` that has a same-named tensor in `src_module`.

    With `require_all`, every tensor of `dst_module` must exist in `src_module`. Shapes must
    match; dtype and device are converted. `requires_grad` of the destination is kept.
    """
    src_tensors = dict(named_params_and_buffers(src_module))
    dst_tensors = named_params_and_buffers(dst_module)
    if require_all:
        missing = [name for name, _ in dst_tensors if name not in src_tensors]
        if missing:
            raise KeyError(f'copy_params_and_buffers(require_all=True): source module lacks {missing}')
    for name, dst in dst_tensors:
        src = src_tensors.get(name)
        if src is None:
            continue
        if src.shape != dst.shape:
            raise ValueError(f'copy_params_and_buffers: shape of {name!r} differs: '
                             f'source {list(src.shape)}, destination {list(dst.shape)}')
        dst.copy_(src.detach())

#----------------------------------------------------------------------------
# Distributed helpers.

@contextlib.contextmanager
def ddp_sync(module, sync):
    """Context manager: for a DistributedDataParallel `module` with `sync=False`, skip the
    gradient all-reduce (`no_sync()`); otherwise do nothing."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'ddp_sync expects a torch.nn.Module, got {type(module).__name__}')
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield


def check_ddp_consistency(module, ignore_regex=None):
    """Assert that every parameter/buffer of `module` equals the copy held by rank 0.

    Needs an initialised `torch.distributed` process group. Tensor names are prefixed with the
    module's class name (`Generator.mapping.fc0.weight`); names fully matching `ignore_regex`
    are skipped. NaNs compare equal to each other.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'check_ddp_consistency expects a torch.nn.Module, got {type(module).__name__}')
    for name, tensor in named_params_and_buffers(module):
        full_name = f'{type(module).__name__}.{name}'
        if ignore_regex is not None and re.fullmatch(ignore_regex, full_name):
            continue
        local = tensor.detach()
        if local.is_floating_point():
            local = nan_to_num(local)
        reference = local.clone()
        torch.distributed.broadcast(tensor=reference, src=0)
        if not torch.equal(local, reference):
            raise AssertionError(f'{full_name} differs from rank 0')

#----------------------------------------------------------------------------

def print_module_summary(module, inputs, max_nesting=3, skip_redundant=True):
    """Run `module(*inputs)`, print a table of its submodules, and return the module's outputs.

    Columns: submodule name (header: the module's class name), parameter count, buffer element
    count, output shape, output dtype; then a `Total` row. Submodules deeper than `max_nesting`
    levels are folded into their ancestors. Each tensor is counted in the first row that uses it
    (rows follow the order in which submodules finish); with `skip_redundant`, rows that would be
    empty are left out. Modules with several tensor outputs get one row per output (`name:i`).
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f'print_module_summary expects a torch.nn.Module, got {type(module).__name__}')
    if isinstance(module, torch.jit.ScriptModule):
        raise TypeError('print_module_summary cannot hook a ScriptModule')
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(f'print_module_summary: inputs must be a list or tuple, got {type(inputs).__name__}')

    calls, outputs = _record_submodule_calls(module, inputs, max_nesting)
    names = {mod: name for name, mod in module.named_modules()}
    rows = _summary_rows(module, calls, names, skip_redundant)
    _print_table(rows)
    return outputs


def _record_submodule_calls(module, inputs, max_nesting):
    """Run the module with forward hooks; return ([(submodule, [output tensors])], outputs)."""
    calls = []

    def hook(mod, _inputs, result):
        calls.append((mod, _flatten_tensors(result)))

    handles = [mod.register_forward_hook(hook)
               for name, mod in module.named_modules()
               if (0 if name == '' else name.count('.') + 1) <= max_nesting]
    try:
        outputs = module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls, outputs


def _flatten_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _flatten_tensors(item)]
    return []


def _summary_rows(module, calls, names, skip_redundant):
    """Table rows (lists of 5 strings), header and Total row included."""
    seen = set()
    param_total = 0
    buffer_total = 0
    body = []
    for mod, tensors in calls:
        params = _unseen(mod.parameters(), seen)
        buffers = _unseen(mod.buffers(), seen)
        tensors = _unseen(tensors, seen)
        if skip_redundant and not (params or buffers or tensors):
            continue
        num_params = sum(t.numel() for t in params)
        num_buffers = sum(t.numel() for t in buffers)
        param_total += num_params
        buffer_total += num_buffers
        name = '<top-level>' if mod is module else names.get(mod, type(mod).__name__)
        labels = [name] if len(tensors) <= 1 else [f'{name}:{i}' for i in range(len(tensors))]
        for i, label in enumerate(labels):
            out = tensors[i] if tensors else None
            body.append([
                label,
                str(num_params) if i == 0 and num_params else '-',
                str(num_buffers) if i == 0 and num_buffers else '-',
                str(list(out.shape)) if out is not None else '-',
                str(out.dtype).split('.')[-1] if out is not None else '-',
            ])
    header = [type(module).__name__, 'Parameters', 'Buffers', 'Output shape', 'Datatype']
    rule = ['---'] * 5
    total = ['Total', str(param_total), str(buffer_total), '-', '-']
    return [header, rule] + body + [rule, total]


def _unseen(tensors, seen):
    """Tensors from `tensors` whose id is not yet in `seen` (and mark them seen)."""
    fresh = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            fresh.append(t)
    return fresh


def _print_table(rows):
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    print()
    for row in rows:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print()

#----------------------------------------------------------------------------

#----------------------------------------------------------------------------
# CPU allocator settings for training.

# glibc mallopt() parameter numbers (malloc.h); stable across glibc versions.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_RETAIN_BYTES = 32 * 2 ** 20        # the largest mmap threshold glibc accepts on 64-bit systems
_KEEP_FREED_BYTES = 2 ** 31 - 1     # mallopt takes an int: INT_MAX, i.e. never trim in practice
_cpu_allocator_state = None         # None: not tried yet; else the bool the first call returned


def keep_cpu_memory_for_reuse():
    """Make glibc keep freed CPU tensor memory for reuse instead of returning it to the OS.

    A CPU training step allocates and frees the same few-MB activation buffers hundreds of times.
    With glibc's defaults each such buffer is a fresh mmap(), and writing it first costs one page
    fault per 4 KiB: on some machines that is more time than the arithmetic (a 4x4 depthwise FIR
    on an [8, 128, 35, 35] batch: 7 ms with fresh pages, 1.4 ms reusing them). Raising the mmap
    threshold to 32 MiB and disabling heap trimming keeps those buffers in the heap, which costs
    resident memory up to the step's peak, as any caching allocator does.

    Process-wide and idempotent. Skipped (returns False) when STYLEGAN_PLUS_KEEP_CPU_MEMORY=0, when
    the C library is not glibc, or when mallopt refuses; returns True once applied.
    """
    global _cpu_allocator_state
    if _cpu_allocator_state is None:
        _cpu_allocator_state = _apply_mallopt()
    return _cpu_allocator_state


def _apply_mallopt():
    import ctypes
    import ctypes.util
    import os
    if os.environ.get('STYLEGAN_PLUS_KEEP_CPU_MEMORY', '1') == '0':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS, Windows): leave the allocator alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _RETAIN_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES))

#----------------------------------------------------------------------------
# Reduced-precision compute for training (`--precision`).

PRECISIONS = ('fp32', 'bf16')
_precision_notices = set()          # (precision, device type) pairs already told about a fallback


def native_bf16(device):
    """True when `device` (torch.device or str) computes bfloat16 natively.

    CPU: the oneDNN build can use AMX-BF16 or AVX512-BF16, which this CPU advertises (checked at
    run time: cloud machines of one type differ). CUDA: `torch.cuda.is_bf16_supported()`.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != 'cpu':
        return False
    return not _cpu_flags().isdisjoint({'amx_bf16', 'avx512_bf16'}) and _mkldnn_bf16()


@functools.lru_cache(maxsize=None)
def _cpu_flags():
    """The feature flags of the first CPU in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open('/proc/cpuinfo') as info:
            for line in info:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _mkldnn_bf16():
    probe = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    return torch.backends.mkldnn.is_available() and (probe is None or bool(probe()))


def precision_context(precision, device):
    """A context manager under which network forward passes compute in `precision`.

    precision: 'fp32' (nothing changes) or 'bf16' (torch.autocast to bfloat16: convolutions and
    matmuls in bf16, parameters, gradients and optimizer state stay float32). Where the device has
    no native bf16 the result is fp32, after one printed notice per (precision, device type).
    Raises ValueError for any other precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision={precision!r} is not supported; expected one of {", ".join(PRECISIONS)}')
    device = torch.device(device)
    if precision == 'fp32':
        return contextlib.nullcontext()
    if not native_bf16(device):
        if (precision, device.type) not in _precision_notices:
            _precision_notices.add((precision, device.type))
            print(f'precision={precision}: this {device.type} has no native bfloat16 '
                  f'(needs amx_bf16 or avx512_bf16 on CPU); computing in fp32 instead.')
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

#----------------------------------------------------------------------------
