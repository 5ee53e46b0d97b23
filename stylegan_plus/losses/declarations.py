"""Torch-free pieces of the loss-plugin interface: option declarations, roles, list formatting.

`train.py --help` and `--loss=help` need these without importing torch (the plugin modules
themselves do), so they live apart from `base.py`, which re-exports them.
"""

import dataclasses
import difflib
import re
from typing import Any, Optional, Sequence

LOSS_ROLES = ('main', 'addon')
DEFAULT_LOSS = 'stylegan2'


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
    type: Any = None                        # python type or click ParamType; None = type(default)
    choices: Optional[Sequence[str]] = None # restrict to these strings (click.Choice)
    metavar: Optional[str] = None

    def __post_init__(self):
        if not re.fullmatch(r'--[a-z0-9]+(-[a-z0-9]+)*', self.flag):
            raise ValueError(f'loss option flag {self.flag!r} must look like --lower-case-words')

    @property
    def key(self):
        return self.flag[2:].replace('-', '_')

    def click_option(self):
        """The `click.option` decorator declaring this option (with `show_default`)."""
        import click  # pylint: disable=import-outside-toplevel  # only the CLI needs click
        if self.choices is not None:
            param_type = click.Choice(list(self.choices))
        else:
            param_type = self.type if self.type is not None else type(self.default)
        return click.option(self.flag, self.key, type=param_type, default=self.default, show_default=True,
                            help=self.help, metavar=self.metavar)


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
