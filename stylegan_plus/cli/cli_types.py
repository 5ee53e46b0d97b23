"""click parameter types and helpers shared by the command-line tools (`train.py`, `generate.py`, ...).

Torch-free: a tool's `--help` is built from this module alone, and heavy modules are imported
on first use through `lazy_module`.
"""

import functools
import importlib

import click

DEVICE_HELP = 'Device to run on: cuda, cuda:N or cpu  [default: cuda if available, else cpu]'


class _LazyModule:
    """Stands for a module that is imported on the first attribute access (e.g. `torch.float32`)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self):
        return f'<lazy module {self._name!r}>'


def lazy_module(name):
    """A stand-in for `import name` that imports it when first used (keeps `--help` free of torch)."""
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
