"""Resuming: finding snapshots, checking them, reading them, and the training state beside each.

Two kinds of resume:

- **full** (our snapshot with its `training-state-NNNNNN.pt`): weights of every network, optimizer
  states, loss-plugin state, augment probability and pending ADA statistics, progress counters,
  the sampler position and the RNG states of every process. The run continues exactly where the
  snapshot was taken.
- **weights only** (an official pickle, a URL or preset, or a snapshot whose state file is
  missing): G, D and G_ema are copied by name, as the official trainer does, and training starts
  from zero with fresh optimizers.

A state records the size and SHA-256 of the pickle it was written with (`snapshots.write_pair`);
a state that records other values is refused, so weights and optimizer/progress state of two
different ticks are never combined. States of older versions lack the record; they are accepted
with a note. `--resume=latest` takes the newest snapshot of the newest run that has a state of its
own, and says which newer snapshots it skipped and why.

The state file is written with `torch.save` and holds only plain data, so it loads with
`torch.load(weights_only=True)`. Before anything is built, a local pickle is scanned by an
unpickler that imports nothing (`check_snapshot_file`), so a truncated pickle, a text file or a
state file given as `--resume` is reported as what it is.

Options that make a run what it is (`RECORDED_OPTIONS`: the latent prior, the G and D steps per
iteration, G's batch factor, the learning-rate schedule) are recorded with the snapshot: the prior
in the pickle itself, all five in the training state. `recorded_options` reads them back, so that
a resume without those flags continues with the recorded values instead of silently the defaults.
"""

import glob
import hashlib
import os
import pickle
import re
import zipfile

import torch

import dnnlib
from stylegan_plus.io.legacy_tf import load_network_pkl
from stylegan_plus.sampling import prior as prior_lib
from torch_utils import misc

from .snapshots import SNAPSHOT_PREFIX, STATE_PREFIX, parse_snapshot_name, state_name_for

STATE_VERSION = 1
# Options of a run that a resume takes over unless given (see resolve.py): state `options` keys,
# the same as the train.py parameter names.
RECORDED_OPTIONS = ('z_dist', 'g_steps', 'd_steps', 'g_batch_factor', 'lr_schedule')
_RUN_ID_RE = re.compile(r'^\d+')


class ResumeError(Exception):
    """A snapshot or training state that cannot be resumed from; the message names the file and why."""


# --- Finding snapshots --------------------------------------------------------------------------


def _run_snapshots(folder):
    """Snapshot pickles directly in `folder`, oldest first."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), SNAPSHOT_PREFIX + '*.pkl')):
        key = parse_snapshot_name(os.path.basename(path))
        if key is not None:
            found.append((key, path))
    return [path for _key, path in sorted(found)]


def _newest_run_snapshots(outdir):
    """Snapshots (oldest first) of the highest-numbered run folder in `outdir` that has any;
    snapshots lying in `outdir` itself count as the oldest run."""
    runs = [(-1, outdir)]
    for folder in glob.glob(os.path.join(glob.escape(outdir), '*', '')):
        folder = os.path.normpath(folder)
        match = _RUN_ID_RE.match(os.path.basename(folder))
        if match:
            runs.append((int(match.group()), folder))
    for _run_id, folder in sorted(runs, reverse=True):
        found = _run_snapshots(folder)
        if found:
            return found
    return []


def find_latest_snapshot(outdir):
    """Newest `network-snapshot-*.pkl` of the newest run in `outdir` (or in `outdir` itself), or None."""
    found = _newest_run_snapshots(outdir)
    return found[-1] if found else None


def run_folders(outdir):
    """Numbered run folders directly inside `outdir` (where snapshots of earlier runs lie)."""
    folders = glob.glob(os.path.join(glob.escape(outdir), '*', ''))
    return sorted(os.path.normpath(f) for f in folders if _RUN_ID_RE.match(os.path.basename(os.path.normpath(f))))


def state_file_for(resume_pkl):
    """The training-state file of a local snapshot pickle, or None when it has none."""
    if resume_pkl is None or dnnlib.util.is_url(resume_pkl, allow_file_urls=True):
        return None
    path = state_name_for(resume_pkl)
    return path if path is not None and os.path.isfile(path) else None


# --- What a file is -------------------------------------------------------------------------------


class _Inert:
    """Stands in for every class or function a scanned pickle names: nothing is imported or run."""

    def __new__(cls, *_args, **_kwargs):
        return object.__new__(cls)

    def __init__(self, *_args, **_kwargs):
        pass

    def __call__(self, *_args, **_kwargs):
        return _Inert()

    def __setstate__(self, _state):
        pass

    def __setitem__(self, _key, _value):
        pass

    def append(self, _item):
        pass

    def extend(self, _items):
        pass


class _ScanUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return _Inert

    def persistent_load(self, pid):
        return _Inert()


def _zip_kind(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return 'a damaged zip archive'
    if not any(name.endswith('/data.pkl') or name == 'data.pkl' for name in names):
        return 'a zip archive (a data set?)'
    base = os.path.basename(path)
    if base.startswith(STATE_PREFIX):
        pkl = SNAPSHOT_PREFIX + base[len(STATE_PREFIX):].rsplit('.', 1)[0] + '.pkl'
        return (f'a training-state file (optimizer and progress state, written with torch.save); give its '
                f'snapshot {os.path.join(os.path.dirname(path), pkl)} instead, the state beside it is used '
                f'automatically')
    return 'a file written with torch.save, not a network pickle'


def _text_kind(head):
    text = None
    for cut in range(4):    # the head may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode('utf-8')
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        return None
    if not all(ch.isprintable() or ch in '\t\r\n' for ch in text):
        return None
    first = text.strip().splitlines()[0][:40] if text.strip() else ''
    return f'a text file (it starts with {first!r})'


def _foreign_kind(path, head):
    """What a non-pickle file is, from its first bytes; None when it starts like a pickle."""
    if head[:2] in (b'\x80\x02', b'\x80\x03', b'\x80\x04', b'\x80\x05'):
        return None
    if head.startswith(b'PK\x03\x04'):
        return _zip_kind(path)
    return _text_kind(head) or f'not a pickle (it starts with the bytes {head[:8].hex(" ")})'


def _looks_like_snapshot(top):
    if isinstance(top, dict):
        return all(key in top for key in ('G', 'D', 'G_ema'))
    return isinstance(top, tuple) and len(top) == 3     # TensorFlow (G, D, Gs)


_scanned_priors = {}        # (path, size, mtime) -> the prior entry a scanned pickle holds, or None


def _file_key(path):
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


def check_snapshot_file(path):
    """Raise ResumeError unless `path` reads as a complete network pickle (dict with G, D, G_ema or a
    TensorFlow triplet). The pickle is scanned without importing or running anything; the prior
    it records is kept for `recorded_options`, so the file is read once."""
    size = os.path.getsize(path)
    if size == 0:
        raise ResumeError(f'{path} is an empty file')
    with open(path, 'rb') as f:
        kind = _foreign_kind(path, f.read(64))
        if kind is not None:
            raise ResumeError(f'{path} is {kind}')
        f.seek(0)
        try:
            top = _ScanUnpickler(f).load()
        except Exception as err: # pylint: disable=broad-except
            raise ResumeError(f'{path} is a truncated or damaged pickle ({size} bytes; reading it fails with '
                              f'{type(err).__name__}: {err})') from None
    if not _looks_like_snapshot(top):
        raise ResumeError(f'{path} is a pickle of a {type(top).__name__}, not a network snapshot (it has no G, D '
                          f'and G_ema)')
    _scanned_priors[_file_key(path)] = top.get(prior_lib.SNAPSHOT_KEY) if isinstance(top, dict) else None


def recorded_options(pkl_path, state):
    """The `RECORDED_OPTIONS` the run of a snapshot was trained with: dict name -> value as recorded.

    pkl_path: the resumed pickle (its prior is read from the scan of `check_snapshot_file`; URLs
    and official pickles record none); state: its training state or None (states of older
    versions record only some options). Values are as written (the caller checks them).
    """
    recorded = {}
    saved = dict(state.get('options', {})) if state is not None else {}
    for name in RECORDED_OPTIONS:
        if name in saved:
            recorded[name] = saved[name]
    if pkl_path is not None and not dnnlib.util.is_url(pkl_path, allow_file_urls=True) and os.path.isfile(pkl_path):
        key = _file_key(pkl_path)
        if key not in _scanned_priors:
            check_snapshot_file(pkl_path)
        if _scanned_priors[key] is not None:    # the pickle is what the weights were trained on
            recorded[prior_lib.SNAPSHOT_KEY] = _scanned_priors[key]
    return recorded


# --- Pairing a pickle with its state --------------------------------------------------------------


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            digest.update(block)
    return digest.hexdigest()


def check_pair(pkl_path, state_path):
    """Read the training state at `state_path` and check that it was written with `pkl_path`.

    Returns (state dict, note): note is None for a verified pair, a message for a state of an
    older version that records no pickle. Raises ResumeError when the state cannot be read or
    was written with another pickle.
    """
    try:
        state = load_state(state_path)
    except Exception as err: # pylint: disable=broad-except
        raise ResumeError(f'cannot read its training state {state_path} ({type(err).__name__}: {err})') from None
    name = os.path.basename(pkl_path)
    if 'snapshot_sha256' not in state:
        if state.get('snapshot', name) != name:
            raise ResumeError(f'its training state {state_path} was written for {state["snapshot"]}')
        return state, (f'Note: {state_path} comes from an older version that did not record its pickle; '
                       f'it is assumed to belong to {name}.')
    size = os.path.getsize(pkl_path)
    if size != state['snapshot_bytes'] or _file_sha256(pkl_path) != state['snapshot_sha256']:
        raise ResumeError(f'its training state {state_path} was written with another pickle (recorded: '
                          f'{state["snapshot_bytes"]} bytes, SHA-256 {state["snapshot_sha256"][:16]}...; '
                          f'{name} has {size} bytes)')
    return state, None


def resolve_local(pkl_path):
    """Check an explicitly named local pickle; returns (state path or None, state or None, notes).

    Raises ResumeError for a file that is no network pickle, or whose state belongs to another one.
    """
    check_snapshot_file(pkl_path)
    state_path = state_file_for(pkl_path)
    if state_path is None:
        return None, None, []
    try:
        state, note = check_pair(pkl_path, state_path)
    except ResumeError as err:
        raise ResumeError(f'{err}; resume from an earlier snapshot, or move {os.path.basename(state_path)} away to '
                          f'resume {os.path.basename(pkl_path)} with weights only') from None
    return state_path, state, [note] if note else []


def choose_latest(outdir):
    """The newest resumable snapshot of the newest run under `outdir`.

    Returns (pickle path, state path or None, state or None, notes). The newest snapshot whose
    state belongs to it wins; newer ones without a usable state are listed in the notes. A run
    without any state file (official trainer) resumes weights only from its newest readable pickle.
    Raises ResumeError when nothing can be resumed, saying why for each snapshot.
    """
    found = _newest_run_snapshots(outdir)
    if not found:
        raise ResumeError(f'no network-snapshot-*.pkl in the runs under {outdir}')
    skipped, unreadable, readable, with_state = [], [], [], False
    for pkl in reversed(found):
        try:
            check_snapshot_file(pkl)
        except ResumeError as err:
            skipped.append(str(err))
            unreadable.append(str(err))
            continue
        readable.append(pkl)
        state_path = state_file_for(pkl)
        if state_path is None:
            skipped.append(f'{pkl} has no training state beside it')
            continue
        with_state = True
        try:
            state, note = check_pair(pkl, state_path)
        except ResumeError as err:
            skipped.append(f'{pkl}: {err}')
            continue
        notes = [f'Note: skipped {reason}.' for reason in skipped]
        if skipped:
            notes.append(f'Note: continuing from {pkl}, the newest snapshot with its own training state.')
        return pkl, state_path, state, notes + ([note] if note else [])
    if readable and not with_state:
        return readable[0], None, None, [f'Note: skipped {reason}.' for reason in unreadable]
    raise ResumeError('no snapshot of ' + os.path.dirname(found[-1]) + ' can be resumed: ' + '; '.join(skipped))


# --- Reading -------------------------------------------------------------------------------------


def load_snapshot(resume_pkl):
    """The snapshot dict of a pickle path or URL (via `legacy`'s reader); ResumeError if unreadable."""
    try:
        with dnnlib.util.open_url(resume_pkl) as f:
            return load_network_pkl(f)
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, ValueError, OSError) as err:
        raise ResumeError(f'cannot read the network pickle {resume_pkl} ({type(err).__name__}: {err})') from None


def load_state(path):
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        raise ValueError(f'{path}: not a training-state file of this trainer (version {STATE_VERSION})')
    return state


def _shape_mismatches(source, target, key):
    src = dict(misc.named_params_and_buffers(source))
    return [f'{key}.{name}: snapshot {list(src[name].shape)}, this run {list(tensor.shape)}'
            for name, tensor in misc.named_params_and_buffers(target)
            if name in src and src[name].shape != tensor.shape]


def copy_networks(resume_data, targets, source_name='the snapshot'):
    """Copy parameters and buffers by name from the snapshot into `targets` (dict key -> module).

    Keys missing from the snapshot are skipped; returns the keys that were copied. Raises
    ResumeError, naming `source_name` and the first differing tensors, when shapes do not fit.
    """
    copied = []
    for key, module in targets.items():
        source = resume_data.get(key)
        if module is None or not isinstance(source, torch.nn.Module):
            continue
        mismatches = _shape_mismatches(source, module, key)
        if mismatches:
            more = f' and {len(mismatches) - 3} more' if len(mismatches) > 3 else ''
            raise ResumeError(f'the networks of {source_name} do not fit this run\'s options (other resolution, '
                              f'--cfg or --cbase?): {"; ".join(mismatches[:3])}{more}')
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
