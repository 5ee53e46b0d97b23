"""Pickling of classes together with the source code of the module that defines them.

A class decorated with `persistent_class` pickles its instances as a call to
`_reconstruct_persistent_obj(meta)`, where `meta` carries the full source text of the defining
module. Loading such a pickle re-executes that source in a fresh module, so a pickle keeps working
after the code base has moved on. The format (meta keys, `_version`, global names) is shared with
official StyleGAN2-ADA pickles, in both directions.

Rules for a persistent class: it must be reachable by its name at the top level of its module,
its constructor arguments must be picklable, and its state must live in `__dict__` (or be handled
by its own `__getstate__`/`__setstate__`).
"""

import copy
import io
import inspect
import linecache
import pickle
import sys
import types
import uuid

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------
# Module state. The names are part of the official interface.

_version = 6                # Pickle format version written to and expected in `meta`.
_decorators = set()         # Every class returned by `persistent_class`.
_import_hooks = []          # Callables `hook(meta) -> meta` applied when loading.
_module_to_src_dict = {}    # Module object -> its source text.
_src_to_module_dict = {}    # Source text -> module object (one module per distinct source).

# Original class -> its persistent subclass, so that wrapping twice yields the same class.
_wrapper_cache = {}

# Leaf values accepted as constructor arguments without a trial pickle.
_PLAIN_TYPES = (str, bytes, bytearray, int, float, complex, bool, type(None), np.ndarray, torch.Tensor)

#----------------------------------------------------------------------------

def persistent_class(orig_class):
    """Return a subclass of `orig_class` whose instances pickle with their module's source.

    Usable as a class decorator. The subclass keeps the original `__name__`, records the
    constructor arguments (deep copies, see `init_args`/`init_kwargs`) and checks at
    construction time that they can be pickled. Applying it to a class that is already
    persistent returns that class unchanged.
    """
    if not isinstance(orig_class, type):
        raise TypeError(f'persistent_class expects a class, got {orig_class!r}')
    if is_persistent(orig_class):
        return orig_class
    if orig_class in _wrapper_cache:
        return _wrapper_cache[orig_class]
    module = sys.modules.get(orig_class.__module__)
    if module is None:
        raise ValueError(f'persistent_class: module {orig_class.__module__!r} of class '
                         f'{orig_class.__name__!r} is not in sys.modules')
    wrapper = _make_wrapper(orig_class, _module_to_src(module))
    _decorators.add(wrapper)
    _wrapper_cache[orig_class] = wrapper
    return wrapper


def _make_wrapper(orig_class, module_src):
    """Build the persistent subclass of `orig_class`; `module_src` is its module's source."""

    class Decorator(orig_class):
        _orig_module_src = module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Set after the base constructor so that they come last in the pickled state.
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)
            _require_pickleable((args, kwargs), orig_class.__name__)

        @property
        def init_args(self):
            """Positional constructor arguments (a deep-copied tuple)."""
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self):
            """Keyword constructor arguments (a deep-copied `dnnlib.EasyDict`)."""
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            return _persistent_reduce(self)

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__name__
    Decorator.__doc__ = orig_class.__doc__
    return Decorator


def _persistent_reduce(obj):
    """Reduce tuple of a persistent object: `(_reconstruct_persistent_obj, (meta,), None)`."""
    cls = type(obj)
    module = _src_to_module_dict.get(cls._orig_module_src)
    if module is not None and getattr(module, cls._orig_class_name, None) is None:
        raise pickle.PicklingError(f'Cannot pickle {cls._orig_class_name!r}: it is not a top-level '
                                   f'name of module {module.__name__!r}, so it could not be found when loading')
    getstate = getattr(obj, '__getstate__', None)
    state = getstate() if getstate is not None else obj.__dict__
    # Plain dict with this exact key order: the official format.
    meta = dict(type='class', version=_version, module_src=cls._orig_module_src,
                class_name=cls._orig_class_name, state=state)
    return (_reconstruct_persistent_obj, (meta,), None)

#----------------------------------------------------------------------------

def is_persistent(obj):
    """True if `obj` is a class returned by `persistent_class` or an instance of one."""
    try:
        if obj in _decorators:
            return True
    except TypeError: # Unhashable objects cannot be classes.
        pass
    return type(obj) in _decorators


def import_hook(hook):
    """Register `hook(meta) -> meta`, called on the EasyDict `meta` of every loaded object.

    Hooks run in registration order before the embedded source is executed, so they can patch
    `meta.module_src`, `meta.class_name` or `meta.state` of old pickles. A hook must return the
    (possibly new) meta, never None. Returns `hook`, so it can be used as a decorator.
    """
    if not callable(hook):
        raise TypeError(f'import_hook expects a callable, got {hook!r}')
    _import_hooks.append(hook)
    return hook

#----------------------------------------------------------------------------

def _reconstruct_persistent_obj(meta):
    """Rebuild a persistent object from its pickled `meta` (called by the unpickler).

    Executes `meta['module_src']` in a new module (once per distinct source), wraps the class named
    `meta['class_name']` with `persistent_class`, and restores `meta['state']` without calling
    `__init__`.
    """
    meta = dnnlib.EasyDict(meta)
    meta.state = dnnlib.EasyDict(meta.state)
    for hook in _import_hooks:
        meta = hook(meta)
        if meta is None:
            raise TypeError(f'Import hook {hook!r} returned None; it must return the meta it was given (or a replacement)')
    if meta.version != _version:
        raise ValueError(f'Unsupported persistent pickle version {meta.version!r}; this code reads version {_version}')
    if meta.type != 'class':
        raise ValueError(f"Unsupported persistent object type {meta.type!r}; only 'class' is known")

    module = _src_to_module(meta.module_src)
    orig_class = getattr(module, meta.class_name, None)
    if not isinstance(orig_class, type):
        raise ValueError(f'Embedded source defines no class named {meta.class_name!r}')
    cls = persistent_class(orig_class)
    obj = cls.__new__(cls)
    setstate = getattr(obj, '__setstate__', None)
    if callable(setstate):
        setstate(meta.state) # torch.nn.Module fills in attributes missing from older pickles here.
    else:
        obj.__dict__.update(meta.state)
    return obj

#----------------------------------------------------------------------------

def _module_to_src(module):
    """Source text of `module`, memoised so that every class of a module shares one string object
    (pickle then stores it once)."""
    src = _module_to_src_dict.get(module)
    if src is None:
        try:
            src = inspect.getsource(module)
        except (OSError, TypeError) as exc:
            raise OSError(f'persistent_class: cannot read the source code of module {module.__name__!r}; '
                          f'persistent classes must be defined in a module file') from exc
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
    return src


def _src_to_module(src):
    """Module executed from `src`, created on first use and reused for identical text."""
    module = _src_to_module_dict.get(src)
    if module is None:
        name = '_imported_module_' + uuid.uuid4().hex
        module = types.ModuleType(name)
        # Registered before exec: decorators running inside the source look the module up.
        sys.modules[name] = module
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
        filename = f'<persistent source {name}>'
        # Lets tracebacks and inspect show lines of the embedded code.
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        try:
            exec(compile(src, filename, 'exec'), module.__dict__) # pylint: disable=exec-used
        except BaseException:
            # Forget a half-executed module so that a retry (e.g. after fixing an import) starts clean.
            del sys.modules[name], _module_to_src_dict[module], _src_to_module_dict[src]
            raise
    return module

#----------------------------------------------------------------------------

def _require_pickleable(obj, class_name):
    """Raise TypeError naming the offending value if `obj` (constructor arguments) cannot be pickled."""
    pending = [obj]
    visited = set()
    while pending:
        item = pending.pop()
        if isinstance(item, _PLAIN_TYPES) or is_persistent(item) or id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
            continue
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
            continue
        try:
            pickle.dump(item, io.BytesIO())
        except Exception as exc:
            raise TypeError(f'{class_name}: constructor argument {item!r} of type {type(item).__name__} '
                            f'cannot be pickled ({exc}); persistent classes need picklable arguments') from exc

#----------------------------------------------------------------------------
