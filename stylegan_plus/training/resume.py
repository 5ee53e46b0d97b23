"""Resuming: finding snapshots, reading them, and the training-state file written beside each.

Two kinds of resume:

- **full** (our snapshot with its `training-state-NNNNNN.pt`): weights of every network, optimizer
  states, loss-plugin state, augment probability and pending ADA statistics, progress counters,
  the sampler position and the RNG states of every process. The run continues exactly where the
  snapshot was taken.
- **weights only** (an official pickle, a URL or preset, or a snapshot whose state file is
  missing): G, D and G_ema are copied by name, as the official trainer does, and training starts
  from zero with fresh optimizers.

The state file is written with `torch.save` and holds only plain data, so it loads with
`torch.load(weights_only=True)`.
"""

import glob
import os
import re

import torch

import dnnlib
from stylegan_plus.tools.legacy_tf import load_network_pkl
from torch_utils import misc

from .snapshots import SNAPSHOT_PREFIX, state_name_for

STATE_VERSION = 1
_SNAPSHOT_RE = re.compile(re.escape(SNAPSHOT_PREFIX) + r'(\d+)\.pkl$')
_RUN_ID_RE = re.compile(r'^\d+')


def find_latest_snapshot(outdir):
    """Newest `network-snapshot-*.pkl` in the run folders of `outdir` (or in `outdir` itself).

    Newest = highest run number, then highest kimg. Returns the path, or None if there is none.
    """
    best_key, best_path = None, None
    for path in glob.glob(os.path.join(outdir, '*', SNAPSHOT_PREFIX + '*.pkl')) + \
            glob.glob(os.path.join(outdir, SNAPSHOT_PREFIX + '*.pkl')):
        match = _SNAPSHOT_RE.search(os.path.basename(path))
        if match is None:
            continue
        run_name = os.path.basename(os.path.dirname(path))
        run_id = _RUN_ID_RE.match(run_name)
        key = (int(run_id.group()) if run_id and os.path.dirname(path) != os.path.normpath(outdir) else -1,
               int(match.group(1)))
        if best_key is None or key > best_key:
            best_key, best_path = key, path
    return best_path


def state_file_for(resume_pkl):
    """The training-state file of a local snapshot pickle, or None when it has none."""
    if resume_pkl is None or dnnlib.util.is_url(resume_pkl, allow_file_urls=True):
        return None
    path = state_name_for(resume_pkl)
    return path if path is not None and os.path.isfile(path) else None


def load_snapshot(resume_pkl):
    """The snapshot dict of a pickle path or URL (via `legacy`'s reader)."""
    with dnnlib.util.open_url(resume_pkl) as f:
        return load_network_pkl(f)


def load_state(path):
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        raise ValueError(f'{path}: not a training-state file of this trainer (version {STATE_VERSION})')
    return state


def copy_networks(resume_data, targets):
    """Copy parameters and buffers by name from the snapshot into `targets` (dict key -> module).

    Keys missing from the snapshot are skipped; returns the keys that were copied.
    """
    copied = []
    for key, module in targets.items():
        source = resume_data.get(key)
        if module is None or not isinstance(source, torch.nn.Module):
            continue
        misc.copy_params_and_buffers(source, module, require_all=False)
        copied.append(key)
    return copied


def per_rank(entries, rank, what):
    """The entry of this rank from a list saved by all ranks; rank 0's if the world size changed."""
    if rank < len(entries):
        return entries[rank]
    if rank == len(entries):   # first rank beyond the saved world: say it once
        print(f'Note: the saved {what} comes from {len(entries)} process(es); '
              f'process {rank} continues with the state of process 0.')
    return entries[0]


def optimizer_states(optimizers):
    return {key: opt.state_dict() for key, opt in optimizers.items()}


def load_optimizer_states(optimizers, saved):
    """Restore optimizer states by phase key; a key missing from the file, or a state that does not
    fit (other networks or options than the saved run), leaves that optimizer fresh, with a note."""
    for key, opt in optimizers.items():
        if key not in saved:
            print(f'Note: the training state has no optimizer {key!r}; it starts fresh.')
            continue
        try:
            opt.load_state_dict(saved[key])
        except (ValueError, KeyError) as err:
            print(f'Note: the saved state of optimizer {key!r} does not fit this run ({err}); it starts fresh.')


def load_loss_state(hooks, saved, rank):
    """Restore the loss plugin's state; a state of another loss is reported and skipped."""
    try:
        hooks.load_state_dict(per_rank(saved, rank, 'loss state'))
    except (KeyError, ValueError, TypeError) as err:
        print(f'Note: the saved loss state does not fit this loss ({err}); the loss starts fresh.')
