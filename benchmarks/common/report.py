"""A benchmark's command line, threads, printed header, paper-vs-ours table and results.json.

Every script builds its parser with `make_parser`, runs its body through `benchmark_main` (which
fixes the thread count here and in the train.py children for the duration) and records into one
`Report`: settings, the train.py runs and other commands, results, comparison rows, figures.
`Report.save` writes results.json atomically; the scripts also call it between long runs, so a
stopped benchmark keeps what it measured.

results.json has one of two layouts, kept from the time when the 2-D and the image benchmarks
had a framework each, so that earlier results and their readers stay valid. Both render the same
record and differ in key names only:
- 'toy' (Q1, Q2, Q3, Q5): benchmark, title, mode, command, seeds, settings, environment, runs
  (name, command, run_dir, wall_sec of every train.py run), results, comparison (rows of metric,
  paper, ours, target, met), figures, wall_sec;
- 'image' (Q4, Q6, Q7, P2-P4): benchmark, title, mode, command, seeds, versions (= environment),
  threads, load_average_start, settings, results, comparison (rows of what, paper, ours, goal,
  met), commands (every command run), figures, wall_time_s, load_average_end.
"""

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np
import PIL
import torch

from stylegan_plus.io import atomic

from . import REPO_ROOT

MODES = ('smoke', 'quick', 'full')
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


def write_json(path, data):
    """Write `data` as indented JSON to `path` atomically (temporary file, then rename), creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(data, indent=2)
    atomic.write_atomic(path, lambda f: f.write(text.encode('utf-8')))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Key names of one results.json layout: top-level `keys` in order (`renamed`: key -> record
    field when they differ) and the five fields of a comparison row (label, paper, ours, goal, met)."""
    keys: tuple
    row: tuple
    renamed: dict = dataclasses.field(default_factory=dict)


_HEAD = ('benchmark', 'title', 'mode', 'command', 'seeds')
LAYOUTS = {
    'toy': Layout(keys=_HEAD + ('settings', 'environment', 'runs', 'results', 'comparison', 'figures', 'wall_sec'),
                  row=('metric', 'paper', 'ours', 'target', 'met')),
    'image': Layout(keys=_HEAD + ('versions', 'threads', 'load_average_start', 'settings', 'results', 'comparison',
                                  'commands', 'figures', 'wall_time_s', 'load_average_end'),
                    row=('what', 'paper', 'ours', 'goal', 'met'),
                    renamed=dict(versions='environment', wall_time_s='wall_sec')),
}
RESULT_KEYS = LAYOUTS['toy'].keys      # the toy layout's keys (what tests/benchmarks/test_benchmarks_toy.py checks)

#----------------------------------------------------------------------------
# Command line.


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _bounded_int(text, 1)


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0)


def _bounded_int(text, lowest):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < lowest:
        raise argparse.ArgumentTypeError(f'{text!r}: expected an integer >= {lowest}')
    return value


def seed_list(text):
    """argparse type: comma-separated integers >= 0, e.g. '0,1,2' -> [0, 1, 2]."""
    try:
        seeds = [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f'{text!r}: expected comma-separated integers >= 0, e.g. 0,1,2')
    return seeds


def name_list(allowed):
    """argparse type: comma-separated names out of `allowed` -> list of them in `allowed`'s order."""
    allowed = list(allowed)

    def parse(text):
        names = [name.strip() for name in text.split(',') if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f'{text!r}: unknown or empty; choose from {",".join(allowed)}')
        return [name for name in allowed if name in names]
    return parse


def make_parser(doc, bench_id, runs=False):
    """argparse parser of a benchmark: first docstring line as description, the rest as epilog.

    Options of every benchmark: --quick, --out (default results/<bench_id>), --threads and the
    hidden --smoke (seconds; for the test suite, numbers meaningless). runs=True adds the options
    of benchmarks that train several runs side by side: --seeds, --parallel, --reuse.
    """
    first, _, rest = doc.strip().partition('\n')
    parser = argparse.ArgumentParser(description=first, epilog=rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='short protocol: a few minutes on 2 CPU cores')
    parser.add_argument('--out', default=os.path.join('results', bench_id), metavar='DIR',
                        help='folder for results.json, figures, runs and logs (default: %(default)s)')
    parser.add_argument('--threads', type=non_negative_int, default=1, metavar='N',
                        help='torch threads here and OMP_NUM_THREADS of every child process; 0 = leave both '
                             'as they are (default: %(default)s)')
    parser.add_argument('--smoke', action='store_true', help=argparse.SUPPRESS)
    if runs:
        parser.add_argument('--seeds', type=seed_list, default=None, metavar='LIST',
                            help='training seeds, e.g. 0,1,2 (default: set by the protocol)')
        parser.add_argument('--parallel', type=positive_int, default=1, metavar='N',
                            help='train.py runs at once (default: %(default)s)')
        parser.add_argument('--reuse', action='store_true',
                            help='evaluate the runs already in --out whose train.py command is unchanged, '
                                 'instead of training them again')
    return parser


def mode_name(args):
    """'smoke', 'quick' or 'full' from the parsed flags (--smoke wins)."""
    return 'smoke' if args.smoke else ('quick' if args.quick else 'full')


def protocol(args, protocols):
    """(a copy of the chosen protocol without 'seeds', the seeds: --seeds when given, else the protocol's or [0])."""
    proto = dict(protocols[mode_name(args)])
    default_seeds = proto.pop('seeds', [0])
    return proto, list(getattr(args, 'seeds', None) or default_seeds)


@contextlib.contextmanager
def use_threads(count):
    """For the block: `count` torch threads here and OMP/MKL_NUM_THREADS=count for child processes.

    One thread is the default because the networks are tiny: on a shared 2-core machine two
    threads per process oversubscribe the cores (train.py ran 5-9x slower that way). count 0
    leaves both alone. Everything is restored afterwards, so tests may call benchmarks in-process.
    """
    if not count:
        yield
        return
    before_torch = torch.get_num_threads()
    before_env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch.set_num_threads(count)
    os.environ.update({name: str(count) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        for name, value in before_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def benchmark_main(argv, parse_args, run):
    """`run(args, argv)` for the parsed command line (sys.argv[1:] when argv is None), under `use_threads`."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parse_args(argv)
    with use_threads(args.threads):
        return run(args, argv)

#----------------------------------------------------------------------------
# What the numbers depend on.


def git_commit():
    """Short commit hash of the checkout (with '+changes' when tracked files differ), or 'unknown'."""
    def git(*words):
        return subprocess.run(['git', *words], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        return git('rev-parse', '--short', 'HEAD') + ('+changes' if git('status', '--porcelain', '-uno') else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def _installed_version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_half_flags():
    # CPUs with native fp16/bf16 units (AVX512-FP16, AMX) run fp16 far less slowly than older ones.
    wanted = {'f16c', 'avx512_fp16', 'avx512_bf16', 'amx_bf16', 'amx_tile'}
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return None
    return sorted(wanted & set(flags))


def load_average():
    """The 1/5/15-minute load averages (timings on a shared machine depend on them), or None."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment():
    """Software versions and machine facts recorded with every result."""
    return dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                pillow=PIL.__version__, **{'scikit-learn': _installed_version('scikit-learn')},
                cuda=torch.version.cuda if torch.cuda.is_available() else None, platform=platform.platform(),
                cpu_count=os.cpu_count(), cpu_half_precision_flags=_cpu_half_flags(),
                omp_num_threads_children=os.environ.get('OMP_NUM_THREADS'), commit=git_commit())

#----------------------------------------------------------------------------
# Numbers.


def to_jsonable(value):
    """numpy/torch scalars and arrays, tuples, NaN -> plain JSON values (NaN and inf become None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def mean_std(values):
    """dict(mean, std, values) over e.g. seeds (population std; None entries skipped; mean/std None if empty)."""
    kept = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return dict(mean=None, std=None, values=[])
    return dict(mean=float(kept.mean()), std=float(kept.std()), values=[float(v) for v in kept])


def fmt(value, digits=3):
    """Short text for a number: integers as is, floats with `digits` decimals (`digits` significant
    digits from 1e4 up), None as 'n/a'."""
    if value is None:
        return 'n/a'
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    return f'{value:.{digits}g}' if abs(value) >= 1e4 else f'{value:.{digits}f}'

#----------------------------------------------------------------------------


class Report:
    """The record of one benchmark run; prints its header at once and the comparison at the end.

    bench_id, title: names in results.json and the header; args: the parsed command line (--out,
    --threads, the mode flags); seeds: the training seeds; script, argv: the script's `__file__`
    and its arguments (recorded as `python -m benchmarks.<name> ...`); layout: 'toy' or 'image'
    (see the module docstring); settings: the protocol's settings (more via `setting`).
    """

    def __init__(self, bench_id, title, args, seeds, *, script, argv, layout, settings=None):
        self.layout = LAYOUTS[layout]
        self.mode = mode_name(args)
        self.out = os.path.abspath(args.out)
        self.threads = args.threads or torch.get_num_threads()
        self.start = time.time()
        try:
            os.makedirs(self.out, exist_ok=True)
        except OSError as err:
            raise SystemExit(f'--out={args.out}: cannot create that folder ({err.strerror}); '
                             f'give a folder that can be created or written') from None
        module = 'benchmarks.' + os.path.splitext(os.path.basename(script))[0]
        self.record = dict(benchmark=bench_id, title=title, mode=self.mode,
                           command=shlex.join(['python', '-m', module, *argv]), seeds=list(seeds),
                           settings=dict(settings or {}), environment=environment(), threads=self.threads,
                           load_average_start=load_average(), runs=[], commands=[], results={}, comparison=[],
                           figures=[], wall_sec=None, load_average_end=None)
        self._print_header()

    def _print_header(self):
        rec, env = self.record, self.record['environment']
        print(f'== {rec["benchmark"]}: {rec["title"]}  [{self.mode}]')
        print(f'command:  {rec["command"]}')
        print(f'seeds:    {", ".join(map(str, rec["seeds"]))}')
        print(f'versions: python {env["python"]}, torch {env["torch"]}, numpy {env["numpy"]}, pillow {env["pillow"]}, '
              f'scikit-learn {env["scikit-learn"]}; commit {env["commit"]}; {env["cpu_count"]} CPUs')
        print(f'threads:  {self.threads} here and in each child   load average: {rec["load_average_start"]}')
        print(f'output:   {self.out}')
        if self.mode == 'smoke':
            print('SMOKE MODE: a seconds-long wiring check; the numbers mean nothing.')
        print(flush=True)

    @property
    def data(self):
        """The record in this benchmark's results.json layout, as plain JSON values."""
        rendered = {key: self.record[self.layout.renamed.get(key, key)] for key in self.layout.keys}
        rendered['comparison'] = [dict(zip(self.layout.row, row)) for row in self.record['comparison']]
        return to_jsonable(rendered)

    def path(self, name):
        """`name` inside the output folder."""
        return os.path.join(self.out, name)

    def setting(self, **values):
        self.record['settings'].update(values)

    def result(self, **values):
        self.record['results'].update(values)

    def command(self, argv):
        """Record a command run outside `runner` (argv list or shell text)."""
        self.record['commands'].append(argv if isinstance(argv, str) else shlex.join(str(a) for a in argv))

    def add_runs(self, jobs):
        """Record finished `runner.TrainJob`s (their commands, run folders and wall times)."""
        for job in jobs:
            self.record['runs'].append(dict(name=job.name, command=job.command, run_dir=job.run_dir,
                                            wall_sec=round(job.wall_sec, 2)))
            self.record['commands'].append(job.command)

    def figure(self, path):
        """Record a written figure (relative to the output folder when inside it); returns path."""
        rel = os.path.relpath(path, self.out)
        self.record['figures'].append(path if rel.startswith('..') else rel)
        return path

    def compare(self, label, paper, ours, goal, met=None):
        """One row of the paper-vs-ours table; `met` True/False when the goal can be judged (never in smoke mode)."""
        self.record['comparison'].append((label, paper, ours, goal, None if self.mode == 'smoke' else met))

    def save(self):
        """Write results.json as it stands (atomically); returns its path."""
        path = self.path('results.json')
        write_json(path, self.data)
        return path

    def finish(self, results=None):
        """Add `results`, print the comparison, figures and wall time, write results.json; returns its path."""
        self.record['results'].update(results or {})
        self.record['wall_sec'] = round(time.time() - self.start, 2)
        self.record['load_average_end'] = load_average()
        print(f'\n== {self.record["benchmark"]} [{self.mode}]: paper vs ours')
        for label, paper, ours, goal, met in self.record['comparison']:
            verdict = {True: 'MET', False: 'NOT MET', None: '-'}[None if met is None else bool(met)]
            print(f'  {label}\n      paper: {paper}\n      ours:  {ours}\n      goal:  {goal}  -> {verdict}')
        for name in self.record['figures']:
            print(f'figure: {os.path.join(self.out, name)}')
        path = self.save()
        print(f'wall time: {self.record["wall_sec"]:.1f} s; results: {path}', flush=True)
        return path
