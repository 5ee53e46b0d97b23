"""Per-tick bookkeeping: the status line, tick statistics, phase timers, the log outputs, and the
live progress shown between ticks.

The status line has the official layout
`tick N kimg X time T sec/tick S sec/kimg K maintenance M cpumem C gpumem G augment P`, and every
value in it is also reported to `training_stats` under the official names, so it reaches
`stats.jsonl` and TensorBoard.

Between ticks (`LiveProgress`, rank 0): on a terminal, a tqdm bar over the run's kimg with
sec/kimg, the ETA and the latest G/D losses and plugin terms; elsewhere (a pipe, a file, CI) a
plain `progress:` line at most every 30 s. Both go to the console only, never into log.txt, whose
tick lines tools parse.
"""

import importlib
import json
import os
import sys
import time

import psutil
import torch

import dnnlib
from stylegan_plus.io.plot_stats import plugin_terms
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


def tensorboard_layout(names):
    """TensorBoard custom-scalars layout {'Plugin <name>': {term: ['Multiline', [tag]]}} of the plugin terms.

    The scalars keep their official tags (`Loss/clr/rec` sits with `Loss/G/loss` under "Loss" in
    the SCALARS tab); this layout adds one CUSTOM SCALARS category per loss plugin. Empty when
    the run has no plugin terms.
    """
    return {f'Plugin {plugin}': {tag.split('/', 2)[2]: ['Multiline', [tag]] for tag in tags}
            for plugin, tags in plugin_terms(names).items()}


class RunLogs:
    """`stats.jsonl` (append) and TensorBoard events (when `torch.utils.tensorboard` imports), rank 0."""

    def __init__(self, run_dir, enabled):
        self.jsonl = None
        self.tfevents = None
        self.layout_written = False
        if not enabled:
            return
        self.jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at')
        try:
            # import_module reads sys.modules first (`import a.b as c` reads the attribute of `a`),
            # so a stand-in module put there, as the tests do, is honoured.
            tensorboard = importlib.import_module('torch.utils.tensorboard')
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
            if not self.layout_written:
                # Plugin terms are all reported in the first iteration, so the first tick knows them.
                layout = tensorboard_layout(list(stats))
                if layout:
                    self.tfevents.add_custom_scalars(layout)
                self.layout_written = True
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


class LiveProgress:
    """Progress between ticks for rank 0: a tqdm bar on a terminal, plain lines otherwise.

    `update(cur_nimg)` is called after every iteration and returns at once unless `refresh_sec`
    (bar) or `plain_sec` (plain lines) have passed since the last display or tick; `tick()` goes
    before a tick's status line, `close()` at the end. With `terms`, the latest means of the G/D
    losses and the plugin terms (`Loss/<group>/<term>`) are shown, read by a collector of their own
    (so the tick statistics are untouched); only for single-process runs, because reading the
    statistics is a collective operation in multi-process runs and the display runs on rank 0 only.
    """

    def __init__(self, total_kimg, start_nimg, enabled=True, terms=True, stream=None, refresh_sec=1.0,
                 plain_sec=30.0, max_terms=7):
        self.enabled = enabled
        self.total_kimg = float(total_kimg)
        self.stream = stream if stream is not None else console_stream()
        self.tty = bool(getattr(self.stream, 'isatty', lambda: False)())
        self.interval = refresh_sec if self.tty else plain_sec
        self.max_terms = max_terms
        self.start_nimg = start_nimg
        self.start_time = self.last_time = time.time()
        self.collector = training_stats.Collector(regex=r'Loss/[^/]+/.+') if enabled and terms else None
        self.bar = None
        if enabled and self.tty:
            from tqdm import tqdm  # pylint: disable=import-outside-toplevel
            self.bar = tqdm(total=self.total_kimg, initial=start_nimg / 1e3, unit='kimg', file=self.stream,
                            dynamic_ncols=True, leave=False, mininterval=0, miniters=0,  # update() throttles
                            bar_format='{percentage:3.0f}%|{bar}| {n:.1f}/{total:g} kimg '
                                       '[{elapsed}<{remaining}, {rate_inv_fmt}{postfix}]')

    def terms_text(self):
        """'G 0.812 D 1.26 clr/latent 0.904 ...' (at most `max_terms`, the G and D losses first)
        from the statistics reported since the last display."""
        if self.collector is None:
            return ''
        self.collector.update()
        shown = []
        for name in self.collector.names():
            group, term = name.split('/', 2)[1:]
            main_loss = group in ('G', 'D') and term == 'loss'
            # Scores, signs and the regularisers are not what the bar is for.
            baseline_extra = group in ('scores', 'signs') or (group in ('G', 'D') and not main_loss)
            if baseline_extra or self.collector.num(name) == 0:
                continue
            label = group if main_loss else f'{group}/{term}'
            shown.append((not main_loss, f'{label} {self.collector.mean(name):.3g}'))
        shown.sort(key=lambda entry: entry[0])     # stable: otherwise in the order first reported
        return ' '.join(text for _later, text in shown[:self.max_terms])

    def update(self, cur_nimg):
        """After an iteration: redraw the bar or print a plain line when it is time (cur_nimg: images so far)."""
        if not self.enabled:
            return
        now = time.time()
        if now - self.last_time < self.interval:
            return
        self.last_time = now
        if self.bar is not None:
            self.bar.set_postfix_str(self.terms_text(), refresh=False)
            self.bar.update(cur_nimg / 1e3 - self.bar.n)
        else:
            self.stream.write(self.plain_line(cur_nimg, now) + '\n')
            self.stream.flush()

    def plain_line(self, cur_nimg, now):
        """'progress: kimg 37.5/120 (31 %), 1.92 sec/kimg, ETA 2m 38s; G 0.81 D 1.26 ...'."""
        kimg = cur_nimg / 1e3
        done = (cur_nimg - self.start_nimg) / 1e3
        sec_per_kimg = (now - self.start_time) / done if done > 0 else float('nan')
        eta = max(self.total_kimg - kimg, 0) * sec_per_kimg
        eta_text = dnnlib.util.format_time(eta) if eta == eta else '?'
        terms = self.terms_text()
        return (f'progress: kimg {kimg:.1f}/{self.total_kimg:g} ({100 * kimg / max(self.total_kimg, 1e-9):.0f} %), '
                f'{sec_per_kimg:.2f} sec/kimg, ETA {eta_text}' + (f'; {terms}' if terms else ''))

    def tick(self):
        """Call before a tick prints its line: the bar leaves the screen (the next update redraws it),
        and the plain-line clock restarts, since the tick line itself shows progress."""
        self.last_time = time.time()
        if self.bar is not None:
            self.bar.clear()

    def close(self):
        """Remove the bar at the end of training."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def console_stream():
    """The console: the stdout under dnnlib's Logger (which copies everything into log.txt), else stdout."""
    out = sys.stdout
    return getattr(out, 'stdout', out) if isinstance(out, dnnlib.util.Logger) else out
