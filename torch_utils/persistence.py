"""Pickles that carry the code of their classes.

An instance of a class wrapped by `persistent_class` does not pickle as a reference to its class
(which breaks as soon as the class is renamed or edited) but as a call
`_reconstruct_persistent_obj(meta)`, where `meta` holds the complete source text of the module
that defined the class, the class name and the instance state. Unpickling runs that source in a
new, private module and rebuilds the object from it, so a network pickle stays loadable and
behaves the same whatever happened to the code base since.

The format (the entry point, the meta fields and their order, `_version`, the `_init_args` /
`_init_kwargs` state entries) is the one of official StyleGAN2-ADA pickles: theirs load here and
ours load there (docs/compat.md, 3.1).

What a persistent class needs: to be a top-level name of its module (that is how the class is
found again in the source), picklable constructor arguments, and state in `__dict__` or handled
by `__getstate__`/`__setstate__`.
"""

import copy
import inspect
import io
import itertools
import linecache
import pickle
import sys
import types
import uuid

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------
# Module state. These names are listed in the compatibility contract.

_version = 6                # format version written into every meta and required when reading
_decorators = set()         # every class made by persistent_class
_import_hooks = []          # hook(meta) -> meta, applied in order to each object being loaded
_module_to_src_dict = {}    # module -> its source text
_src_to_module_dict = {}    # source text -> the module holding it (one per distinct text)

_wrapped = {}               # original class -> its persistent subclass (wrapping twice gives one class)

# Constructor arguments of these types are known to pickle; anything else gets a trial pickle.
_PICKLE_SAFE_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.Tensor, np.ndarray)

#----------------------------------------------------------------------------
# Writing side.

def persistent_class(orig_class):
    """Make `orig_class` pickle together with the source code of its module.

    orig_class: a class defined at the top level of an importable module file.
    Returns a subclass of it, with the same `__name__`, that records its constructor arguments
    (`init_args`, `init_kwargs`) and pickles as described in the module docstring. Usable as a
    class decorator. A class that is already persistent is returned as it is.
    """
    if not inspect.isclass(orig_class):
        raise TypeError(f'persistent_class: expected a class, got {orig_class!r}')
    if is_persistent(orig_class):
        return orig_class
    wrapper = _wrapped.get(orig_class)
    if wrapper is None:
        wrapper = _derive_persistent(orig_class, _source_of(_defining_module(orig_class)))
        _wrapped[orig_class] = wrapper
        _decorators.add(wrapper)
    return wrapper


def _defining_module(cls):
    module = sys.modules.get(cls.__module__)
    if module is None:
        raise ValueError(f'persistent_class: class {cls.__name__!r} claims module {cls.__module__!r}, '
                         f'which is not imported (not in sys.modules)')
    return module


def _derive_persistent(base, module_src):
    """Build the persistent subclass of `base`, whose module source is `module_src`."""

    def __init__(self, *args, **kwargs):
        _check_arguments_pickle(base.__name__, args, kwargs)
        super(wrapper, self).__init__(*args, **kwargs)
        # Stored after the base constructor has run, so that they are the last two entries of the
        # pickled state, where official pickles have them.
        vars(self).update(_init_args=copy.deepcopy(args), _init_kwargs=copy.deepcopy(kwargs))

    body = {
        '__module__': __name__,
        '__qualname__': base.__name__,
        '__doc__': base.__doc__,
        '_orig_module_src': module_src,
        '_orig_class_name': base.__name__,
        '__init__': __init__,
        'init_args': property(_init_args_copy),
        'init_kwargs': property(_init_kwargs_copy),
        '__reduce__': _persistent_reduce,
    }
    wrapper = types.new_class(base.__name__, (base,), exec_body=lambda namespace: namespace.update(body))
    return wrapper


def _init_args_copy(self):
    """tuple: the positional constructor arguments (a deep copy; editing it changes nothing)."""
    return copy.deepcopy(self._init_args)


def _init_kwargs_copy(self):
    """dnnlib.EasyDict: the keyword constructor arguments (a deep copy)."""
    return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))


def _persistent_reduce(self):
    """Pickle as `_reconstruct_persistent_obj(meta)`; meta is a plain dict in the official key order."""
    _check_findable(self._orig_module_src, self._orig_class_name)
    meta = {
        'type': 'class',
        'version': _version,
        'module_src': self._orig_module_src,
        'class_name': self._orig_class_name,
        'state': _state_of(self),
    }
    return _reconstruct_persistent_obj, (meta,)


def _state_of(obj):
    """The instance state to embed: `__getstate__()` (torch modules leave out their compile cache), else `__dict__`."""
    getstate = getattr(obj, '__getstate__', None)
    state = None if getstate is None else getstate()
    return vars(obj) if state is None else state


def _check_findable(module_src, class_name):
    """Refuse to write a pickle whose class could not be looked up by name when it is loaded."""
    module = _src_to_module_dict.get(module_src)
    if module is not None and not isinstance(getattr(module, class_name, None), type):
        raise pickle.PicklingError(
            f'cannot pickle an instance of {class_name!r}: module {module.__name__!r} has no top-level '
            f'class of that name, and loading looks the class up by name in the module source')


def _check_arguments_pickle(class_name, args, kwargs):
    """Raise TypeError naming the first constructor argument that cannot be pickled."""
    for item in _items_needing_trial((args, kwargs)):
        _trial_pickle(class_name, item)


def _items_needing_trial(root):
    """Yield the objects inside `root` that are neither containers nor known to pickle.

    Containers are opened rather than pickled whole, so that an error names the culprit itself;
    plain leaves and persistent objects are trusted.
    """
    stack, visited = [root], set()
    while stack:
        item = stack.pop()
        if id(item) in visited or isinstance(item, _PICKLE_SAFE_LEAVES) or is_persistent(item):
            continue
        visited.add(id(item))
        if isinstance(item, dict):
            stack.extend(itertools.chain(item.keys(), item.values()))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            yield item


def _trial_pickle(class_name, item):
    try:
        pickle.dump(item, io.BytesIO())
    except Exception as exc:
        raise TypeError(f'{class_name}(...): argument {item!r} ({type(item).__name__}) cannot be pickled: '
                        f'{exc}. A persistent class stores its constructor arguments in every pickle, '
                        f'so they must be picklable.') from exc

#----------------------------------------------------------------------------

def is_persistent(obj):
    """bool: `obj` is a class made by `persistent_class`, or an instance of one."""
    if isinstance(obj, type):
        return obj in _decorators
    return type(obj) in _decorators


def import_hook(hook):
    """Register `hook(meta) -> meta` to edit each persistent object as it is loaded.

    meta: dnnlib.EasyDict with `type, version, module_src, class_name, state` (state an EasyDict).
    Hooks run in registration order, before the source is executed, and must return the meta to
    continue with (the same one edited, or a new one), never None. Typical use: patch the
    `module_src` of old pickles. Returns `hook`, so it also works as a decorator.
    """
    if not callable(hook):
        raise TypeError(f'import_hook: expected a callable, got {hook!r}')
    _import_hooks.append(hook)
    return hook

#----------------------------------------------------------------------------
# Reading side.

def _reconstruct_persistent_obj(meta):
    """Rebuild one persistent object from its meta; the unpickler calls this (official entry point).

    The class comes from executing `meta['module_src']` (once per distinct text) and looking up
    `meta['class_name']`; the instance is created without calling `__init__` and given `meta['state']`.
    """
    meta = _apply_import_hooks(dnnlib.EasyDict(meta, state=dnnlib.EasyDict(meta['state'])))
    _check_meta(meta)
    cls = persistent_class(_class_from_source(meta.module_src, meta.class_name))
    obj = cls.__new__(cls)
    _restore_state(obj, meta.state)
    return obj


def _apply_import_hooks(meta):
    for hook in _import_hooks:
        edited = hook(meta)
        if edited is None:
            raise TypeError(f'persistence import hook {hook!r} returned None; '
                            f'a hook must return the meta it was given, or a replacement')
        meta = edited
    return meta


def _check_meta(meta):
    if meta.version != _version:
        raise ValueError(f'persistent object with format version {meta.version!r}: '
                         f'only version {_version} can be read')
    if meta.type != 'class':
        raise ValueError(f"persistent object of type {meta.type!r}: only type 'class' can be read")


def _class_from_source(module_src, class_name):
    found = getattr(_module_from_source(module_src), class_name, None)
    if not isinstance(found, type):
        raise ValueError(f'the source embedded in the pickle has no top-level class {class_name!r}')
    return found


def _restore_state(obj, state):
    """Give a fresh instance its pickled state. torch.nn.Module's `__setstate__` also adds
    attributes that newer torch versions expect and older pickles lack."""
    setstate = getattr(type(obj), '__setstate__', None)
    if setstate is None:
        obj.__dict__.update(state)
    else:
        setstate(obj, state)

#----------------------------------------------------------------------------
# Source text <-> module.

def _remember(module, src):
    _module_to_src_dict[module] = src
    _src_to_module_dict[src] = module


def _forget(module, src):
    sys.modules.pop(module.__name__, None)
    _module_to_src_dict.pop(module, None)
    _src_to_module_dict.pop(src, None)


def _source_of(module):
    """The source text of `module`; one shared str per module, which pickle then stores only once."""
    if module in _module_to_src_dict:
        return _module_to_src_dict[module]
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError) as exc:
        raise OSError(f'persistent_class: no source code for module {module.__name__!r}; persistent '
                      f'classes must live in a module file, not in an interactive session') from exc
    _remember(module, text)
    return text


def _module_from_source(src):
    """The module executed from `src`: reused when the same text was seen before, else made now."""
    module = _src_to_module_dict.get(src)
    return module if module is not None else _execute_as_new_module(src)


def _execute_as_new_module(src):
    name = f'_imported_module_{uuid.uuid4().hex}'
    filename = f'<embedded source of {name}>'
    code = compile(src, filename, 'exec')
    module = types.ModuleType(name)
    # Registered before running: persistent_class, called by the source itself, finds the module
    # in sys.modules and its text here (inspect cannot read an exec'd module).
    _remember(module, src)
    sys.modules[name] = module
    linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)  # readable tracebacks
    try:
        exec(code, vars(module))  # pylint: disable=exec-used
    except BaseException:
        _forget(module, src)    # nothing half-built stays behind: a second attempt starts from scratch
        raise
    return module

#----------------------------------------------------------------------------
