"""train.py as a user runs it (a subprocess), and what a run leaves behind.

Every training in the benchmarks goes through `run_train`, so a benchmark measures the trainer
and the loss plugins exactly as shipped. The exact command is printed and recorded; the child's
output goes to a log file next to the run; the peak resident memory of the child is read from
the kernel's accounting (`os.wait4`).
"""

import dataclasses
import glob
import os
import re
import shlex
import subprocess
import sys
import time


from stylegan_plus.io.plot_stats import loss_series, read_stats

from . import REPO_ROOT

TRAIN_PY = os.path.join(REPO_ROOT, 'train.py')
_SNAPSHOT_RE = re.compile(r'network-snapshot-(\d+)(?:_\d{3})?\.pkl$')   # _NNN: a later snapshot of the same kimg


class TrainError(RuntimeError):
    """train.py exited with an error; the message holds the command and the end of its log."""


@dataclasses.dataclass
class TrainRun:
    run_dir: str            # the run folder train.py created
    argv: list              # the exact command
    wall_s: float           # wall time of the whole process
    peak_rss_mb: float      # peak resident memory of train.py (and its reaped children), MiB
    cpu_s: float            # user + system CPU seconds of the process
    log_path: str


def train_argv(*, data, outdir, cfg, loss='stylegan2', seed=0, kimg=None, nimg=None, tick=None, snap=None,
               device='cpu', extra=()):
    """The train.py command line: [python, train.py, --outdir=..., ...].

    kimg or nimg (the hidden option of train.py for runs shorter than 1 kimg) sets the length;
    tick = --kimg-per-tick; snap = --snap (ticks between network snapshots); extra: more flags.
    Always --metrics=none (the benchmarks evaluate themselves), --aug=noaug unless given in extra,
    and --workers=1 (one data-loader process: the data sets are tiny).
    """
    argv = [sys.executable, TRAIN_PY, f'--outdir={outdir}', f'--data={data}', f'--cfg={cfg}', f'--loss={loss}',
            f'--seed={seed}', f'--device={device}', '--metrics=none', '--workers=1']
    if nimg is not None:
        argv.append(f'--nimg={int(nimg)}')
    elif kimg is not None:
        argv.append(f'--kimg={int(kimg)}')
    if tick is not None:
        argv.append(f'--kimg-per-tick={tick:g}')
    if snap is not None:
        argv.append(f'--snap={int(snap)}')
    if not any(str(flag).startswith('--aug=') for flag in extra):
        argv.append('--aug=noaug')
    return argv + [str(flag) for flag in extra]


def _wait_with_usage(proc):
    """Wait for `proc`; returns (returncode, rusage) of exactly that child."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def run_train(argv, log_path, echo=True):
    """Run one train.py command; returns TrainRun. Raises TrainError on a non-zero exit.

    The command is printed before it starts (copy-paste ready). The child inherits the
    environment, including OMP_NUM_THREADS set by `runinfo.configure_threads`.
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    if echo:
        print(f'$ {shlex.join(argv)}', flush=True)
    start = time.time()
    with open(log_path, 'wt') as log:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            code, usage = _wait_with_usage(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    wall = time.time() - start
    with open(log_path, 'rt', errors='replace') as f:
        text = f.read()
    if code != 0:
        tail = '\n'.join(text.splitlines()[-25:])
        raise TrainError(f'train.py failed (exit {code}): {shlex.join(argv)}\n--- end of {log_path} ---\n{tail}')
    match = re.search(r'^Output directory:\s+(.+)$', text, flags=re.MULTILINE)
    if match is None:
        raise TrainError(f'no "Output directory:" line in {log_path}; cannot find the run folder')
    run_dir = match.group(1).strip()
    if not os.path.isabs(run_dir):
        run_dir = os.path.join(REPO_ROOT, run_dir)
    run = TrainRun(run_dir=run_dir, argv=list(argv), wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024,
                   cpu_s=usage.ru_utime + usage.ru_stime, log_path=log_path)
    if echo:
        print(f'  -> {run_dir}  ({wall:.1f} s wall, peak RSS {run.peak_rss_mb:.0f} MiB)', flush=True)
    return run


def stats(run_dir):
    """The per-tick records of stats.jsonl (list of dicts)."""
    return read_stats(os.path.join(run_dir, 'stats.jsonl'))


def series(records, name):
    """(kimg [T], mean [T]) of one statistic over the ticks (NaN where a tick lacks it)."""
    kimg, found = loss_series(records, [name])
    return kimg, found[name]


def training_sec_per_kimg(records, skip_ticks=1):
    """Wall seconds per kimg of training, from the ticks after the first `skip_ticks`.

    Sums `Timing/sec_per_tick` (which excludes maintenance: snapshots, images) over the kept ticks
    and divides by the kimg they advanced. Tick 0 holds one iteration plus start-up effects.
    Returns None when fewer than skip_ticks + 1 ticks exist.
    """
    if len(records) <= skip_ticks:
        return None
    kimg = [r['Progress/kimg']['mean'] for r in records]
    secs = [r['Timing/sec_per_tick']['mean'] for r in records]
    done = kimg[-1] - kimg[skip_ticks - 1] if skip_ticks > 0 else kimg[-1]
    if done <= 0:
        return None
    return float(sum(secs[skip_ticks:]) / done)


def snapshots(run_dir):
    """[(kimg, path)] of the run's network-snapshot-*.pkl, by kimg."""
    found = []
    for path in glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')):
        match = _SNAPSHOT_RE.search(path)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_snapshot(path, keys=('G_ema',)):
    """Modules from a snapshot pickle through the tools' loader: dict key -> module (CPU, eval)."""
    from stylegan_plus.cli import device as devices  # pylint: disable=import-outside-toplevel
    return devices.load_networks(path, tuple(keys))


def by_loss_and_seed(losses, seeds, train_fn):
    """{loss: [train_fn(loss, seed) for seed in seeds]}, run seed by seed with the losses side by side.

    Interleaving keeps the comparison fair when the machine's load drifts, and a run stopped
    early still holds complete (baseline, method) pairs.
    """
    found = {loss: [] for loss in losses}
    for seed in seeds:
        for loss in losses:
            found[loss].append(train_fn(loss, seed))
    return found
