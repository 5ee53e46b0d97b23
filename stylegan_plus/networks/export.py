"""Safe network export: weights plus a JSON description, loadable without running pickled code.

Why: a network pickle (official or ours) embeds the Python source of its classes and
`pickle.load` executes it, so loading a pickle from an untrusted source runs arbitrary code.
The files written here hold only tensors and JSON:

* `<name>.pt`: `torch.save` of a plain {key: tensor} state dict, read back with
  `torch.load(weights_only=True)`, which refuses anything but tensors and plain containers;
  or `<name>.safetensors` when the `safetensors` package is installed (not required).
* `<name>.json`: class name to rebuild (e.g. `training.networks.Generator`), the constructor
  arguments (`init_args`, `init_kwargs`) and the weights file name.

`load_safe` rebuilds the class from this repository's code with
`dnnlib.util.construct_class_by_name` and loads the weights strictly. A snapshot dict
(`training_set_kwargs`, G, D, G_ema, augment_pipe) is exported as a folder with one file pair
per network and an index `snapshot.json`.
"""

import importlib
import json
import os

import numpy as np
import torch

import dnnlib
from torch_utils import persistence

FORMAT_NAME = 'stylegan-plus-safe-export'
FORMAT_VERSION = 1
SNAPSHOT_INDEX = 'snapshot.json'
SNAPSHOT_NETWORKS = ('G', 'D', 'G_ema', 'augment_pipe')

# Modules whose classes are exported under their official `training.*` names.
_OFFICIAL_MODULES = ('training.networks', 'training.augment')


def _safetensors():
    try:
        import safetensors.torch
        return safetensors.torch
    except ImportError:
        return None

#----------------------------------------------------------------------------
# JSON conversion of constructor arguments.

def _to_json(value, where):
    """Plain JSON value for a constructor argument (EasyDict -> dict, tuple -> list, numpy -> Python)."""
    if isinstance(value, dict):
        return {str(key): _to_json(item, f'{where}.{key}') for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f'{where}[{idx}]') for idx, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist(), where)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f'cannot export constructor argument {where} of type {type(value).__name__}: '
                    f'only numbers, strings, None, lists and dicts can be written to JSON')


def _from_json(value):
    """Inverse of `_to_json`, with dicts as `dnnlib.EasyDict` (as train.py passes them)."""
    if isinstance(value, dict):
        return dnnlib.EasyDict({key: _from_json(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value

#----------------------------------------------------------------------------
# Class names.

def export_class_name(module) -> str:
    """Dotted name under which `module`'s class can be rebuilt with construct_class_by_name.

    Classes exported by `training.networks`/`training.augment` get that official name. A class
    that came out of a pickle lives in an anonymous module (the embedded source); it is mapped
    by name to the official module (`save_safe` then checks that the rebuilt net takes the weights).
    """
    cls = type(module)
    name = getattr(cls, '_orig_class_name', cls.__name__)
    official = [f'{mod_name}.{name}' for mod_name in _OFFICIAL_MODULES
                if hasattr(importlib.import_module(mod_name), name)]
    for candidate in official:
        if dnnlib.util.get_obj_by_name(candidate) is cls:
            return candidate
    orig = cls.__mro__[1] if persistence.is_persistent(cls) else cls  # the undecorated class
    if not orig.__module__.startswith('_imported_module_'):
        return f'{orig.__module__}.{orig.__qualname__}'
    if official:
        return official[0]
    raise ValueError(f'cannot export {name!r}: it was loaded from a pickle and no module of this '
                     f'repository ({", ".join(_OFFICIAL_MODULES)}) defines a class of that name')


#----------------------------------------------------------------------------
# One network.

def _base_path(path):
    root, ext = os.path.splitext(os.fspath(path))
    return root if ext in ('.json', '.pt', '.safetensors') else os.fspath(path)


def save_safe(obj, path, use_safetensors=None, class_name=None):
    """Write a network (or a snapshot dict) without pickled code.

    obj: a persistent torch.nn.Module (has init_args/init_kwargs), or a snapshot dict with
    G, D, G_ema (and optional augment_pipe, training_set_kwargs). For a module, `path` is the
    base name: `<path>.json` plus `<path>.pt` (or `.safetensors`) are written; for a snapshot,
    `path` is a folder. use_safetensors: None = when installed. Returns the written paths.
    """
    if isinstance(obj, dict):
        return _save_snapshot(obj, path, use_safetensors)
    if not isinstance(obj, torch.nn.Module) or not hasattr(obj, 'init_kwargs'):
        raise TypeError(f'save_safe expects a persistent network module or a snapshot dict, got {type(obj).__name__}')
    st = _safetensors()
    if use_safetensors and st is None:
        raise ImportError('use_safetensors=True but the safetensors package is not installed')
    use_st = st is not None if use_safetensors is None else use_safetensors
    base = _base_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    weights_path = base + ('.safetensors' if use_st else '.pt')
    header = dict(format=FORMAT_NAME, version=FORMAT_VERSION,
                  class_name=class_name or export_class_name(obj),
                  init_args=_to_json(list(obj.init_args), 'init_args'),
                  init_kwargs=_to_json(obj.init_kwargs, 'init_kwargs'),
                  weights=os.path.basename(weights_path),
                  weights_format='safetensors' if use_st else 'torch')
    state = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in obj.state_dict().items()}
    if use_st:
        st.save_file(state, weights_path)
    else:
        torch.save(state, weights_path)
    with open(base + '.json', 'w', encoding='utf-8') as f:
        json.dump(header, f, indent=2)
    _rebuild(header, state, source=base + '.json')  # fail now, not when someone loads it
    return [base + '.json', weights_path]


def _read_weights(header, weights_path, device):
    if header.get('weights_format') == 'safetensors':
        st = _safetensors()
        if st is None:
            raise ImportError(f'{weights_path} is a safetensors file; install the safetensors package to load it')
        return st.load_file(weights_path, device=str(device))
    return torch.load(weights_path, map_location=device, weights_only=True)


def _rebuild(header, state, source, device='cpu'):
    """Construct `header['class_name']` from its JSON arguments and load `state` strictly."""
    with torch.random.fork_rng(devices=[]):  # the discarded random init must not move the caller's RNG
        net = dnnlib.util.construct_class_by_name(*_from_json(header['init_args']),
                                                  class_name=header['class_name'],
                                                  **_from_json(header['init_kwargs']))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f'{source}: the weights do not fit {header["class_name"]} built from the recorded '
                         f'arguments: {err}') from err
    return net.to(device).eval().requires_grad_(False)


def load_safe(path, device='cpu'):
    """Rebuild what `save_safe` wrote, without unpickling code.

    path: the base name / `.json` of one network, or a snapshot folder. Returns the module
    (eval mode, no grad, on `device`) or the snapshot dict (missing augment_pipe -> None).
    """
    if os.path.isdir(path):
        return _load_snapshot(path, device)
    json_path = _base_path(path) + '.json'
    with open(json_path, encoding='utf-8') as f:
        header = json.load(f)
    if header.get('format') != FORMAT_NAME or header.get('version') != FORMAT_VERSION:
        raise ValueError(f'{json_path} is not a {FORMAT_NAME} v{FORMAT_VERSION} file')
    weights_path = os.path.join(os.path.dirname(json_path), header['weights'])
    state = _read_weights(header, weights_path, device='cpu')
    return _rebuild(header, state, source=json_path, device=device)

#----------------------------------------------------------------------------
# Snapshot folders.

def _save_snapshot(data, folder, use_safetensors):
    names = [name for name in SNAPSHOT_NETWORKS if data.get(name) is not None]
    if not {'G', 'D', 'G_ema'} <= set(names):
        present = sorted(key for key, value in data.items() if value is not None)
        raise ValueError(f'a snapshot to export needs G, D and G_ema; got {present}')
    os.makedirs(folder, exist_ok=True)
    written = []
    for name in names:
        written += save_safe(data[name], os.path.join(folder, name), use_safetensors)
    index = dict(format=FORMAT_NAME, version=FORMAT_VERSION, networks=names,
                 training_set_kwargs=_to_json(data.get('training_set_kwargs'), 'training_set_kwargs'))
    index_path = os.path.join(folder, SNAPSHOT_INDEX)
    with open(index_path, 'w', encoding='utf-8') as f:
        json.dump(index, f, indent=2)
    return written + [index_path]


def _load_snapshot(folder, device):
    index_path = os.path.join(folder, SNAPSHOT_INDEX)
    if not os.path.isfile(index_path):
        raise FileNotFoundError(f'{folder} is not an exported snapshot: {SNAPSHOT_INDEX} is missing')
    with open(index_path, encoding='utf-8') as f:
        index = json.load(f)
    data = dict(training_set_kwargs=_from_json(index.get('training_set_kwargs')))
    for name in SNAPSHOT_NETWORKS:
        data[name] = load_safe(os.path.join(folder, name), device) if name in index['networks'] else None
    return data
