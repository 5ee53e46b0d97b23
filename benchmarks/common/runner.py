"""Run `train.py` as a user would: a subprocess per run, its exact command printed and recorded.

Each job trains into its own `--outdir` (`<out>/runs/<job name>`), its console output goes to
`<out>/logs/<job name>.log`, and the run folder train.py created is returned. The 2-D networks
are tiny, so one thread per process is fastest (more threads only contend for the cores);
`OMP_NUM_THREADS=1` is set for the child unless the caller's environment already sets it.
"""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time

from . import REPO_ROOT

LOG_TAIL_LINES = 30
JOB_RECORD = 'job.json'


@dataclasses.dataclass
class TrainJob:
    """One train.py run: `name` (folder and log name), `args` (train.py arguments without --outdir)."""
    name: str
    args: list
    command: str = ''           # filled in when started: the shell command, relative to the repo root
    run_dir: str = ''           # filled in when done
    wall_sec: float = 0.0       # filled in when done


def child_env():
    """Environment of the training subprocesses: one compute thread each, unless set by the caller."""
    env = dict(os.environ)
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env.setdefault(name, '1')
    return env


def _display_path(path):
    rel = os.path.relpath(path, REPO_ROOT)
    return path if rel.startswith('..') else rel


def train_command(job, outdir):
    """(argv list, printable shell command) of a job writing into `outdir`."""
    argv = [sys.executable, 'train.py', f'--outdir={outdir}'] + [str(a) for a in job.args]
    threads = child_env()['OMP_NUM_THREADS']
    shown = [f'OMP_NUM_THREADS={threads}', 'python', 'train.py', f'--outdir={_display_path(outdir)}']
    shown += [_relative_arg(a) for a in job.args]
    return argv, shlex.join(shown)


def _relative_arg(arg):
    arg = str(arg)
    match = re.match(r'^(--[a-z0-9-]+=)(/.*)$', arg)
    return match.group(1) + _display_path(match.group(2)) if match else arg


def newest_run_dir(outdir):
    """The run folder with the highest leading number in `outdir`, or None."""
    best = None
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            match = re.match(r'^(\d+)-', name)
            if match and os.path.isdir(os.path.join(outdir, name)):
                if best is None or int(match.group(1)) > best[0]:
                    best = (int(match.group(1)), name)
    return None if best is None else os.path.join(outdir, best[1])


def _log_tail(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return ''.join(f.readlines()[-LOG_TAIL_LINES:])
    except OSError:
        return '(no log)'


class _Running:
    def __init__(self, job, out_root):
        self.job = job
        self.outdir = os.path.join(out_root, 'runs', job.name)
        self.log_path = os.path.join(out_root, 'logs', f'{job.name}.log')
        os.makedirs(self.outdir, exist_ok=True)
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        argv, job.command = train_command(job, self.outdir)
        print(f'[{job.name}] {job.command}', flush=True)
        self.log = open(self.log_path, 'w', encoding='utf-8')
        self.start = time.time()
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=child_env(), stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def finish(self):
        self.log.close()
        self.job.wall_sec = time.time() - self.start
        if self.proc.returncode != 0:
            raise RuntimeError(f'train.py failed for {self.job.name} (exit code {self.proc.returncode}); '
                               f'command:\n  {self.job.command}\nlast lines of {self.log_path}:\n'
                               f'{_log_tail(self.log_path)}')
        self.job.run_dir = newest_run_dir(self.outdir)
        if self.job.run_dir is None:
            raise RuntimeError(f'train.py wrote no run folder into {self.outdir} for {self.job.name}')
        print(f'[{self.job.name}] done in {self.job.wall_sec:.1f} s -> {_display_path(self.job.run_dir)}',
              flush=True)
        record = dict(command=self.job.command, run_dir=os.path.relpath(self.job.run_dir, self.outdir),
                      wall_sec=self.job.wall_sec)
        with open(os.path.join(self.outdir, JOB_RECORD), 'w', encoding='utf-8') as f:
            json.dump(record, f, indent=2)


def reuse_finished(job, out_root):
    """Fill in `job` from the record of an earlier run with the same command; True when there is one.

    The record (`runs/<name>/job.json`) is written when a run ends successfully.
    """
    outdir = os.path.join(out_root, 'runs', job.name)
    try:
        with open(os.path.join(outdir, JOB_RECORD), encoding='utf-8') as f:
            record = json.load(f)
    except (OSError, ValueError):
        return False
    _argv, command = train_command(job, outdir)
    run_dir = os.path.join(outdir, record.get('run_dir', ''))
    if record.get('command') != command or not os.path.isfile(os.path.join(run_dir, 'training_options.json')):
        return False
    job.command, job.run_dir, job.wall_sec = command, run_dir, float(record.get('wall_sec', 0))
    print(f'[{job.name}] reusing {_display_path(run_dir)} (same command, trained in {job.wall_sec:.1f} s)', flush=True)
    return True


def run_jobs(jobs, out_root, parallel=1, reuse=False):
    """Run the jobs, at most `parallel` at once; returns them with command, run_dir, wall_sec set.

    reuse: skip a job whose earlier run in `out_root` had the same command (`reuse_finished`).
    Raises RuntimeError (with the command and the end of its log) when a run fails; runs still
    going are stopped first.
    """
    pending = [job for job in jobs if not (reuse and reuse_finished(job, out_root))]
    running = []
    try:
        while pending or running:
            while pending and len(running) < max(1, int(parallel)):
                running.append(_Running(pending.pop(0), out_root))
            time.sleep(0.2)
            for item in [r for r in running if r.proc.poll() is not None]:
                running.remove(item)
                item.finish()
    finally:
        for item in running:
            if item.proc.poll() is None:
                item.proc.terminate()
                item.proc.wait()
            item.log.close()
    return list(jobs)


def toy_train_args(data, seed, kimg=None, nimg=None, ticks=40, extra=()):
    """train.py arguments of a CPU run on 2-D points: `--cfg=toy`, one data worker, no metrics.

    Length: `kimg` (int) or, for smoke tests, `nimg` images. About `ticks` progress ticks (one
    stats.jsonl line each); network snapshots only at the start and the end.
    """
    if (kimg is None) == (nimg is None):
        raise ValueError('give exactly one of kimg and nimg')
    total_kimg = kimg if kimg is not None else nimg / 1000
    length = [f'--kimg={int(kimg)}'] if kimg is not None else [f'--nimg={int(nimg)}']
    return ['--cfg=toy', f'--data={data}', '--device=cpu', '--metrics=none', '--workers=1', f'--seed={seed}',
            '--snap=1000000', f'--kimg-per-tick={total_kimg / ticks:g}'] + length + list(extra)
