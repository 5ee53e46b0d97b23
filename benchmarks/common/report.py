"""What every benchmark prints and writes: command, seeds, versions, wall time, paper vs ours.

`results.json` (written by `Report.finish`) has the keys
`benchmark, title, mode, command, seeds, settings, environment, runs, results, comparison,
figures, wall_sec`; `runs` lists each train.py command with its run folder and wall time,
`comparison` the paper's figure beside ours (metric, paper, ours, target, met).
"""

import argparse
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np
import PIL
import torch

from . import REPO_ROOT

RESULT_KEYS = ('benchmark', 'title', 'mode', 'command', 'seeds', 'settings', 'environment', 'runs', 'results',
               'comparison', 'figures', 'wall_sec')


def make_parser(doc, bench_id):
    """argparse parser of a benchmark script: its docstring as help, plus the common options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0], epilog='\n'.join(doc.splitlines()[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, bench_id)
    return parser


def benchmark_main(argv, parse_args, run):
    """`run(args, argv)` for the parsed command line (sys.argv[1:] when argv is None), with one torch thread."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    with one_thread():
        return run(args, argv)


def protocol(args, protocols):
    """(the chosen protocol's settings without 'seeds', the seeds: --seeds or the protocol's)."""
    proto = dict(protocols[mode_name(args)])
    default_seeds = proto.pop('seeds')
    return proto, list(args.seeds or default_seeds)


def add_common_args(parser, bench_id):
    """--quick, --out, --seeds, --parallel and the hidden --smoke (a few iterations, for the tests)."""
    parser.add_argument('--quick', action='store_true', help='short protocol: a few minutes on 2 CPU cores')
    parser.add_argument('--out', default=os.path.join('results', bench_id), metavar='DIR',
                        help=f'results folder (default: results/{bench_id})')
    parser.add_argument('--seeds', type=_seed_list, default=None, metavar='LIST',
                        help='training seeds, e.g. 0,1,2 (default: set by the protocol)')
    parser.add_argument('--parallel', type=positive_int, default=1, metavar='N',
                        help='train.py runs at once (default 1; each uses one thread)')
    parser.add_argument('--reuse', action='store_true',
                        help='evaluate the runs already in --out whose train.py command is unchanged, '
                             'instead of training them again')
    parser.add_argument('--smoke', action='store_true', help=argparse.SUPPRESS)


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: expected an integer >= 1')
    return value


def _seed_list(text):
    try:
        seeds = [int(part) for part in text.split(',') if part.strip() != '']
    except ValueError:
        raise argparse.ArgumentTypeError(f'--seeds={text!r}: expected comma-separated integers, e.g. 0,1,2') from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f'--seeds={text!r}: expected one or more integers >= 0')
    return seeds


@contextlib.contextmanager
def one_thread():
    """Run the block with one torch thread: the evaluation networks are tiny, and more threads only
    contend for the cores with the training subprocesses (which get OMP_NUM_THREADS=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mode_name(args):
    """'smoke', 'quick' or 'full' from the parsed flags (--smoke wins)."""
    return 'smoke' if args.smoke else ('quick' if args.quick else 'full')


def git_commit():
    """Short commit hash of the checkout (with '+changes' when the tree is dirty), or 'unknown'."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return head + ('+changes' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def environment():
    """Versions and machine facts recorded with every result."""
    return dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                pillow=PIL.__version__, platform=platform.platform(), cpu_count=os.cpu_count(),
                omp_num_threads_children=os.environ.get('OMP_NUM_THREADS', '1'), commit=git_commit())


def _display(value):
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


def format_table(rows, columns):
    """Plain-text table of `rows` (dicts) with the given column keys."""
    cells = [[str(col) for col in columns]] + [[_display(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ['  '.join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    lines.insert(1, '  '.join('-' * width for width in widths))
    return '\n'.join(lines)


class Report:
    """Collects one benchmark's record; prints the header at once and the comparison at the end."""

    def __init__(self, bench_id, title, args, seeds, settings, script, argv):
        self.start = time.time()
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.data = dict(benchmark=bench_id, title=title, mode=mode_name(args),
                         command=shlex.join(['python', os.path.relpath(os.path.abspath(script), REPO_ROOT)] + argv),
                         seeds=list(seeds), settings=settings, environment=environment(), runs=[], results={},
                         comparison=[], figures=[], wall_sec=None)
        env = self.data['environment']
        print(f'== {bench_id}: {title} ({self.data["mode"]} protocol)')
        print(f'command: {self.data["command"]}')
        print(f'seeds:   {", ".join(map(str, seeds))}')
        print(f'versions: python {env["python"]}, torch {env["torch"]}, numpy {env["numpy"]}, '
              f'pillow {env["pillow"]}; commit {env["commit"]}; {env["cpu_count"]} CPUs')
        print(f'results: {self.out}', flush=True)

    def path(self, name):
        return os.path.join(self.out, name)

    def add_runs(self, jobs):
        for job in jobs:
            self.data['runs'].append(dict(name=job.name, command=job.command, run_dir=job.run_dir,
                                          wall_sec=round(job.wall_sec, 2)))

    def add_figure(self, path):
        self.data['figures'].append(os.path.relpath(path, self.out))
        return path

    def compare(self, metric, paper, ours, target, met=None):
        """One line of the paper-vs-ours table; `met` True/False when the target can be checked."""
        self.data['comparison'].append(dict(metric=metric, paper=paper, ours=ours, target=target, met=met))

    def finish(self, results):
        """Store `results`, write results.json, print the comparison and the wall time."""
        self.data['results'] = results
        self.data['wall_sec'] = round(time.time() - self.start, 2)
        path = self.path('results.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.data, f, indent=2)
        print()
        print('Paper vs ours:')
        print(format_table(self.data['comparison'], ['metric', 'paper', 'ours', 'target', 'met']))
        print()
        for name in self.data['figures']:
            print(f'figure: {os.path.join(self.out, name)}')
        print(f'wall time: {self.data["wall_sec"]:.1f} s; results: {path}', flush=True)
        return path
