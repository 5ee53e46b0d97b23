"""Loss registry: `@register_loss(name)`, lookup by name, `--loss` specs and their composition.

A spec is one name or `main+addon[+addon...]`; at most one main loss, any number of add-ons
(an add-on alone runs on the default main loss). A name containing a dot is a class path
(`mypkg.mymod.MyLoss`) to a plugin outside this package.
"""

import dataclasses
import importlib
import pkgutil
import re

import dnnlib

from .base import LossPlugin
from .declarations import (DEFAULT_LOSS, LOSS_ROLES, base_options_of, format_loss_rows,  # noqa: F401
                           unknown_name_message)
COMPOSED_CLASS_NAME = 'stylegan_plus.losses.compose.ComposedLoss'


class LossSpecError(ValueError):
    """A `--loss` value or loss option that cannot be used; the message names it and the choices."""


@dataclasses.dataclass(frozen=True)
class LossEntry:
    name: str           # --loss name
    cls: type           # the LossPlugin subclass
    description: str    # one line for --loss=help
    class_name: str     # dotted path of the class, as the options name it

    @property
    def role(self):
        return self.cls.role


def _first_doc_line(cls):
    doc = (cls.__doc__ or '').strip()
    return doc.splitlines()[0].strip() if doc else ''


class LossRegistry:
    """Name -> LossEntry, in registration order."""

    def __init__(self):
        self._entries = {}

    def register(self, name, cls, description=None, class_name=None):
        if not isinstance(cls, type) or not issubclass(cls, LossPlugin):
            raise TypeError(f'register_loss({name!r}) needs a LossPlugin subclass, got {cls!r}')
        if cls.role not in LOSS_ROLES:
            raise ValueError(f'loss {name!r} has role {cls.role!r}; expected one of {LOSS_ROLES}')
        if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_-]*', name or '') or name == 'help':
            raise ValueError(f'loss name {name!r} must be letters, digits, "-" or "_" (not "help")')
        if name in self._entries and self._entries[name].cls is not cls:
            raise ValueError(f'loss name {name!r} is already registered by {self._entries[name].class_name}')
        taken = {opt.flag: entry.name for entry in self._entries.values() if entry.name != name for opt in entry.cls.options}
        clashes = [opt.flag for opt in cls.options if opt.flag in taken]
        if clashes:
            raise ValueError(f'loss {name!r}: option(s) {clashes} already belong to loss {taken[clashes[0]]!r}')
        self._entries[name] = LossEntry(name=name, cls=cls,
                                        description=description if description is not None else _first_doc_line(cls),
                                        class_name=class_name or f'{cls.__module__}.{cls.__qualname__}')

    def names(self):
        return list(self._entries)

    def entries(self):
        return list(self._entries.values())

    def put_first(self, name):
        """Move a registered entry to the front of the listing order."""
        self._entries = {name: self._entries[name], **{k: v for k, v in self._entries.items() if k != name}}

    def get(self, name):
        """The entry for a registered name or a dotted class path; LossSpecError otherwise."""
        if name in self._entries:
            return self._entries[name]
        if '.' in name:
            return _entry_from_class_path(name)
        raise LossSpecError(unknown_name_message('loss', name, self.names()))

    def parse(self, spec):
        """`'clr+advlat-qua'` -> (main entry, [add-on entries]); LossSpecError for a bad spec."""
        names = [part.strip() for part in str(spec).split('+')]
        if not spec or any(not part for part in names):
            raise LossSpecError(f'--loss={spec!r}: expected NAME or MAIN+ADDON[+ADDON...], e.g. {DEFAULT_LOSS}')
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise LossSpecError(f'--loss={spec}: {", ".join(duplicates)} given more than once')
        entries = [self.get(name) for name in names]
        mains = [e for e in entries if e.role == 'main']
        addons = [e for e in entries if e.role == 'addon']
        if len(mains) > 1:
            listed = ' and '.join(repr(e.name) for e in mains)
            addon_names = [e.name for e in self.entries() if e.role == 'addon']
            raise LossSpecError(f'--loss={spec}: {listed} are both main losses; combine one main loss with '
                                f'add-ons ({", ".join(addon_names) or "none registered"})')
        main = mains[0] if mains else self.get(DEFAULT_LOSS)
        return main, addons

    def options(self):
        """Every registered plugin's options: list of (loss name, LossOption)."""
        return [(entry.name, opt) for entry in self.entries() for opt in entry.cls.options]

    def format_list(self):
        """Text for `--loss=help`: one line per loss with its role and description."""
        return format_loss_rows((e.name, e.role, e.description) for e in self.entries())

    def configure(self, spec, args, option_values=None, *, cfg=None, given=frozenset()):
        """See `configure_loss`."""
        main, addons = self.parse(spec)
        option_values = dict(option_values or {})
        selected = {opt.key for entry in [main, *addons] for opt in entry.cls.options}
        owners = {opt.key: name for name, opt in self.options()}
        stray = sorted(key for key in owners if key in given and key not in selected)
        if stray:
            raise LossSpecError('; '.join(f'--{key.replace("_", "-")} belongs to --loss={owners[key]}, '
                                          f'which is not in --loss={spec}' for key in stray))
        # With stylegan2 alone this rebuilds the preset's dict unchanged, so the JSON stays official.
        main_kwargs = dnnlib.EasyDict(class_name=main.class_name, **_base_kwargs(main, args.loss_kwargs),
                                      **_option_kwargs(main, option_values))
        addon_kwargs = [dnnlib.EasyDict(class_name=e.class_name, **_option_kwargs(e, option_values)) for e in addons]
        if addons:
            args.loss_kwargs = dnnlib.EasyDict(class_name=COMPOSED_CLASS_NAME, main=main_kwargs, addons=addon_kwargs)
        else:
            args.loss_kwargs = main_kwargs
        for entry, kwargs in [(main, main_kwargs), *zip(addons, addon_kwargs)]:
            entry.cls.adjust_training_options(args, kwargs, cfg=cfg, given=frozenset(given))
        return main, addons


def _base_kwargs(entry, preset_kwargs):
    """The preset's loss keywords that the main loss `entry` declares in `base_options` (preset order)."""
    accepted = base_options_of(entry.cls)
    return {key: value for key, value in preset_kwargs.items() if key in accepted}


def _option_kwargs(entry, option_values):
    return {opt.key: option_values.get(opt.key, opt.default) for opt in entry.cls.options}


def _entry_from_class_path(path):
    try:
        cls = dnnlib.util.get_obj_by_name(path)
    except Exception as err: # pylint: disable=broad-except
        raise LossSpecError(f'loss class {path!r} cannot be imported: {err}') from None
    if not isinstance(cls, type) or not issubclass(cls, LossPlugin):
        raise LossSpecError(f'{path!r} is not a LossPlugin subclass')
    return LossEntry(name=path, cls=cls, description=_first_doc_line(cls), class_name=path)


_registry = LossRegistry()
_discovered = False


def _discover():
    """Import every module of this package once, so each plugin file registers itself."""
    global _discovered # pylint: disable=global-statement
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(__package__)
    # The baseline first: registration order is the order of --loss=help and --help.
    for name in ('stylegan2', 'compose'):
        importlib.import_module(f'{__package__}.{name}')
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith('_'):
            importlib.import_module(f'{__package__}.{info.name}')
    # A plugin module imported before the first discovery registered before the baseline.
    _registry.put_first('stylegan2')


def register_loss(name, description=None, class_name=None):
    """Class decorator: make a LossPlugin selectable as `--loss=name`.

    description: one line for `--loss=help` (default: the first line of the docstring).
    class_name: the dotted path the options name it by (default: where it is defined).
    """
    def decorator(cls):
        _registry.register(name, cls, description=description, class_name=class_name)
        return cls
    return decorator


def default_registry():
    """The registry `register_loss` writes to, with every plugin module of the package imported."""
    _discover()
    return _registry


def get_loss(name):
    """The LossPlugin class registered as `name` (or at dotted path `name`); LossSpecError otherwise."""
    return default_registry().get(name).cls


def list_losses():
    """dict name -> one-line description, in registration order."""
    return {entry.name: entry.description for entry in default_registry().entries()}


def parse_loss_spec(spec):
    """`--loss` value -> (main LossEntry, [add-on LossEntry]); raises LossSpecError."""
    return default_registry().parse(spec)


def format_loss_list():
    """Text for `--loss=help`."""
    return default_registry().format_list()


def all_loss_options():
    """Every registered plugin's options: list of (loss name, LossOption), for train.py's CLI."""
    return default_registry().options()


def configure_loss(spec, args, option_values=None, *, cfg=None, given=frozenset()):
    """Write the loss of `--loss=spec` into `args.loss_kwargs` (in place) and apply plugin adjustments.

    args: the training options EasyDict; its `loss_kwargs` holds the preset's baseline kwargs
    (class_name + r1_gamma, ...); the main loss gets those its class lists in `base_options`
    (all of them without the attribute), add-ons get none. option_values: dict option key ->
    value (all plugins' options, as click parsed them; missing keys take the option default).
    given: keys set explicitly by the user; a given option of a plugin that is not selected is
    an error. Returns (main entry, [add-on entries]). Raises LossSpecError.
    """
    return default_registry().configure(spec, args, option_values, cfg=cfg, given=given)
