"""Progress reporting for metric computation (re-exported by `metric_utils` as the official name).

A `ProgressMonitor` covers one stage (e.g. extracting features of 50k generated images): a tqdm
bar and, at the end, one line with the throughput in images/s when `verbose`; an optional
`progress_fn(cur, total)` callback receives the overall progress, each stage mapping its own
fraction into the slice [pfn_lo, pfn_hi] of `pfn_total`.
"""

import sys
import time

import dnnlib


class ProgressMonitor:
    """Progress of one metric stage; `sub()` derives the monitor of a nested stage."""

    def __init__(self, tag=None, num_items=None, flush_interval=1000, verbose=False, progress_fn=None, pfn_lo=0,
                 pfn_hi=1000, pfn_total=1000, *, unit='images'):
        self.tag = tag
        self.unit = unit
        self.num_items = num_items
        self.flush_interval = flush_interval  # tqdm throttles redraws itself; kept for the official signature
        self.verbose = verbose
        self.progress_fn = progress_fn
        self.pfn_lo, self.pfn_hi, self.pfn_total = pfn_lo, pfn_hi, pfn_total
        self.start_time = time.time()
        self.cur_items = 0
        self._bar = None
        self._finished = False
        if progress_fn is not None:
            progress_fn(pfn_lo, pfn_total)

    def _open_bar(self):
        from tqdm import tqdm
        self._bar = tqdm(total=self.num_items, desc=self.tag, unit=self.unit, file=sys.stderr, leave=False,
                         dynamic_ncols=True)

    def update(self, cur_items):
        """Report that `cur_items` items of this stage are done (a running total, not an increment)."""
        cur_items = int(cur_items)
        if self.verbose and self.tag is not None and self._bar is None and not self._finished:
            self._open_bar()
        if self._bar is not None:
            self._bar.update(cur_items - self.cur_items)
        self.cur_items = cur_items
        if self.progress_fn is not None and self.num_items:
            fraction = min(cur_items / self.num_items, 1.0)
            self.progress_fn(self.pfn_lo + (self.pfn_hi - self.pfn_lo) * fraction, self.pfn_total)
        if self.num_items is not None and cur_items >= self.num_items:
            self.finish()

    def finish(self):
        """Close the bar and print `tag: N <unit> in T (R <unit>/s)` once (verbose only)."""
        if self._finished:
            return
        self._finished = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.verbose and self.tag is not None and self.cur_items > 0:
            elapsed = max(time.time() - self.start_time, 1e-9)
            print(f'{self.tag}: {self.cur_items} {self.unit} in {dnnlib.util.format_time(elapsed)} '
                  f'({self.cur_items / elapsed:.1f} {self.unit}/s)', flush=True)

    def sub(self, tag=None, num_items=None, flush_interval=1000, rel_lo=0, rel_hi=1, *, unit='images'):
        """Monitor for a nested stage covering the fraction [rel_lo, rel_hi] of this one."""
        span = self.pfn_hi - self.pfn_lo
        return ProgressMonitor(tag=tag, num_items=num_items, flush_interval=flush_interval, verbose=self.verbose,
                               progress_fn=self.progress_fn, pfn_lo=self.pfn_lo + span * rel_lo,
                               pfn_hi=self.pfn_lo + span * rel_hi, pfn_total=self.pfn_total, unit=unit)
