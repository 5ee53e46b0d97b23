"""Training statistics: cheap to report from anywhere, read in intervals, summed over processes.

Reporting. `report(name, value)` reduces `value` (any number of scalars) to three numbers, its
count, sum and sum of squares, and adds them to a tally pending for `name`. The two sums stay on
the device of the value: copying them to the host would make every report wait for the GPU.

Reading. A `Collector` periodically folds the pending tallies into run-long totals (summed over
all processes) and remembers the totals it saw the previous time; the difference between the two
is what was reported in between. Every collector keeps its own bookmark into the same totals, so
collectors with different rhythms (the per-tick log, the ADA controller) never take values away
from each other.

Several processes. Folding the tallies is a collective all-reduce: every process must create its
collectors and call `update()` at the same points, and must have registered the same names by then
(`report0`, or an empty value, registers a name without adding to it).
"""

import math
import re
from typing import NamedTuple

import torch

import dnnlib

from . import misc

#----------------------------------------------------------------------------
# Module state. These names are listed in the compatibility contract (docs/compat.md, 3.3).

_num_moments = 3                    # count, sum, sum of squares
_reduce_dtype = torch.float32       # reported elements are converted to this before summing
_counter_dtype = torch.float64      # tallies and totals are kept in this precision
_rank = 0                           # rank of this process; report0 counts only on rank 0
_sync_device = None                 # device of the all-reduce; None for a single process
_sync_called = False                # set by the first fold: the settings above are final from then on
_counters = {}                      # name -> _Pending, in the order names were first reported
_cumulative = {}                    # name -> _Moments folded so far, over all processes
# Private, not part of the contract: callables (name, value) shown every `report` call, so that
# the training loop can see the statistics an official-style loss reports (ADA's Loss/signs/real).
_report_listeners = []

#----------------------------------------------------------------------------

class _Moments(NamedTuple):
    """Count, sum and sum of squares of a set of scalars, as Python floats (IEEE double)."""
    count: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def plus(self, other):
        return _Moments(*(a + b for a, b in zip(self, other)))

    def minus(self, other):
        return _Moments(*(a - b for a, b in zip(self, other)))

    def mean(self):
        return self.total / self.count if self.count else math.nan

    def std(self):
        """Population standard deviation; NaN without a finite mean, 0 for a single value."""
        mean = self.mean()
        if not math.isfinite(mean):
            return math.nan
        if self.count == 1:
            return 0.0
        # E[x^2] - E[x]^2 can come out slightly negative through rounding.
        return math.sqrt(max(self.squares / self.count - mean * mean, 0.0))


_NOTHING = _Moments()


class _Pending:
    """What was reported under one name since the last fold.

    The element count is known on the host and kept there (exact, and free); the sum and the sum
    of squares stay on the device of the reported values, one float64 pair per device.
    """
    __slots__ = ('count', 'sums_by_device')

    def __init__(self):
        self.count = 0
        self.sums_by_device = {}

    def add(self, count, sums):
        self.count += count
        held = self.sums_by_device.get(sums.device)
        if held is None:
            self.sums_by_device[sums.device] = sums
        else:
            held += sums

    def drain_into(self, row):
        """Add everything pending to `row` (float64 [count, sum, squares] on the fold device); forget it."""
        row[0] += self.count
        for sums in self.sums_by_device.values():
            row[1:] += sums.to(row.device)
        self.count = 0
        self.sums_by_device.clear()

#----------------------------------------------------------------------------

def init_multiprocessing(rank, sync_device):
    """Declare this process's rank and the device used to sum statistics over processes.

    rank: int in [0, world size); only rank 0 contributes to `report0`.
    sync_device: torch.device holding the all-reduced tallies (`cuda:<rank>` with NCCL, `cpu`
        with gloo), or None for a single process (no reduction).
    Must come before the first `Collector` folds anything. Repeating it later with the same values
    is harmless (a second run in one notebook); other values need `reset()` first.
    """
    global _rank, _sync_device  # pylint: disable=global-statement
    if _sync_called and (rank, sync_device) != (_rank, _sync_device):
        raise RuntimeError(
            f'training_stats.init_multiprocessing(rank={rank}, sync_device={sync_device}) came too late: '
            f'statistics were already summed with rank={_rank}, sync_device={_sync_device}. Call it '
            f'before the first Collector.update() (a Collector updates once when it is created), '
            f'or call training_stats.reset() first.')
    _rank = rank
    _sync_device = sync_device


def reset():
    """Forget all names, tallies and totals (rank and sync device stay); for a new run in one process.

    Collectors made before the reset hold bookmarks into the old totals: make new ones.
    """
    global _sync_called  # pylint: disable=global-statement
    _counters.clear()
    _cumulative.clear()
    _sync_called = False


def _sums_of(value):
    """(number of elements, float64 tensor [sum, sum of squares]) of `value`; (0, None) if it is empty.

    value: number, (nested) sequence, numpy array or tensor of any shape and dtype. The sums run in
    float32 on the value's own device (no host synchronisation); the result lives there too.
    """
    with torch.no_grad():
        elems = torch.as_tensor(value, dtype=_reduce_dtype)
        if elems.numel() == 0:
            return 0, None
        elems = elems.reshape(-1)   # a fixed summation order, whatever the strides of `value`
        return elems.numel(), torch.stack([elems.sum(), elems.square().sum()]).to(_counter_dtype)


@misc.profiled_function
def report(name, value):
    """Add the scalars of `value` to the statistic `name`; return `value` unchanged.

    name: str, e.g. 'Loss/G/loss'. value: number, sequence, numpy array or tensor (any shape;
    every element counts once; tensors may require grad, nothing is kept of their graph). An empty
    value only registers the name, which then shows up in `Collector.names()` with num 0.
    """
    if not isinstance(name, str):
        raise TypeError(f'training_stats.report: the name must be a str, got {name!r}')
    pending = _counters.get(name)
    if pending is None:
        pending = _counters[name] = _Pending()
    count, sums = _sums_of(value)
    if count:
        pending.add(count, sums)
    for listener in _report_listeners:
        listener(name, value)
    return value


def report0(name, value):
    """`report` on rank 0; on other ranks only register `name` (so all ranks know the same names)."""
    if _rank == 0:
        return report(name, value)
    report(name, ())
    return value

#----------------------------------------------------------------------------

def _fold(names):
    """Fold the pending tallies of `names` into `_cumulative` (all-reduced); return {name: totals}.

    Collective when multi-process. Rows are sorted by name so that processes which first reported
    the names in different orders still add up matching rows.
    """
    global _sync_called  # pylint: disable=global-statement
    if not names:
        return {}
    _sync_called = True
    ordered = sorted(names)
    device = torch.device('cpu') if _sync_device is None else _sync_device
    rows = torch.zeros([len(ordered), _num_moments], dtype=_counter_dtype, device=device)
    for name, row in zip(ordered, rows):
        _counters[name].drain_into(row)
    if _sync_device is not None:
        torch.distributed.all_reduce(rows)
    for name, fresh in zip(ordered, rows.cpu().tolist()):
        _cumulative[name] = _cumulative.get(name, _NOTHING).plus(fresh)
    return {name: _cumulative[name] for name in names}


class Collector:
    """num/mean/std of what was reported between its last two `update()` calls.

    regex: str; only names that match it entirely are collected.
    keep_previous: bool; a name that received nothing in the latest interval keeps the numbers of
        its last interval with data (True) or reads as empty, num 0 and NaN mean/std (False).
    Creating a Collector folds once (a collective call in multi-process runs), so that values
    reported before it existed are not counted.
    """

    def __init__(self, regex='.*', keep_previous=True):
        self._pattern = re.compile(regex)
        self._keep_previous = keep_previous
        self._bookmarks = {}    # name -> totals at the previous update
        self._latest = {}       # name -> _Moments of its latest interval with data
        self.update()
        self._latest = {}

    def names(self):
        """list of str: reported names matching the regex, in the order they were first reported."""
        return [name for name in _counters if self._pattern.fullmatch(name)]

    def update(self):
        """Start a new interval: collect what all processes reported since the previous one."""
        latest = dict(self._latest) if self._keep_previous else {}
        for name, totals in _fold(self.names()).items():
            interval = totals.minus(self._bookmarks.get(name, _NOTHING))
            self._bookmarks[name] = totals
            if interval.count:
                latest[name] = interval
        self._latest = latest

    def _moments(self, name):
        return self._latest.get(name, _NOTHING)

    def num(self, name):
        """int: number of scalars in the latest interval (0 for an unknown or empty name)."""
        return int(self._moments(name).count)

    def mean(self, name):
        """float: their mean; NaN if there were none."""
        return self._moments(name).mean()

    def std(self, name):
        """float: their population standard deviation; NaN if none or the mean is not finite, 0 for one."""
        return self._moments(name).std()

    def as_dict(self):
        """EasyDict {name: EasyDict(num=int, mean=float, std=float)} for every name in `names()`."""
        table = dnnlib.EasyDict()
        for name in self.names():
            moments = self._moments(name)
            table[name] = dnnlib.EasyDict(num=int(moments.count), mean=moments.mean(), std=moments.std())
        return table

    def __getitem__(self, name):
        """collector[name] is collector.mean(name)."""
        return self.mean(name)

#----------------------------------------------------------------------------
