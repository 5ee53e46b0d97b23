"""Network snapshots: the official pickle dict, written atomically.

`network-snapshot-{kimg:06d}.pkl` is a `pickle.dump` of a plain dict whose first keys are, in
order, `training_set_kwargs`, `G`, `D`, `G_ema`, `augment_pipe` (what official tools and
`legacy.load_network_pkl` read), followed by one key per extra network of the loss plugin. Every
module is a deep copy in eval mode without gradients, on CPU.

Files are first written to a temporary name in the same folder and then renamed over the target
(`os.replace` is atomic), so an interrupted run never leaves a truncated snapshot behind.
"""

import copy
import os
import pickle
import tempfile

import torch

SNAPSHOT_PREFIX = 'network-snapshot-'
STATE_PREFIX = 'training-state-'


def snapshot_name(cur_nimg):
    return f'{SNAPSHOT_PREFIX}{cur_nimg // 1000:06d}.pkl'


def state_name_for(snapshot_path):
    """Training-state file that belongs to a snapshot pickle (same folder, same kimg number)."""
    folder, name = os.path.split(snapshot_path)
    if not (name.startswith(SNAPSHOT_PREFIX) and name.endswith('.pkl')):
        return None
    return os.path.join(folder, STATE_PREFIX + name[len(SNAPSHOT_PREFIX):-len('.pkl')] + '.pt')


def _file_mode():
    # mkstemp creates 0600 files; a snapshot should get the permissions of any file the user creates.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write_fn):
    """Call `write_fn(file)` on a temporary file beside `path`, then rename it to `path`."""
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=name + '.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _frozen_copy(module):
    if module is None:
        return None
    return copy.deepcopy(module).eval().requires_grad_(False).cpu()


def snapshot_data(training_set_kwargs, G, D, G_ema, augment_pipe, extras):
    """The snapshot dict: official keys first, then extra networks (dict name -> module)."""
    data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in [('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', augment_pipe)]:
        data[name] = _frozen_copy(module)
    for name, module in extras.items():
        data[name] = _frozen_copy(module)
    return data


def write_snapshot(path, data):
    atomic_write(path, lambda f: pickle.dump(data, f))


def write_state(path, state):
    atomic_write(path, lambda f: torch.save(state, f))


def prune_states(run_dir, keep):
    """Delete all but the newest `keep` training-state files of a run (None = keep all).

    A state holds the optimizer moments (twice the size of G and D), so keeping one per snapshot
    would double the disk use of a long run; older snapshots stay resumable with weights only.
    """
    if keep is None:
        return
    states = sorted(name for name in os.listdir(run_dir) if name.startswith(STATE_PREFIX) and name.endswith('.pt'))
    for name in states[:max(len(states) - keep, 0)]:
        os.remove(os.path.join(run_dir, name))
