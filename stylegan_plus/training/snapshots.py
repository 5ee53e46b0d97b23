"""Network snapshots and their training states: names, writing them in pairs, leftovers of killed runs.

`network-snapshot-{kimg:06d}.pkl` is a `pickle.dump` of a plain dict whose first keys are, in
order, `training_set_kwargs`, `G`, `D`, `G_ema`, `augment_pipe` (what official tools and
`legacy.load_network_pkl` read), followed by one key per extra network of the loss plugin. Every
module is a deep copy in eval mode without gradients, on CPU.

Names: the first snapshot a run writes within a kimg gets the official name; a later one of the
same kimg (ticks less than 1 kimg apart, or a last tick close behind the previous one) gets the
images past that kimg appended, `network-snapshot-000000_016.pkl`. So two ticks never share a
name, and sorting the names by code point (Python's `sorted`, `LC_ALL=C sort`) gives the order in
which they were written. The training state of a snapshot has the same stem
(`training-state-000000_016.pt`).

Pairing: a snapshot is written in three steps. The pickle goes to a temporary file (its size and
SHA-256 are taken while it is written); then the training state, which records them, is written
(temporary file, then renamed); last the pickle is renamed into place. A pickle therefore never
appears without its state, a crash leaves at worst temporaries and a state without a pickle, and
`resume.py` can check that the state beside a pickle was written for it.

Temporary names (`stylegan_plus.io.atomic`, which does every write) carry the writer's pid and
host, so the next start can tell the leftovers of a killed run (`remove_stale_temps`) from files
another live run is writing.
"""

import copy
import os
import pickle
import re
import socket
import time

import torch

from stylegan_plus.io import atomic
from stylegan_plus.sampling import prior as prior_lib

from .official_names import to_official

SNAPSHOT_PREFIX = 'network-snapshot-'
STATE_PREFIX = 'training-state-'
STALE_AFTER_S = 3600        # a temporary untouched this long is not being written any more

_NAME_RE = re.compile(r'^' + re.escape(SNAPSHOT_PREFIX) + r'(\d+)(?:_(\d{3}))?\.pkl$')
# Temporaries of `atomic.temp_name` (`<target>.tmp-<pid>-<hex>-<host>`) and of older versions (mkstemp's).
_TEMP_RE = re.compile(r'^(?P<target>(?:' + re.escape(SNAPSHOT_PREFIX) + '|' + re.escape(STATE_PREFIX) + r')[^/]+?)'
                      r'\.tmp(?:-(?P<pid>\d+)-[0-9a-f]+-(?P<host>.+)|[a-z0-9_]{6,})$')


# --- Names -----------------------------------------------------------------------------------------


def snapshot_name(cur_nimg, previous_nimg=None):
    """File name of the snapshot taken at `cur_nimg` images; `previous_nimg` is the image count of
    the run's previous snapshot (None for the first), which decides whether a suffix is needed."""
    kimg, rest = divmod(int(cur_nimg), 1000)
    if previous_nimg is None or int(previous_nimg) // 1000 != kimg:
        return f'{SNAPSHOT_PREFIX}{kimg:06d}.pkl'
    return f'{SNAPSHOT_PREFIX}{kimg:06d}_{rest:03d}.pkl'


def parse_snapshot_name(name):
    """(kimg, images past it or -1 for the official name) of a snapshot file name, or None.

    The tuple sorts snapshots of one run in the order they were written.
    """
    match = _NAME_RE.match(name)
    if match is None:
        return None
    return int(match.group(1)), -1 if match.group(2) is None else int(match.group(2))


def state_name_for(snapshot_path):
    """Training-state file that belongs to a snapshot pickle (same folder, same stem), or None."""
    folder, name = os.path.split(snapshot_path)
    if not (name.startswith(SNAPSHOT_PREFIX) and name.endswith('.pkl')):
        return None
    return os.path.join(folder, STATE_PREFIX + name[len(SNAPSHOT_PREFIX):-len('.pkl')] + '.pt')


# --- Snapshot contents and writes ----------------------------------------------------------------
# Every file goes through stylegan_plus.io.atomic (temporary beside the target, fsync, rename,
# folder sync); `write_pair` takes its steps one by one to put the state between them.


def _frozen_copy(module):
    if module is None:
        return None
    return copy.deepcopy(module).eval().requires_grad_(False).cpu()


def snapshot_data(training_set_kwargs, G, D, G_ema, augment_pipe, extras, z_dist=None):
    """The snapshot dict: official keys first, then extra networks (dict name -> module), then
    `z_dist`, the latent prior G was trained on ('normal' or 'uniform'; None = normal), which
    generate.py, the metrics and the benchmarks draw from (`stylegan_plus.sampling.prior`).
    `training_set_kwargs` gets official class names: official tools rebuild the data set from it."""
    data = dict(training_set_kwargs=dict(to_official(training_set_kwargs)))
    for name, module in [('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', augment_pipe)]:
        data[name] = _frozen_copy(module)
    for name, module in extras.items():
        data[name] = _frozen_copy(module)
    data[prior_lib.SNAPSHOT_KEY] = prior_lib.canonical_z_dist(z_dist)   # a plain str: official loaders skip it
    return data


def write_snapshot(path, data):
    """Pickle `data` to `path` atomically; returns (size, SHA-256 hex digest) of the file."""
    return tuple(atomic.write_atomic(path, lambda f: pickle.dump(data, f), digest=True))


def write_state(path, state):
    """torch.save `state` (plain data) to `path` atomically."""
    atomic.write_atomic(path, lambda f: torch.save(state, f))


def write_pair(pkl_path, data, state):
    """Write a snapshot pickle and its training state so that the pair can be checked later.

    `state` gets `snapshot_bytes` and `snapshot_sha256` of the pickle added. Order: pickle to a
    temporary file, state into place, pickle into place (see the module docstring).
    """
    tmp, written = atomic.write_temp(pkl_path, lambda f: pickle.dump(data, f), digest=True)
    try:
        write_state(state_name_for(pkl_path), dict(state, snapshot_bytes=written.size, snapshot_sha256=written.sha256))
        atomic.publish(tmp, pkl_path)
    except BaseException:
        atomic.discard(tmp)
        raise


def prune_states(run_dir, keep):
    """Delete all but the newest `keep` training-state files of a run (None = keep all).

    A state holds the optimizer moments (twice the size of G and D), so keeping one per snapshot
    would double the disk use of a long run; older snapshots stay resumable with weights only.
    Code-point order of the names is the order of writing (see the module docstring).
    """
    if keep is None:
        return
    states = sorted(name for name in os.listdir(run_dir) if name.startswith(STATE_PREFIX) and name.endswith('.pt'))
    for name in states[:max(len(states) - keep, 0)]:
        os.remove(os.path.join(run_dir, name))


# --- Leftovers of killed runs ------------------------------------------------------------------


def _process_alive(pid):
    if os.name == 'nt':     # os.kill would terminate the process there: assume it lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:         # e.g. another user's process: it exists
        return True
    return True


def is_stale_temp(path, now=None):
    """True for a snapshot/state temporary whose writer is gone: a process of this host that no
    longer runs, or (other hosts, temporaries of older versions) a file untouched for an hour."""
    match = _TEMP_RE.match(os.path.basename(path))
    if match is None:
        return False
    if match.group('pid') is not None and match.group('host') == socket.gethostname():
        return not _process_alive(int(match.group('pid')))
    try:
        age = (time.time() if now is None else now) - os.path.getmtime(path)
    except OSError:
        return False
    return age > STALE_AFTER_S


def remove_stale_temps(folders):
    """Delete stale snapshot/state temporaries directly inside `folders`; returns the removed paths."""
    removed = []
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and is_stale_temp(path):
                try:
                    os.remove(path)
                except OSError:
                    continue
                removed.append(path)
    return removed
