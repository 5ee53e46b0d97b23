"""Random-number-generator states as plain data, for the training-state file.

Everything here converts to and from values that `torch.load(weights_only=True)` accepts (tensors,
ints, floats, strings, lists, dicts), so a state file can be read without unpickling code.
"""

import contextlib
import random

import numpy as np
import torch


def numpy_state_to_plain(state):
    """`RandomState.get_state()` tuple -> dict of plain values (keys as an int64 tensor)."""
    kind, keys, pos, has_gauss, cached = state
    return dict(kind=str(kind), keys=torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos=int(pos),
                has_gauss=int(has_gauss), cached_gaussian=float(cached))


def numpy_state_from_plain(plain):
    """Inverse of `numpy_state_to_plain`."""
    keys = plain['keys']
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    return (plain['kind'], keys.astype(np.uint32), int(plain['pos']), int(plain['has_gauss']),
            float(plain['cached_gaussian']))


def _python_state_to_plain(state):
    version, internal, gauss_next = state
    return dict(version=int(version), internal=list(internal), gauss_next=gauss_next)


def _python_state_from_plain(plain):
    return (plain['version'], tuple(plain['internal']), plain['gauss_next'])


def capture(device):
    """States of python `random`, numpy's global RNG, torch's CPU RNG and `device`'s CUDA RNG."""
    state = dict(python=_python_state_to_plain(random.getstate()),
                 numpy=numpy_state_to_plain(np.random.get_state()),
                 torch=torch.random.get_rng_state())
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def restore(state, device):
    """Set the generators captured by `capture`; a CUDA state is only applied on a CUDA device."""
    random.setstate(_python_state_from_plain(state['python']))
    np.random.set_state(numpy_state_from_plain(state['numpy']))
    torch.random.set_rng_state(state['torch'])
    if device.type == 'cuda' and 'cuda' in state:
        torch.cuda.set_rng_state(state['cuda'], device)


@contextlib.contextmanager
def preserved(device):
    """Run a block without advancing any global RNG (for image grids and metrics at snapshots).

    The training stream must not depend on whether a snapshot happened, otherwise a run resumed
    from that snapshot could not reproduce the uninterrupted one.
    """
    state = capture(device)
    try:
        yield
    finally:
        restore(state, device)
