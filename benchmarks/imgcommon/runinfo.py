"""Command line, printed header, paper-vs-ours table and results.json of one benchmark run."""

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time

import numpy as np
import torch

# 'smoke', 'quick' or 'full' from the parsed flags (--smoke wins): the toy benchmarks' rule.
from benchmarks.common.report import mode_name as mode_of  # noqa: F401  (used by the scripts)

MODES = ('smoke', 'quick', 'full')


def base_parser(bench_id, description):
    """argparse parser with the options every benchmark shares.

    --quick (a few minutes on 2 cores), --out (default results/<bench_id>/), --threads (torch
    threads here and in every train.py child; 1 by default, see `configure_threads`), and the
    hidden --smoke (seconds; only for the test suite, numbers meaningless).
    """
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='short protocol: a few minutes on 2 CPU cores')
    parser.add_argument('--out', default=os.path.join('results', bench_id), metavar='DIR',
                        help='output folder for results.json and the figures (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=1, metavar='N',
                        help='torch CPU threads here and in train.py (OMP_NUM_THREADS); 0 = torch default '
                             '(default: %(default)s)')
    parser.add_argument('--smoke', action='store_true', help=argparse.SUPPRESS)
    return parser


def configure_threads(threads):
    """Use `threads` torch threads here and export OMP/MKL_NUM_THREADS for child processes.

    Why 1 by default: the networks here are tiny, and on a shared 2-core machine two intra-op
    threads per process oversubscribe the cores; we measured train.py 5-9x slower that way.
    threads <= 0 leaves torch's default alone.
    """
    if threads is not None and threads < 0:
        raise ValueError(f'--threads={threads}: must be >= 0')
    if not threads:
        return torch.get_num_threads()
    torch.set_num_threads(threads)
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[name] = str(threads)
    return threads


def versions():
    """Software versions that matter for the numbers: dict name -> version string."""
    found = dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                 platform=platform.platform(), cpu_count=os.cpu_count())
    try:
        import sklearn  # pylint: disable=import-outside-toplevel
        found['scikit-learn'] = sklearn.__version__
    except ImportError:
        found['scikit-learn'] = None
    found['cuda'] = torch.version.cuda if torch.cuda.is_available() else None
    found['cpu_half_precision_flags'] = _cpu_half_flags()
    return found


def _load_average():
    # Timings on a shared machine depend on what else runs: recorded beside every result.
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_half_flags():
    # CPUs with native fp16/bf16 units (AVX512-FP16, AMX) run fp16 far less slowly than older ones.
    try:
        with open('/proc/cpuinfo', 'rt') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return None
    return sorted(flag for flag in set(flags) if flag in ('f16c', 'avx512_fp16', 'avx512_bf16', 'amx_bf16', 'amx_tile'))


def to_jsonable(value):
    """numpy/torch scalars and arrays, tuples and NaN -> plain JSON values (NaN/inf become None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


class BenchmarkRun:
    """One run of a benchmark script: prints the header, collects results, writes results.json.

    results.json holds: benchmark, mode, command, seeds, versions, threads, settings, results,
    comparison (rows of what/paper/ours/goal/met), commands (every train.py command run),
    wall_time_s, figures.
    """

    def __init__(self, bench_id, title, args, seeds):
        self.bench_id = bench_id
        self.mode = mode_of(args)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.threads = configure_threads(args.threads)
        self.start = time.time()
        self.data = dict(benchmark=bench_id, title=title, mode=self.mode,
                         command=shlex.join([sys.executable] + sys.argv), seeds=list(seeds), versions=versions(),
                         threads=self.threads, load_average_start=_load_average(), settings={}, results={},
                         comparison=[], commands=[], figures=[])
        print(f'== {bench_id}: {title}  [{self.mode}]')
        print(f'command:  {self.data["command"]}')
        print(f'seeds:    {list(seeds)}')
        print('versions: ' + ', '.join(f'{k} {v}' for k, v in self.data['versions'].items()))
        print(f'threads:  {self.threads}   output: {self.out}   load average: {self.data["load_average_start"]}')
        if self.mode == 'smoke':
            print('SMOKE MODE: a seconds-long wiring check; the numbers mean nothing.')
        print()

    def path(self, name):
        return os.path.join(self.out, name)

    def setting(self, **values):
        self.data['settings'].update(to_jsonable(values))

    def result(self, **values):
        self.data['results'].update(to_jsonable(values))

    def command(self, argv):
        self.data['commands'].append(shlex.join(argv))

    def figure(self, path):
        """Record a written figure (path relative to the output folder when inside it)."""
        rel = os.path.relpath(path, self.out)
        self.data['figures'].append(rel if not rel.startswith('..') else path)

    def compare(self, what, paper, ours, goal, met):
        """One row of the paper-vs-ours table; `met` True/False/None (None = not judged; always in smoke mode)."""
        if self.mode == 'smoke':
            met = None
        self.data['comparison'].append(to_jsonable(dict(what=what, paper=paper, ours=ours, goal=goal, met=met)))

    def finish(self):
        """Print the comparison and wall time, write results.json; returns its path."""
        wall = time.time() - self.start
        self.data['wall_time_s'] = round(wall, 1)
        self.data['load_average_end'] = _load_average()
        print()
        print(f'== {self.bench_id} [{self.mode}]: paper vs ours')
        for row in self.data['comparison']:
            verdict = {True: 'MET', False: 'NOT MET', None: '-'}[row['met']]
            print(f'  {row["what"]}\n      paper: {row["paper"]}\n      ours:  {row["ours"]}\n'
                  f'      goal:  {row["goal"]}  -> {verdict}')
        print(f'wall time: {wall:.1f} s')
        path = self.save()
        print(f'wrote {path}')
        return path

    def save(self):
        """Write results.json as it stands (also called between runs, so a stopped run keeps its results)."""
        path = self.path('results.json')
        with open(path, 'wt') as f:
            json.dump(to_jsonable(self.data), f, indent=2)
        return path


def fmt(value, digits=3):
    """Short text for a number (None -> 'n/a')."""
    if value is None:
        return 'n/a'
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f'{float(value):.{digits}g}' if abs(float(value)) >= 1e4 else f'{float(value):.{digits}f}'


def mean_std(values):
    """(mean, std) of a list of numbers (population std; (None, None) when empty)."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std())
