"""Safe network export: weights plus a JSON description, loadable without running any code.

Why: a network pickle (official or ours) embeds the Python source of its classes and
`pickle.load` executes it, so loading a pickle from an untrusted source runs arbitrary code.
The files written here hold only tensors and JSON:

* `<name>.safetensors` (default; the safetensors format cannot hold code) or, with
  `use_safetensors=False`, `<name>.pt`: `torch.save` of a plain {key: tensor} dict, read back with
  `torch.load(weights_only=True)`, which refuses anything but tensors and plain containers.
* `<name>.json`: the class to rebuild (e.g. `training.networks.Generator`), its constructor
  arguments (`init_args`, `init_kwargs`) and the weights file name.

`load_safe` checks a JSON file completely before it constructs anything: the class, and every
`class_name` inside the arguments (network classes build their sub-networks by name), must be on
the allow-list of this package's network classes (`safe_class_names()`; loss plugins add their
extra networks' classes with `register_safe_class`); every argument must be a finite number, a
string, a bool, None, or a list/dict of them, and must be a parameter of that class's
constructor. Anything else is refused with `UnsafeExportError`.

A snapshot dict (`training_set_kwargs`, G, D, G_ema, augment_pipe, and the loss plugin's extra
networks) is exported as a folder with one file pair per network and an index `snapshot.json`.
The index also carries the latent prior the snapshot records (`z_dist`, see
`stylegan_plus.sampling.prior`), so tools sample an exported generator from the prior it was
trained on; an export without one (official pickles record none) means normal.
Exports are assembled in a temporary folder, checked by loading them back, and only then moved
into place: a failed export leaves nothing behind.
"""

import importlib
import inspect
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import torch

import dnnlib
from stylegan_plus.sampling import prior as prior_lib
from torch_utils import persistence

FORMAT_NAME = 'stylegan-plus-safe-export'
FORMAT_VERSION = 1
SNAPSHOT_INDEX = 'snapshot.json'
SNAPSHOT_NETWORKS = ('G', 'D', 'G_ema', 'augment_pipe')   # official keys; extra networks follow
WEIGHT_FORMATS = {'safetensors': '.safetensors', 'torch': '.pt'}
MAX_DEPTH = 16              # nesting of constructor arguments; deeper JSON is refused

# The allow-list. The first module naming a class gives the name written on export (the official
# `training.*` names for StyleGAN2 and the augment pipe); the others are accepted aliases.
_STYLEGAN2_CLASSES = ('Generator', 'Discriminator', 'MappingNetwork', 'SynthesisNetwork', 'SynthesisBlock',
                      'SynthesisLayer', 'ToRGBLayer', 'FullyConnectedLayer', 'Conv2dLayer', 'DiscriminatorBlock',
                      'DiscriminatorEpilogue', 'MinibatchStdLayer')
_BUILTIN_SAFE_CLASSES = (
    ('training.networks', _STYLEGAN2_CLASSES),
    ('training.augment', ('AugmentPipe',)),
    ('stylegan_plus.networks.dcgan', ('Generator', 'Discriminator')),
    ('stylegan_plus.networks.mlp', ('Generator', 'Discriminator')),
    ('stylegan_plus.networks.encoders', ('Dense', 'DiscriminatorEncoder', 'FusionHead', 'RFAutoencoder')),
    ('stylegan_plus.networks.stylegan2', _STYLEGAN2_CLASSES),
    ('stylegan_plus.training.augment', ('AugmentPipe',)),
    ('torch.nn', ('Linear',)),     # CLR-GAN's latent head and other plain linear heads
)
# Plain (not persistent) modules record no constructor arguments; these are read from their attributes.
_PLAIN_ARGUMENTS = {
    torch.nn.Linear: lambda m: dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None),
}
_registered = {}            # name -> class, from register_safe_class
_IDENTIFIER = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class UnsafeExportError(ValueError):
    """A safe export that `load_safe` refuses (or `save_safe` cannot write); the message says why."""


def _undecorated(cls):
    # A persistent class is a generated subclass; its base is the class as written.
    return cls.__bases__[0] if persistence.is_persistent(cls) else cls


def register_safe_class(cls, name=None):
    """Allow `load_safe` to build `cls` (a loss plugin's extra network class), under `name`.

    name: the dotted name written to and accepted from JSON; default `<module>.<qualname>` of the
    class as written. Returns `cls`, so it works as a class decorator (written above @persistent_class).
    """
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        raise TypeError(f'register_safe_class expects a torch.nn.Module subclass, got {cls!r}')
    base = _undecorated(cls)
    _registered[name or f'{base.__module__}.{base.__qualname__}'] = cls
    return cls


def safe_class_names():
    """Dotted names `load_safe` may construct, in allow-list order (built-ins, then registered)."""
    return [f'{module}.{name}' for module, names in _BUILTIN_SAFE_CLASSES for name in names] + list(_registered)


def _safe_class(name):
    """The allowed class of that name, or None. Importing the allow-listed modules runs only our code."""
    if name in _registered:
        return _registered[name]
    module_name, _, class_name = str(name).rpartition('.')
    if not any(module_name == module and class_name in names for module, names in _BUILTIN_SAFE_CLASSES):
        return None
    return getattr(importlib.import_module(module_name), class_name)


def _require_safe_class(name, where):
    cls = _safe_class(name) if isinstance(name, str) else None
    if cls is None:
        raise UnsafeExportError(f'{where}: class {name!r} is not on the allow-list of network classes; accepted are '
                                f'{", ".join(safe_class_names())} (loss plugins add theirs with register_safe_class)')
    return cls

#----------------------------------------------------------------------------
# Checking constructor arguments (JSON values) before anything is built.

def _check_value(value, where, depth=0):
    """Refuse anything but finite numbers, strings, bools, None and lists/dicts of them."""
    if depth > MAX_DEPTH:
        raise UnsafeExportError(f'{where}: arguments nested deeper than {MAX_DEPTH} levels are not accepted')
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsafeExportError(f'{where} = {value!r}: only finite numbers are accepted')
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for idx, item in enumerate(value):
            _check_value(item, f'{where}[{idx}]', depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnsafeExportError(f'{where}: key {key!r} is not a string')
            _check_value(item, f'{where}.{key}', depth + 1)
        if 'class_name' in value:  # a sub-network built by name inside the constructor
            rest = {key: item for key, item in value.items() if key != 'class_name'}
            _check_signature(_require_safe_class(value['class_name'], f'{where}.class_name'), [], rest, where)
        return
    raise UnsafeExportError(f'{where}: a value of type {type(value).__name__} is not accepted; numbers, strings, '
                            f'bools, None, lists and dicts are')


def _check_signature(cls, args, kwargs, where):
    """Refuse arguments the constructor of `cls` does not take (checked by binding, nothing is called)."""
    signature = inspect.signature(_undecorated(cls).__init__)
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as err:
        accepted = [name for name in list(signature.parameters)[1:]]
        raise UnsafeExportError(f'{where}: {err} (the constructor of {cls.__name__} takes '
                                f'{", ".join(accepted)})') from None


def _check_header(header, source):
    """Validate a network JSON completely; returns (class, init_args, init_kwargs, weights file name)."""
    if not isinstance(header, dict) or header.get('format') != FORMAT_NAME or header.get('version') != FORMAT_VERSION:
        raise UnsafeExportError(f'{source} is not a {FORMAT_NAME} v{FORMAT_VERSION} file')
    cls = _require_safe_class(header.get('class_name'), f'{source}: class_name')
    args, kwargs = header.get('init_args', []), header.get('init_kwargs', {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise UnsafeExportError(f'{source}: init_args must be a list and init_kwargs a dict')
    _check_value(args, f'{source}: init_args')
    _check_value(kwargs, f'{source}: init_kwargs')
    _check_signature(cls, args, kwargs, f'{source}: init_kwargs')
    weights = header.get('weights')
    fmt = header.get('weights_format')
    if fmt not in WEIGHT_FORMATS or not isinstance(weights, str) or os.path.basename(weights) != weights \
            or weights.startswith('.') or not weights.endswith(WEIGHT_FORMATS[fmt]):
        raise UnsafeExportError(f'{source}: weights {weights!r} ({fmt!r}) must be a file name beside the JSON, '
                                f'in one of the formats {", ".join(WEIGHT_FORMATS)}')
    return cls, args, kwargs, weights, fmt

#----------------------------------------------------------------------------
# JSON conversion of constructor arguments.

def _to_json(value, where, networks=True):
    """Plain JSON value for a constructor argument (EasyDict -> dict, tuple -> list, numpy -> Python).

    networks: the value holds constructor arguments, so a `class_name` in a dict names a
    sub-network, written under its allow-list name (False for plain data such as training_set_kwargs).
    """
    if isinstance(value, dict):
        converted = {str(key): _to_json(item, f'{where}.{key}', networks) for key, item in value.items()}
        if networks and isinstance(converted.get('class_name'), str):
            converted['class_name'] = _nested_class_name(converted['class_name'], f'{where}.class_name')
        return converted
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f'{where}[{idx}]', networks) for idx, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist(), where, networks)
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
# Class names on export.

def _canonical_name(base):
    """First allow-list name whose class, as written, is `base`; None if there is none."""
    for name in safe_class_names():
        cls = _safe_class(name)
        if cls is not None and _undecorated(cls) is base:
            return name
    return None


def _same_name_candidates(base):
    """Allow-list names of classes called like `base`, each class once (its export name)."""
    names = [_canonical_name(_undecorated(_safe_class(name))) for name in safe_class_names()
             if name.rpartition('.')[2] == base.__name__]
    return list(dict.fromkeys(name for name in names if name is not None))


def _source_of(name):
    module = sys.modules[_undecorated(_safe_class(name)).__module__]
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return None


def _rebuilds(name, module):
    """Whether the allowed class `name`, built from module's recorded arguments, has its state layout."""
    try:
        with torch.random.fork_rng(devices=[]):
            probe = _safe_class(name)(*module.init_args, **module.init_kwargs)
    except Exception:  # pylint: disable=broad-except  # wrong family: different constructor
        return False
    layout = lambda net: {key: tuple(t.shape) for key, t in net.state_dict().items()}  # noqa: E731
    return layout(probe) == layout(module)


def _resolve_pickled(cls, base, module=None):
    """Export name of a class executed from a pickle's embedded source (an anonymous module).

    The allow-listed class of the same name whose module source is the embedded text, else the
    first whose constructor, given the recorded arguments, yields the same state layout (an
    official pickle, or one written by an older version of this package).
    """
    candidates = _same_name_candidates(base)
    source = getattr(cls, '_orig_module_src', None)
    for name in candidates:
        if source is not None and _source_of(name) == source:
            return name
    for name in candidates if module is not None else ():
        if _rebuilds(name, module):
            return name
    raise UnsafeExportError(f'cannot export {base.__name__!r} loaded from a pickle: no allow-listed class '
                            f'({", ".join(candidates) or "none of that name"}) matches its code or its weights')


def export_class_name(module) -> str:
    """Dotted allow-list name under which `module`'s class is exported (see the module docstring)."""
    cls = type(module)
    base = _undecorated(cls)
    name = _canonical_name(base)
    if name is not None:
        return name
    if base.__module__.startswith('_imported_module_'):
        return _resolve_pickled(cls, base, module)
    raise UnsafeExportError(f'cannot export {base.__module__}.{base.__qualname__}: it is not on the allow-list of '
                            f'network classes (register it with stylegan_plus.networks.export.register_safe_class)')


def _nested_class_name(name, where):
    """Allow-list name for a `class_name` inside constructor arguments (maps pickled anonymous modules)."""
    if _safe_class(name) is not None:
        return name
    if name.startswith('_imported_module_'):
        module_name, _, class_name = name.rpartition('.')
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type):
            return _resolve_pickled(cls, _undecorated(cls))
    raise UnsafeExportError(f'cannot export {where} = {name!r}: not on the allow-list of network classes')

#----------------------------------------------------------------------------
# One network.

def _base_path(path):
    root, ext = os.path.splitext(os.fspath(path))
    return root if ext in ('.json', '.pt', '.safetensors') else os.fspath(path)


def _safetensors():
    try:
        import safetensors.torch
        return safetensors.torch
    except ImportError:
        return None


def _require_safetensors(what):
    st = _safetensors()
    if st is None:
        raise ImportError(f'{what} needs the safetensors package (pip install safetensors); '
                          f'use_safetensors=False writes the .pt form instead')
    return st


def _describe(module, base_name, use_safetensors, class_name):
    """(header dict, CPU state dict) of one persistent module (or plain torch.nn.Linear)."""
    plain = _PLAIN_ARGUMENTS.get(type(module))
    if plain is None and not (isinstance(module, torch.nn.Module) and persistence.is_persistent(module)):
        raise TypeError(f'save_safe expects a persistent network module or a snapshot dict, got '
                        f'{type(module).__name__} (a plain module does not record the constructor arguments '
                        f'needed to rebuild it)')
    fmt = 'safetensors' if use_safetensors else 'torch'
    if class_name is not None:
        _require_safe_class(class_name, 'class_name')
    args, kwargs = ([], plain(module)) if plain is not None else (list(module.init_args), module.init_kwargs)
    header = dict(format=FORMAT_NAME, version=FORMAT_VERSION,
                  class_name=class_name or export_class_name(module),
                  init_args=_to_json(args, 'init_args'),
                  init_kwargs=_to_json(kwargs, 'init_kwargs'),
                  weights=base_name + WEIGHT_FORMATS[fmt], weights_format=fmt)
    state = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in module.state_dict().items()}
    return header, state


def _write_network(module, folder, base_name, use_safetensors, class_name=None):
    """Write `<base_name>.json` and its weights into `folder`, then load them back as a check.

    Returns the two file names. Raises if the files would not rebuild the same weights.
    """
    header, state = _describe(module, base_name, use_safetensors, class_name)
    weights_path = os.path.join(folder, header['weights'])
    if use_safetensors:
        _require_safetensors('use_safetensors=True').save_file(state, weights_path)
    else:
        torch.save(state, weights_path)
    json_path = os.path.join(folder, base_name + '.json')
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(header, f, indent=2, allow_nan=False)
    rebuilt = _load_network(json_path, 'cpu').state_dict()
    if any(not torch.equal(rebuilt[key], tensor.to(rebuilt[key].dtype)) for key, tensor in state.items()):
        raise UnsafeExportError(f'{header["class_name"]}: the exported weights do not load back unchanged')
    return [os.path.basename(json_path), header['weights']]


def _staging_folder(target):
    """A fresh temporary folder beside `target` (same file system, so renames are atomic)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f'.{os.path.basename(os.path.abspath(target))}.partial-', dir=parent)


def save_safe(obj, path, use_safetensors=True, class_name=None):
    """Write a network (or a snapshot dict) without pickled code.

    obj: a persistent torch.nn.Module (it records init_args/init_kwargs) or a torch.nn.Linear, or a
    snapshot dict with G, D, G_ema (and optional augment_pipe, training_set_kwargs, extra networks). For a module,
    `path` is the base name: `<path>.json` plus `<path>.safetensors` (or `.pt` with
    use_safetensors=False) are written; for a snapshot, `path` is a new (or empty) folder.
    class_name: an allow-listed name to record instead of the detected one.
    Returns the written paths. On failure nothing is left behind.
    """
    if use_safetensors:
        _require_safetensors('the default export format')
    if isinstance(obj, dict):
        return _save_snapshot(obj, os.fspath(path), use_safetensors)
    base = _base_path(path)
    staging = _staging_folder(base)
    try:
        names = _write_network(obj, staging, os.path.basename(base), use_safetensors, class_name)
        written = [os.path.join(os.path.dirname(base), name) for name in names]
        for name, final in sorted(zip(names, written), key=lambda item: item[0].endswith('.json')):
            os.replace(os.path.join(staging, name), final)  # weights first: the JSON refers to them
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _load_network(json_path, device):
    with open(json_path, encoding='utf-8') as f:
        try:
            header = json.load(f)
        except ValueError as err:
            raise UnsafeExportError(f'{json_path} is not valid JSON: {err}') from None
    cls, args, kwargs, weights, fmt = _check_header(header, json_path)
    weights_path = os.path.join(os.path.dirname(json_path), weights)
    if fmt == 'safetensors':
        state = _require_safetensors(f'reading {weights_path}').load_file(weights_path, device='cpu')
    else:
        state = torch.load(weights_path, map_location='cpu', weights_only=True)
    with torch.random.fork_rng(devices=[]):  # the discarded random init must not move the caller's RNG
        net = cls(*_from_json(args), **_from_json(kwargs))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UnsafeExportError(f'{json_path}: the weights do not fit {header["class_name"]} built from the recorded '
                                f'arguments: {err}') from err
    return net.to(device).eval().requires_grad_(False)


def load_safe(path, device='cpu'):
    """Rebuild what `save_safe` wrote, without unpickling or running code from the files.

    path: the base name / `.json` of one network, or a snapshot folder. Returns the module
    (eval mode, no grad, on `device`) or the snapshot dict (missing augment_pipe -> None; `z_dist`
    when the export records a prior).
    Raises UnsafeExportError, before building anything, for a file outside the allow-list/schema.
    """
    if os.path.isdir(path):
        return _load_snapshot(os.fspath(path), device)
    return _load_network(_base_path(path) + '.json', device)

#----------------------------------------------------------------------------
# Snapshot folders.

def _snapshot_networks(data):
    """Names of the module entries to export: the official ones, then the extra networks."""
    names = [name for name in SNAPSHOT_NETWORKS if data.get(name) is not None]
    if not {'G', 'D', 'G_ema'} <= set(names):
        present = sorted(key for key, value in data.items() if value is not None)
        raise ValueError(f'a snapshot to export needs G, D and G_ema; got {present}')
    # Other entries that are not networks (none are written today) are data, not part of this export.
    extras = [name for name, value in data.items() if name not in SNAPSHOT_NETWORKS
              and isinstance(value, torch.nn.Module)]
    for name in extras:
        if not _IDENTIFIER.match(name):
            raise ValueError(f'snapshot entry {name!r} cannot be exported: a network name must be an identifier '
                             f'(it becomes a file name)')
    return names + extras


def _save_snapshot(data, folder, use_safetensors):
    if os.path.exists(folder) and not (os.path.isdir(folder) and not os.listdir(folder)):
        raise ValueError(f'{folder!r} already exists and is not an empty folder; a snapshot is exported into a new '
                         f'or empty folder')
    names = _snapshot_networks(data)
    staging = _staging_folder(folder)
    try:
        written = []
        for name in names:
            try:
                written += _write_network(data[name], staging, name, use_safetensors)
            except (TypeError, ValueError) as err:
                raise type(err)(f'snapshot entry {name!r}: {err}') from err
        index = dict(format=FORMAT_NAME, version=FORMAT_VERSION, networks=names,
                     training_set_kwargs=_to_json(data.get('training_set_kwargs'), 'training_set_kwargs',
                                                      networks=False))
        if data.get(prior_lib.SNAPSHOT_KEY) is not None:
            index[prior_lib.SNAPSHOT_KEY] = prior_lib.snapshot_z_dist(data)    # canonical; unknown names raise
        with open(os.path.join(staging, SNAPSHOT_INDEX), 'w', encoding='utf-8') as f:
            json.dump(index, f, indent=2, allow_nan=False)
        if os.path.isdir(folder):
            os.rmdir(folder)  # empty (checked above); rename cannot replace a folder everywhere
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [os.path.join(folder, name) for name in written + [SNAPSHOT_INDEX]]


def _load_snapshot(folder, device):
    index_path = os.path.join(folder, SNAPSHOT_INDEX)
    if not os.path.isfile(index_path):
        raise FileNotFoundError(f'{folder} is not an exported snapshot: {SNAPSHOT_INDEX} is missing')
    with open(index_path, encoding='utf-8') as f:
        index = json.load(f)
    names = index.get('networks') if isinstance(index, dict) else None
    if not isinstance(names, list) or index.get('format') != FORMAT_NAME \
            or not all(isinstance(name, str) and _IDENTIFIER.match(name) for name in names):
        raise UnsafeExportError(f'{index_path} is not a {FORMAT_NAME} index (networks must be a list of identifiers)')
    data = dict(training_set_kwargs=_from_json(index.get('training_set_kwargs')))
    z_dist = _index_z_dist(index, index_path)
    for name in SNAPSHOT_NETWORKS:
        data[name] = None
    for name in names:
        data[name] = _load_network(os.path.join(folder, name + '.json'), device)
    if z_dist is not None:
        data[prior_lib.SNAPSHOT_KEY] = z_dist
    return data


def _index_z_dist(index, index_path):
    """The prior an index records ('normal' or 'uniform'), or None when it records none (= normal).

    Checked before any network is built: anything but a known prior name is refused.
    """
    if prior_lib.SNAPSHOT_KEY not in index:
        return None
    recorded = index[prior_lib.SNAPSHOT_KEY]
    if not isinstance(recorded, str) or recorded not in prior_lib.Z_DISTS:
        raise UnsafeExportError(f'{index_path}: {prior_lib.SNAPSHOT_KEY} = {recorded!r} is not a latent prior of this '
                                f'version; accepted are {", ".join(prior_lib.Z_DISTS)}')
    return recorded
