"""A torch-free catalogue of the built-in loss plugins, for `train.py --help` and `--loss=help`.

click must see every plugin option before it parses, but the plugin modules import torch. The
catalogue records what the CLI needs from the registry (name, role, description and option
declarations of each plugin) in a JSON file in the user cache folder. The file is named after
a SHA-256 of every source file of the `stylegan_plus` package, read as bytes, so an edit to any
plugin (or to anything a plugin could take a default from) selects a different file and the
catalogue is rebuilt from the real registry: a stale catalogue can never be used. When the
cache cannot be read or written, or a declaration does not survive JSON exactly, the real
registry is used, as before the catalogue existed.

Cache folder: $STYLEGAN_PLUS_CACHE_DIR, else $XDG_CACHE_HOME/stylegan-plus, else
~/.cache/stylegan-plus.
"""

import hashlib
import json
import os
import sys

from stylegan_plus.io import atomic

from .declarations import LossOption, format_loss_rows

FORMAT_VERSION = 2
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # .../stylegan_plus
_PLAIN_TYPES = {'int': int, 'float': float, 'str': str, 'bool': bool}


class Catalogue:
    """Loss rows (name, role, description) and their LossOptions, in registration order."""

    def __init__(self, losses):
        self.losses = losses    # list of (name, role, description, [LossOption])

    def options(self):
        """Every plugin's options: list of (loss name, LossOption), as `registry.all_loss_options()`."""
        return [(name, opt) for name, _role, _desc, opts in self.losses for opt in opts]

    def format_list(self):
        """Text for `--loss=help`, identical to `registry.format_loss_list()`."""
        return format_loss_rows((name, role, desc) for name, role, desc, _opts in self.losses)


def source_digest():
    """Hex SHA-256 over the relative paths and bytes of every .py file of the package (sorted)."""
    digest = hashlib.sha256(f'v{FORMAT_VERSION} py{sys.version_info[0]}.{sys.version_info[1]}'.encode())
    paths = []
    for folder, subfolders, files in os.walk(_PACKAGE_ROOT):
        subfolders[:] = [d for d in subfolders if d != '__pycache__']
        paths += [os.path.join(folder, f) for f in files if f.endswith('.py')]
    for path in sorted(paths):
        digest.update(os.path.relpath(path, _PACKAGE_ROOT).encode() + b'\0')
        with open(path, 'rb') as f:
            digest.update(f.read())
        digest.update(b'\0')
    return digest.hexdigest()


def cache_dir():
    """The folder holding catalogue files (see the module docstring)."""
    explicit = os.environ.get('STYLEGAN_PLUS_CACHE_DIR')
    if explicit:
        return explicit
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'stylegan-plus')


def cache_path(digest):
    return os.path.join(cache_dir(), f'loss-catalogue-{digest[:32]}.json')


def _survives_json(value):
    """True when `value` comes back from JSON equal and of the same type (None, bool, int, float, str)."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    return False


# A click IntRange/FloatRange given as a LossOption type, recognised by class name (this module
# does not import click) and recorded as a plain type with bounds.
_CLICK_RANGES = {'IntRange': 'int', 'FloatRange': 'float'}


def _plain_type_name(param_type):
    return next((name for name, plain in _PLAIN_TYPES.items() if param_type is plain), None)


def _type_record(opt):
    """{'type': name or None, 'min': ..., 'max': ...} recording `opt`'s type exactly, or None
    when only the live registry can have it (e.g. a custom click type)."""
    kind, low, high = opt.type, opt.min, opt.max
    if kind is not None and _plain_type_name(kind) is None:
        cls = type(kind)
        if cls.__module__.split('.')[0] != 'click' or cls.__name__ not in _CLICK_RANGES or \
                low is not None or high is not None:
            return None
        if any(getattr(kind, flag, False) for flag in ('min_open', 'max_open', 'clamp')):
            return None
        kind, low, high = _PLAIN_TYPES[_CLICK_RANGES[cls.__name__]], kind.min, kind.max
    if not (_survives_json(low) and _survives_json(high)):
        return None
    return {'type': None if kind is None else _plain_type_name(kind), 'min': low, 'max': high}


def _option_record(opt):
    """JSON dict for a LossOption, or None when it cannot be recorded exactly."""
    type_record = _type_record(opt)
    if type_record is None:
        return None
    choices = opt.choices
    if choices is not None and not (isinstance(choices, (list, tuple)) and all(type(c) is str for c in choices)):
        return None
    if not all(_survives_json(v) for v in (opt.default, opt.help, opt.metavar)):
        return None
    return {'flag': opt.flag, 'default': opt.default, 'help': opt.help, **type_record,
            'choices': None if choices is None else [type(choices).__name__, list(choices)], 'metavar': opt.metavar}


def _option_from_record(rec):
    choices = None
    if rec['choices'] is not None:
        kind, items = rec['choices']
        choices = tuple(items) if kind == 'tuple' else list(items)
    param_type = None if rec['type'] is None else _PLAIN_TYPES[rec['type']]
    return LossOption(rec['flag'], rec['default'], help=rec['help'], metavar=rec['metavar'], choices=choices,
                      type=param_type, min=rec['min'], max=rec['max'])


def _records_from_registry():
    """Catalogue records built from the real registry (imports every plugin, hence torch); None
    when some declaration cannot be recorded exactly."""
    from . import registry  # pylint: disable=import-outside-toplevel  # the slow path
    records = []
    for entry in registry.default_registry().entries():
        options = [_option_record(opt) for opt in entry.cls.options]
        if any(rec is None for rec in options):
            return None
        records.append({'name': entry.name, 'role': entry.role, 'description': entry.description,
                        'options': options})
    return records


def _read(path, digest):
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if data.get('format') != FORMAT_VERSION or data.get('digest') != digest:
            return None
        return data['losses']
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


def _store(path, data):
    """Write the catalogue JSON to `path` (atomically); silently skip when the folder is not writable."""
    text = json.dumps(data, indent=1).encode('utf-8')
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic.write_atomic(path, lambda f: f.write(text))
    except OSError:
        pass    # a cache: without it the next --help imports the registry again


def _from_records(records):
    return Catalogue([(r['name'], r['role'], r['description'], [_option_from_record(o) for o in r['options']])
                      for r in records])


def _from_live_registry():
    from . import registry  # pylint: disable=import-outside-toplevel
    return Catalogue([(e.name, e.role, e.description, list(e.cls.options))
                      for e in registry.default_registry().entries()])


def load_catalogue(use_cache=True):
    """The Catalogue of the built-in plugins: from the cache when its digest matches the sources,
    else from the real registry (then cached for the next call). use_cache=False, or a registry
    already imported in this process, means the live registry is used."""
    if not use_cache or f'{__package__}.registry' in sys.modules:
        # Already imported (torch paid for): the live registry is authoritative, including
        # plugins that code registered at run time, which no cache file could know.
        return _from_live_registry()
    try:
        digest = source_digest()
    except OSError:
        return _from_live_registry()
    path = cache_path(digest)
    records = _read(path, digest)
    if records is not None:
        try:
            return _from_records(records)
        except (KeyError, TypeError, ValueError):
            pass    # a damaged file: rebuild it below
    records = _records_from_registry()
    if records is None:
        return _from_live_registry()
    _store(path, {'format': FORMAT_VERSION, 'digest': digest, 'losses': records})
    return _from_records(records)
