"""Torch-free pieces of the loss-plugin interface: option declarations, base options, roles,
list formatting.

`train.py --help` and `--loss=help` need these without importing torch (the plugin modules
themselves do), so they live apart from `base.py`, which re-exports them. Nothing here imports
click: the command line builds its options from these declarations (stylegan_plus/cli/loss_options.py).
"""

import dataclasses
import difflib
import re
from typing import Any, Optional, Sequence

LOSS_ROLES = ('main', 'addon')
DEFAULT_LOSS = 'stylegan2'

# The baseline loss keywords a preset may set (the official presets set r1_gamma, and pl_weight
# and style_mixing_prob for cifar: docs/compat.md section 1.1). A main loss receives those named
# in its class attribute `base_options`; add-ons receive none.
BASE_OPTIONS = ('r1_gamma', 'pl_weight', 'pl_batch_shrink', 'pl_decay', 'style_mixing_prob')


def base_options_of(loss_class):
    """The preset loss keywords `loss_class.__init__` accepts (a tuple drawn from BASE_OPTIONS).

    A class without the attribute is taken to accept all of them, as the baseline does.
    """
    return tuple(getattr(loss_class, 'base_options', BASE_OPTIONS))


@dataclasses.dataclass(frozen=True)
class LossOption:
    """A command-line option owned by a plugin, e.g. `LossOption('--clr-lambda-latent', 5.0)`.

    The value reaches the plugin's `__init__` as the keyword `key` (the flag without the leading
    dashes, dashes turned into underscores) and is recorded under `loss_kwargs` in
    training_options.json.
    """
    flag: str                               # '--name-with-dashes'
    default: Any                            # shown in --help
    help: str = ''
    type: Any = None                        # int, float, str or bool (or a click ParamType); None = type(default)
    choices: Optional[Sequence[str]] = None # restrict to these strings
    metavar: Optional[str] = None
    min: Optional[float] = None             # smallest accepted value of an int/float option (inclusive)
    max: Optional[float] = None             # largest accepted value (inclusive)

    def __post_init__(self):
        if not re.fullmatch(r'--[a-z0-9]+(-[a-z0-9]+)*', self.flag):
            raise ValueError(f'loss option flag {self.flag!r} must look like --lower-case-words')
        if (self.min is not None or self.max is not None) and self.value_type not in (int, float):
            raise ValueError(f'loss option {self.flag}: min/max need type int or float, not {self.value_type!r}')

    @property
    def key(self):
        return self.flag[2:].replace('-', '_')

    @property
    def value_type(self):
        """The declared type, or the type of the default when none is declared."""
        return self.type if self.type is not None else type(self.default)


def unknown_name_message(kind, name, choices):
    """"unknown <kind> 'x'; did you mean 'y'? Available: a, b" (the hint only for a close match)."""
    message = f'unknown {kind} {name!r}'
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    message += f'; did you mean {close[0]!r}?' if close else '.'
    return f'{message} Available: {", ".join(choices)}'


def format_loss_rows(rows):
    """Text for `--loss=help` from (name, role, description) rows.

    Listed default first, then main losses, then add-ons, each alphabetically: the same text
    whatever order the plugin modules happened to be imported (registered) in.
    """
    rows = sorted(rows, key=lambda row: (row[0] != DEFAULT_LOSS, row[1] != 'main', row[0]))
    width = max((len(name) for name, _role, _desc in rows), default=0)
    lines = ['Losses (--loss=NAME or MAIN+ADDON[+ADDON...]):']
    for name, role, description in rows:
        default = ', default' if name == DEFAULT_LOSS else ''
        lines.append(f'  {name:<{width}}  [{role}{default}] {description}')
    return '\n'.join(lines)
