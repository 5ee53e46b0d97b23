"""Run train.py as a user would: one subprocess a run, its exact command printed and recorded.

A `TrainJob` names a run and holds its train.py arguments (without --outdir). `run_jobs` trains
each into `<out>/runs/<name>/` (where train.py makes its numbered run folder), sends the console
output to `<out>/logs/<name>.log`, runs up to `parallel` jobs at once and fills in the printable
command, the run folder, wall time, CPU seconds and peak memory (from the kernel's accounting of
that child). A finished job leaves `runs/<name>/job.json`; with `reuse`, a job whose record holds
the same command is not trained again. The child runs in the repository root with the root in
front of its PYTHONPATH, so a dotted `--loss=benchmarks.common.<module>.<Class>` imports from any
working directory; it inherits OMP_NUM_THREADS from `report.use_threads`.
"""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time

from stylegan_plus.io import atomic

from . import REPO_ROOT

LOG_TAIL_LINES = 30
JOB_RECORD = 'job.json'
POLL_SEC = 0.2


@dataclasses.dataclass
class TrainJob:
    """One train.py run: `name` (its folder and log name) and `args` (train.py arguments without --outdir).

    Filled in by `run_jobs`: command (shell text, paths relative to the repository root), run_dir,
    wall_sec, cpu_sec (user + system of train.py and its reaped children), peak_rss_mb (MiB), log_path.
    """
    name: str
    args: list
    command: str = ''
    run_dir: str = ''
    wall_sec: float = 0.0
    cpu_sec: float = 0.0
    peak_rss_mb: float = 0.0
    log_path: str = ''

#----------------------------------------------------------------------------
# train.py arguments.


def train_args(data, seed, *, cfg, kimg=None, nimg=None, tick=None, snap=None, device='cpu', extra=()):
    """train.py arguments of a benchmark run: no metrics (the benchmarks evaluate), one data worker.

    Length: `kimg`, or `nimg` images (train.py's option for runs shorter than 1 kimg); exactly one.
    tick: --kimg-per-tick; snap: --snap (ticks between network snapshots); extra: further flags.
    """
    if (kimg is None) == (nimg is None):
        raise ValueError(f'give exactly one of kimg and nimg (got kimg={kimg}, nimg={nimg})')
    args = [f'--cfg={cfg}', f'--data={data}', f'--device={device}', '--metrics=none', '--workers=1', f'--seed={seed}']
    if snap is not None:
        args.append(f'--snap={int(snap)}')
    if tick is not None:
        args.append(f'--kimg-per-tick={tick:g}')
    args.append(f'--kimg={int(kimg)}' if kimg is not None else f'--nimg={int(nimg)}')
    return args + [str(flag) for flag in extra]


def toy_train_args(data, seed, kimg=None, nimg=None, ticks=40, extra=()):
    """A CPU run on 2-D points (`--cfg=toy`) with about `ticks` progress ticks (one stats.jsonl
    line each) and network snapshots only at the start and the end."""
    total_kimg = kimg if kimg is not None else (nimg or 0) / 1000
    return train_args(data, seed, cfg='toy', kimg=kimg, nimg=nimg, tick=total_kimg / ticks, snap=1000000, extra=extra)


def image_train_args(data, seed, *, cfg, loss, extra=(), **length):
    """A run on an image data set with `--loss=loss` and no augmentation (the data sets are fixed
    and small, the runs short); `length`: kimg or nimg, tick, snap, device as in `train_args`."""
    return train_args(data, seed, cfg=cfg, extra=[f'--loss={loss}', '--aug=noaug', *extra], **length)

#----------------------------------------------------------------------------
# Commands and run folders.


def display_path(path):
    """`path` relative to the repository root when inside it (as the printed commands show it)."""
    rel = os.path.relpath(path, REPO_ROOT)
    return path if rel.startswith('..') else rel


def _display_arg(arg):
    match = re.match(r'^(--[a-z0-9-]+=)(/.*)$', str(arg))
    return match.group(1) + display_path(match.group(2)) if match else str(arg)


def train_command(job, outdir):
    """(argv list, shell text to print and record) of `job` writing into `outdir`."""
    argv = [sys.executable, 'train.py', f'--outdir={outdir}'] + [str(a) for a in job.args]
    threads = os.environ.get('OMP_NUM_THREADS')
    shown = [f'OMP_NUM_THREADS={threads}'] if threads else []
    shown += ['python', 'train.py', f'--outdir={display_path(outdir)}'] + [_display_arg(a) for a in job.args]
    return argv, shlex.join(shown)


def child_env():
    """This process's environment with the repository root in front of PYTHONPATH."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(part for part in (REPO_ROOT, env.get('PYTHONPATH')) if part)
    return env


def run_folders(outdir):
    """{number: path} of the numbered run folders (`NNNNN-...`) train.py made in `outdir`."""
    found = {}
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            match = re.match(r'^(\d+)-', name)
            if match and os.path.isdir(os.path.join(outdir, name)):
                found[int(match.group(1))] = os.path.join(outdir, name)
    return found


def _log_tail(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return ''.join(f.readlines()[-LOG_TAIL_LINES:])
    except OSError:
        return '(no log)'


def _reap(proc):
    """(finished, resource usage or None) of a child, without blocking; usage from os.wait4 where there is one."""
    if not hasattr(os, 'wait4'):
        return proc.poll() is not None, None
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid == 0:
        return False, None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return True, usage


class _Child:
    """A started train.py process of one job."""

    def __init__(self, job, out_root):
        self.job = job
        self.outdir = os.path.join(out_root, 'runs', job.name)
        job.log_path = os.path.join(out_root, 'logs', f'{job.name}.log')
        os.makedirs(self.outdir, exist_ok=True)
        os.makedirs(os.path.dirname(job.log_path), exist_ok=True)
        self.before = set(run_folders(self.outdir))
        argv, job.command = train_command(job, self.outdir)
        print(f'[{job.name}] {job.command}', flush=True)
        self.log = open(job.log_path, 'w', encoding='utf-8')
        self.start = time.time()
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=child_env(), stdout=self.log, stderr=subprocess.STDOUT)

    def finish(self, usage):
        """Fill in the job from the finished process; raises RuntimeError when train.py failed."""
        self.log.close()
        job = self.job
        job.wall_sec = time.time() - self.start
        if usage is not None:
            job.cpu_sec = usage.ru_utime + usage.ru_stime
            job.peak_rss_mb = usage.ru_maxrss / 1024     # KiB on Linux
        if self.proc.returncode != 0:
            raise RuntimeError(f'train.py failed for {job.name} (exit code {self.proc.returncode}); command:\n'
                               f'  {job.command}\nlast lines of {job.log_path}:\n{_log_tail(job.log_path)}')
        new = {number: path for number, path in run_folders(self.outdir).items() if number not in self.before}
        if not new:
            raise RuntimeError(f'train.py wrote no run folder into {self.outdir} for {job.name}')
        job.run_dir = new[max(new)]
        print(f'[{job.name}] done in {job.wall_sec:.1f} s, peak RSS {job.peak_rss_mb:.0f} MiB -> '
              f'{display_path(job.run_dir)}', flush=True)
        record = dict(command=job.command, run_dir=os.path.relpath(job.run_dir, self.outdir), wall_sec=job.wall_sec,
                      cpu_sec=job.cpu_sec, peak_rss_mb=job.peak_rss_mb)
        text = json.dumps(record, indent=2)
        atomic.write_atomic(os.path.join(self.outdir, JOB_RECORD), lambda f: f.write(text.encode('utf-8')))

    def stop(self):
        if self.proc.returncode is None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.log.close()


def reuse_finished(job, out_root):
    """Fill in `job` from the record of an earlier run with the same command; True when there is one."""
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
    job.command, job.run_dir = command, run_dir
    job.wall_sec, job.cpu_sec = float(record.get('wall_sec', 0)), float(record.get('cpu_sec', 0))
    job.peak_rss_mb = float(record.get('peak_rss_mb', 0))
    job.log_path = os.path.join(out_root, 'logs', f'{job.name}.log')
    print(f'[{job.name}] reusing {display_path(run_dir)} (same command, trained in {job.wall_sec:.1f} s)', flush=True)
    return True


def run_jobs(jobs, out_root, parallel=1, reuse=False):
    """Run the jobs, at most `parallel` at once; returns them filled in (see `TrainJob`).

    reuse: skip a job whose earlier run in `out_root` had the same command (`reuse_finished`).
    Raises RuntimeError (with the command and the end of its log) when a run fails; the runs
    still going are stopped first.
    """
    pending = [job for job in jobs if not (reuse and reuse_finished(job, out_root))]
    running = []
    try:
        while pending or running:
            while pending and len(running) < max(1, int(parallel)):
                running.append(_Child(pending.pop(0), out_root))
            time.sleep(POLL_SEC)
            for child in list(running):
                done, usage = _reap(child.proc)
                if done:
                    running.remove(child)
                    child.finish(usage)
    finally:
        for child in running:
            child.stop()
    return list(jobs)


def run_job(job, out_root):
    """Run one job (see `run_jobs`); returns it."""
    return run_jobs([job], out_root)[0]


def by_loss_and_seed(losses, seeds, train_fn):
    """{loss: [train_fn(loss, seed) for seed in seeds]}, seed by seed with the losses side by side.

    Interleaving keeps a comparison fair when the machine's load drifts, and a benchmark stopped
    early still holds complete (baseline, method) pairs.
    """
    found = {loss: [] for loss in losses}
    for seed in seeds:
        for loss in losses:
            found[loss].append(train_fn(loss, seed))
    return found
