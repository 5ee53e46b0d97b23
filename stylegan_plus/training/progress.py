"""Per-tick bookkeeping: the status line, tick statistics, phase timers, and the log outputs.

The status line has the official layout
`tick N kimg X time T sec/tick S sec/kimg K maintenance M cpumem C gpumem G augment P`, and every
value in it is also reported to `training_stats` under the official names, so it reaches
`stats.jsonl` and TensorBoard.
"""

import json
import os
import time

import psutil
import torch

import dnnlib
from torch_utils import training_stats


class PhaseTimer:
    """Times phase executions: CUDA events on a CUDA device, wall-clock time elsewhere.

    `start(name)` / `stop(name)` around each execution; `report()` reports, once per tick, the
    duration in milliseconds of the latest execution of every phase (`Timing/<name>`), or an empty
    value for a phase that has not run, so every process reports the same names.
    """

    def __init__(self, phase_names, device):
        self.names = list(phase_names)
        self.cuda = device.type == 'cuda'
        self.device = device
        self._events = {}
        self._wall = {}
        self._last_ms = {}

    def start(self, name):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._events[name] = [event, None]
        else:
            self._wall[name] = time.perf_counter()

    def stop(self, name):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._events[name][1] = event
        else:
            self._last_ms[name] = (time.perf_counter() - self._wall[name]) * 1000

    def report(self):
        for name in self.names:
            value = []
            if self.cuda and name in self._events and self._events[name][1] is not None:
                start, end = self._events[name]
                end.synchronize()
                value = start.elapsed_time(end)
            elif not self.cuda and name in self._last_ms:
                value = self._last_ms[name]
            training_stats.report0('Timing/' + name, value)


def _peak_gpu_mem_gb(device):
    if device.type != 'cuda':
        return 0.0
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def status_line(*, cur_tick, cur_nimg, start_time, tick_start_time, tick_end_time, tick_start_nimg,
                maintenance_time, augment_p, device):
    """Report the tick's progress statistics (rank 0 contributes) and return the status line text."""
    report = training_stats.report0
    tick_sec = tick_end_time - tick_start_time
    total_sec = tick_end_time - start_time
    kimg_done = max(cur_nimg - tick_start_nimg, 1)
    rss_gb = psutil.Process(os.getpid()).memory_info().rss / 2**30
    fields = [
        ('tick', f"{report('Progress/tick', cur_tick):<5d}"),
        ('kimg', f"{report('Progress/kimg', cur_nimg / 1e3):<8.1f}"),
        ('time', f"{dnnlib.util.format_time(report('Timing/total_sec', total_sec)):<12s}"),
        ('sec/tick', f"{report('Timing/sec_per_tick', tick_sec):<7.1f}"),
        ('sec/kimg', f"{report('Timing/sec_per_kimg', tick_sec / kimg_done * 1e3):<7.2f}"),
        ('maintenance', f"{report('Timing/maintenance_sec', maintenance_time):<6.1f}"),
        ('cpumem', f"{report('Resources/cpu_mem_gb', rss_gb):<6.2f}"),
        ('gpumem', f"{report('Resources/peak_gpu_mem_gb', _peak_gpu_mem_gb(device)):<6.2f}"),
        ('augment', f"{report('Progress/augment', float(augment_p)):.3f}"),
    ]
    report('Timing/total_hours', total_sec / (60 * 60))
    report('Timing/total_days', total_sec / (24 * 60 * 60))
    return ' '.join(f'{label} {value}' for label, value in fields)


class RunLogs:
    """`stats.jsonl` (append) and TensorBoard events (when `torch.utils.tensorboard` imports), rank 0."""

    def __init__(self, run_dir, enabled):
        self.jsonl = None
        self.tfevents = None
        if not enabled:
            return
        self.jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at')
        try:
            import torch.utils.tensorboard as tensorboard # pylint: disable=import-outside-toplevel
            self.tfevents = tensorboard.SummaryWriter(run_dir)
        except ImportError as err:
            print(f'Skipping TensorBoard export ({err}).')

    def write(self, stats, metrics, cur_nimg, start_time):
        """One tick: stats = Collector.as_dict(), metrics = {name: value} of this tick's evaluations."""
        timestamp = time.time()
        if self.jsonl is not None:
            # Python's json writes NaN as a bare token, which is what the official files contain.
            self.jsonl.write(json.dumps(dict(stats, timestamp=timestamp)) + '\n')
            self.jsonl.flush()
        if self.tfevents is not None:
            step = int(cur_nimg / 1e3)
            walltime = timestamp - start_time
            for name, value in stats.items():
                self.tfevents.add_scalar(name, value.mean, global_step=step, walltime=walltime)
            for name, value in metrics.items():
                self.tfevents.add_scalar(f'Metrics/{name}', value, global_step=step, walltime=walltime)
            self.tfevents.flush()

    def close(self):
        if self.jsonl is not None:
            self.jsonl.close()
        if self.tfevents is not None:
            self.tfevents.close()
