"""Read what a train.py run folder holds: network snapshots, stats.jsonl, training_options.json."""

import glob
import json
import os
import pickle
import re

import numpy as np
import torch

import dnnlib
from stylegan_plus.io import plot_stats
from stylegan_plus.sampling import prior as prior_lib
from stylegan_plus.training import official_names

_SNAPSHOT_RE = re.compile(r'network-snapshot-(\d+)(?:_\d{3})?\.pkl$')   # _NNN: a later snapshot of the same kimg


def snapshots(run_dir):
    """[(kimg, path)] of the run's network-snapshot-*.pkl, in the order they were written."""
    found = []
    for path in glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')):
        match = _SNAPSHOT_RE.search(path)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def final_snapshot_path(run_dir):
    """Path of the run's last network snapshot."""
    found = snapshots(run_dir)
    if not found:
        raise FileNotFoundError(f'no network-snapshot-*.pkl in {run_dir}')
    return found[-1][1]


def load_snapshot(path, keys=None):
    """The snapshot's entries (G, D, G_ema, ..., a loss plugin's extra networks), modules on CPU in eval
    mode without gradients; `keys`: only those entries (KeyError naming a missing one), plus the
    recorded prior `z_dist` when there is one (`prior_lib.snapshot_z_dist` reads it)."""
    with dnnlib.util.open_url(path) as f:
        data = pickle.load(f)
    if keys is not None:
        missing = [key for key in keys if key not in data]
        if missing:
            raise KeyError(f'{path} has no {missing}; it holds {sorted(data)}')
        data = {key: data[key] for key in (*keys, prior_lib.SNAPSHOT_KEY) if key in data}
    for value in data.values():
        if isinstance(value, torch.nn.Module):
            value.eval().requires_grad_(False)
    return data


def load_final_snapshot(run_dir, keys=None):
    """`load_snapshot` of the run's last snapshot."""
    return load_snapshot(final_snapshot_path(run_dir), keys)


def read_options(run_dir):
    """training_options.json of the run, as a dict (class names canonical: `official_names.to_canonical`)."""
    with open(os.path.join(run_dir, 'training_options.json'), encoding='utf-8') as f:
        return official_names.to_canonical(json.load(f))


def read_stats(run_dir):
    """stats.jsonl of the run: a list of per-tick dicts."""
    return plot_stats.read_stats(os.path.join(run_dir, 'stats.jsonl'))


def series(records, key):
    """(kimg float64 [T], tick means float64 [T]) of statistic `key`, NaN where a tick lacks it."""
    kimg, found = plot_stats.loss_series(records, [key])
    return kimg, found[key]


def loss_curves(run_dir, keys):
    """{key: (kimg [T'], means [T'])} over the ticks that report it, for the keys in `keys` the run reported."""
    records = read_stats(run_dir)
    curves = {}
    for key in keys:
        kimg, values = series(records, key)
        keep = np.isfinite(kimg) & np.isfinite(values)
        if keep.any():
            curves[key] = (kimg[keep].tolist(), values[keep].tolist())
    return curves


def training_sec_per_kimg(records, skip_ticks=1):
    """Wall seconds per kimg of training, from the ticks after the first `skip_ticks`.

    Sums `Timing/sec_per_tick` (which leaves out snapshots and images) over the kept ticks and
    divides by the kimg they advanced; tick 0 holds one iteration plus start-up effects. None
    when there are no ticks after the skipped ones.
    """
    if len(records) <= skip_ticks:
        return None
    kimg = [r['Progress/kimg']['mean'] for r in records]
    secs = [r['Timing/sec_per_tick']['mean'] for r in records]
    done = kimg[-1] - (kimg[skip_ticks - 1] if skip_ticks > 0 else 0)
    return float(sum(secs[skip_ticks:]) / done) if done > 0 else None
