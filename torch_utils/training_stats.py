"""Light-weight statistics gathered during training, optionally across processes.

Anywhere in the code, `report(name, value)` adds the moments (count, sum, sum of squares) of a
set of scalars to a per-name accumulator. A `Collector` periodically sums those accumulators
over all processes and exposes num/mean/std of what arrived since its previous `update()`.

In multi-process runs every process must report the same names (use `report0` or an empty
value to register a name without contributing) and call `Collector.update()` at the same time,
because the update is a collective all-reduce.
"""

import re

import numpy as np
import torch

import dnnlib

from . import misc

#----------------------------------------------------------------------------
# Constants and module state. The names are part of the official interface.

_num_moments = 3                # [count, sum, sum of squares]
_reduce_dtype = torch.float32   # dtype the reported elements are summed in
_counter_dtype = torch.float64  # dtype the moments are accumulated in
_rank = 0                       # this process's rank (set by init_multiprocessing)
_sync_device = None             # device used for all_reduce; None = single process
_sync_called = False            # a sync has happened: init_multiprocessing is too late
_counters = {}                  # name -> {device: moments since the last sync}
_cumulative = {}                # name -> moments summed over all syncs and processes (CPU)

#----------------------------------------------------------------------------

def init_multiprocessing(rank, sync_device):
    """Set up cross-process reduction; call before any `Collector` is created.

    rank: index of this process (only rank 0 contributes to `report0`).
    sync_device: device for the `torch.distributed.all_reduce` of the moments (e.g.
    `torch.device('cuda', rank)` for NCCL, CPU for gloo), or None for a single process.
    Calling it again later is allowed with the same rank and device (a second training run in one
    process, e.g. a notebook); other values are refused once statistics were synchronised, until
    `reset()`.
    """
    global _rank, _sync_device # pylint: disable=global-statement
    if _sync_called and (rank, sync_device) != (_rank, _sync_device):
        raise RuntimeError(f'training_stats.init_multiprocessing(rank={rank}, sync_device={sync_device}) after '
                           f'statistics were synchronised with rank={_rank}, sync_device={_sync_device}: it must be '
                           f'called before the first Collector.update(), or after training_stats.reset()')
    _rank = rank
    _sync_device = sync_device


def reset():
    """Forget every reported name and accumulated moment, as at import (rank and device are kept).

    For a new training run in the same process. Collectors created before the reset must not be
    used after it.
    """
    global _sync_called # pylint: disable=global-statement
    _counters.clear()
    _cumulative.clear()
    _sync_called = False

@misc.profiled_function
def report(name, value):
    """Accumulate the moments of the scalars in `value` under `name`; return `value` unchanged.

    value: a number, sequence, numpy array or tensor of any shape (all elements count equally);
    an empty value only registers `name`. Tensors are detached, summed in float32 on their own
    device and accumulated in float64.
    """
    if not isinstance(name, str):
        raise TypeError(f'training_stats.report: name must be a string, got {name!r}')
    per_device = _counters.setdefault(name, {})
    elems = torch.as_tensor(value)
    if elems.numel() == 0:
        return value
    elems = elems.detach().flatten().to(_reduce_dtype)
    moments = torch.stack([
        torch.ones_like(elems).sum(),
        elems.sum(),
        elems.square().sum(),
    ]).to(_counter_dtype)
    counter = per_device.get(moments.device)
    if counter is None:
        per_device[moments.device] = moments
    else:
        counter.add_(moments)
    return value


def report0(name, value):
    """Like `report`, but only rank 0 contributes; other ranks just register `name`."""
    report(name, value if _rank == 0 else [])
    return value

#----------------------------------------------------------------------------

class Collector:
    """Reads the statistics reported since the previous `update()`.

    regex: only names fully matching it are collected. keep_previous: when a name got no new
    values during an interval, keep its previous statistics (True) or forget them (False).
    """

    def __init__(self, regex='.*', keep_previous=True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._last_cumulative = {}  # name -> cumulative moments seen at the previous update
        self._moments = {}          # name -> moments of the latest interval with data
        # Start from the current totals, so earlier reports are not attributed to this collector.
        self.update()
        self._moments.clear()

    def names(self):
        """Names reported so far (in first-report order) that match the regex."""
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self):
        """Gather new moments from all processes (collective call when multi-process)."""
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _sync(self.names()):
            previous = self._last_cumulative.get(name)
            if previous is None:
                previous = torch.zeros_like(cumulative)
            delta = cumulative - previous
            self._last_cumulative[name] = cumulative.clone()
            if delta[0] != 0:
                self._moments[name] = delta

    def _interval(self, name):
        moments = self._moments.get(name)
        return moments if moments is not None else torch.zeros([_num_moments], dtype=_counter_dtype)

    def num(self, name):
        """Number of scalars reported under `name` in the latest interval (0 if none)."""
        return int(self._interval(name)[0])

    def mean(self, name):
        """Mean of those scalars as a float; NaN if there were none."""
        moments = self._interval(name)
        if moments[0] == 0:
            return float('nan')
        return float(moments[1] / moments[0])

    def std(self, name):
        """Population standard deviation of those scalars; NaN if none (or mean not finite), 0 if one."""
        moments = self._interval(name)
        mean = self.mean(name)
        if moments[0] == 0 or not np.isfinite(mean):
            return float('nan')
        if moments[0] == 1:
            return 0.0
        mean_square = float(moments[2] / moments[0])
        return float(np.sqrt(max(mean_square - np.square(mean), 0)))

    def as_dict(self):
        """EasyDict `{name: EasyDict(num=, mean=, std=)}` over `names()`."""
        return dnnlib.EasyDict({
            name: dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
            for name in self.names()
        })

    def __getitem__(self, name):
        return self.mean(name)

#----------------------------------------------------------------------------

def _sync(names):
    """Move the pending moments of `names` into `_cumulative`, summed over all processes.

    Returns [(name, cumulative moments tensor on CPU)] in the order of `names`.
    """
    global _sync_called # pylint: disable=global-statement
    if not names:
        return []
    _sync_called = True
    device = torch.device('cpu') if _sync_device is None else _sync_device
    # A fixed order, so that processes that first reported names in different orders still agree.
    ordered = sorted(names)
    pending = torch.zeros([len(ordered), _num_moments], dtype=_counter_dtype, device=device)
    for row, name in enumerate(ordered):
        for counter in _counters[name].values():
            pending[row].add_(counter.to(device))
            counter.zero_()
    if _sync_device is not None:
        torch.distributed.all_reduce(pending)
    pending = pending.cpu()
    for row, name in enumerate(ordered):
        total = _cumulative.setdefault(name, torch.zeros([_num_moments], dtype=_counter_dtype))
        total.add_(pending[row])
    return [(name, _cumulative[name]) for name in names]

#----------------------------------------------------------------------------
