"""Read what a train.py run folder holds: the final network snapshot, stats.jsonl, training options."""

import glob
import json
import os
import pickle

import dnnlib
from stylegan_plus.io import plot_stats


def final_snapshot_path(run_dir):
    """Path of the `network-snapshot-*.pkl` with the highest kimg in `run_dir`."""
    paths = sorted(glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')))
    if not paths:
        raise FileNotFoundError(f'no network-snapshot-*.pkl in {run_dir}')
    return paths[-1]


def load_snapshot(path):
    """The snapshot dict (G, D, G_ema, ..., the loss plugin's extra networks), modules on CPU in eval mode."""
    with dnnlib.util.open_url(path) as f:
        data = pickle.load(f)
    for value in data.values():
        if hasattr(value, 'eval') and hasattr(value, 'requires_grad_'):
            value.eval().requires_grad_(False)
    return data


def load_final_snapshot(run_dir):
    return load_snapshot(final_snapshot_path(run_dir))


def read_options(run_dir):
    """training_options.json of the run, as a dict."""
    with open(os.path.join(run_dir, 'training_options.json'), encoding='utf-8') as f:
        return json.load(f)


def read_stats(run_dir):
    """stats.jsonl as a list of dicts (one per tick)."""
    return plot_stats.read_stats(os.path.join(run_dir, 'stats.jsonl'))


def stat_curve(stats, key):
    """(kimg list, mean list) of statistic `key` over the ticks that report it (empty lists if none)."""
    xs, ys = [], []
    for entry in stats:
        value = entry.get(key)
        kimg = entry.get('Progress/kimg', {}).get('mean')
        if isinstance(value, dict) and value.get('num', 0) > 0 and kimg is not None:
            xs.append(float(kimg))
            ys.append(float(value['mean']))
    return xs, ys


def loss_curves(run_dir, keys):
    """{key: (kimg, mean)} for the statistics in `keys` that the run reported."""
    stats = read_stats(run_dir)
    curves = {key: stat_curve(stats, key) for key in keys}
    return {key: curve for key, curve in curves.items() if curve[0]}
