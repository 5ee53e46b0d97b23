"""click parameter types and helpers shared by the command-line tools (`train.py`, `generate.py`, ...).

Torch-free and numpy-free: a tool's `--help` is built from this module alone. Third-party heavy
modules (torch) are imported on first use through `lazy_module`; our own modules are imported by
plain statements inside the functions that need them, so the import graph stays visible.
"""

import functools
import importlib
import math
import re

import click

DEVICE_HELP = 'Device to run on: cuda, cuda:N or cpu  [default: cuda if available, else cpu]'
SEED_MAX = 2**32 - 1  # np.random.RandomState accepts seeds in [0, 2**32 - 1]

_RANGE_RE = re.compile(r'^(\d+)-(\d+)$')


class _LazyModule:
    """Stands for a module that is imported on the first attribute access (e.g. `torch.float32`)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self):
        return f'<lazy module {self._name!r}>'


def lazy_module(name):
    """A stand-in for `import name` that imports it when first used (keeps `--help` free of torch).

    Meant for third-party packages; tests/project/test_layers.py refuses it for modules of this project.
    """
    return _LazyModule(name)


def no_grad(fn):
    """`@torch.no_grad()` that imports torch only when `fn` is called."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch  # pylint: disable=import-outside-toplevel
        with torch.no_grad():
            return fn(*args, **kwargs)
    return wrapper


class CommaSeparatedList(click.ParamType):
    """`a,b,c` -> ['a', 'b', 'c'] (items stripped, empty items dropped); `none`, empty or missing -> []."""

    name = 'list'

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        if value is None or value.strip().lower() in ('none', ''):
            return []
        return [part.strip() for part in value.split(',') if part.strip()]


def latent_step_options(what):
    """Decorator adding AdvLatGAN's "-z" sampling options `--latent-steps` and `--latent-eps`.

    `what` completes the help text ("rendering", "generating"). Shared by generate.py and
    calc_metrics.py so both tools describe and default the options identically.
    """
    from stylegan_plus.sampling.defaults import DEFAULT_SAMPLING_EPS, DEFAULT_SAMPLING_STEPS

    steps = click.option('--latent-steps', help='AdvLatGAN-z: I-FGSM steps moving each z toward a higher D score '
                         f'before {what} (needs D in the pickle); 0 = off, the flag alone = {DEFAULT_SAMPLING_STEPS}',
                         type=click.IntRange(min=0), default=0, show_default=True, is_flag=False,
                         flag_value=DEFAULT_SAMPLING_STEPS, metavar='INT')
    eps = click.option('--latent-eps', help='AdvLatGAN-z: step size of each latent step (l-inf, on z)',
                       type=click.FloatRange(min=0), default=DEFAULT_SAMPLING_EPS, show_default=True, metavar='FLOAT')
    return lambda fn: steps(eps(fn))


def parse_num_range(text: str) -> list:
    """Official `num_range`: `a,b,c` or the inclusive range `a-c` -> list of ints.

    Raises ValueError naming `text` for an empty range or anything that is not a number list.
    """
    text = str(text).strip()
    bounds = _RANGE_RE.match(text)
    if bounds is not None:
        first, last = int(bounds.group(1)), int(bounds.group(2))
        if last < first:
            raise ValueError(f'range {text!r} is empty: the end must not be smaller than the start')
        return list(range(first, last + 1))
    try:
        return [int(part) for part in text.split(',')]
    except ValueError:
        raise ValueError(f'{text!r} is not a number list: use a comma list like 1,5,7 or a range like 0-9') from None


class NumRange(click.ParamType):
    """Click type for `num_range` values (`--seeds`, `--rows`, `--cols`, `--styles`), optionally in [lo, hi]."""

    name = 'num_range'

    def __init__(self, lo: int = None, hi: int = None, what: str = 'value'):
        self.lo, self.hi, self.what = lo, hi, what

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            numbers = parse_num_range(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)
        outside = [n for n in numbers if (self.lo is not None and n < self.lo) or (self.hi is not None and n > self.hi)]
        if outside:
            self.fail(f'{self.what} {outside[0]} is out of range: accepted are {self._accepted()}', param, ctx)
        return numbers

    def _accepted(self) -> str:
        if self.hi is None:
            return f'{self.lo} or more'
        if self.lo is None:
            return f'{self.hi} or less'
        return f'{self.lo}..{self.hi}'


def seed_list_type() -> NumRange:
    """The `--seeds`/`--rows`/`--cols` type: integers accepted by np.random.RandomState."""
    return NumRange(lo=0, hi=SEED_MAX, what='seed')


class FiniteFloat(click.ParamType):
    """Click type for a float that must be finite (`nan`, `inf` and `-inf` are refused), e.g. `--trunc`."""

    name = 'float'

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f'{value!r} is not a number; a finite number such as 0.7 or 1 is accepted', param, ctx)
        if not math.isfinite(number):
            self.fail(f'{value!r} is not a finite number; a finite number such as 0.7 or 1 is accepted', param, ctx)
        return number
