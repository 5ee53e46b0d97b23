"""Output paths of the command-line tools, checked before any work starts.

A tool that renders for minutes and then finds its `--outdir` unwritable wastes the user's time;
these checks run first, create nothing, and raise click.BadParameter naming the value.
"""

import os

import click


def _existing_ancestor(path: str) -> str:
    """`path` itself or its nearest parent that exists (absolute)."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def check_outdir(outdir: str, param_hint: str = '--outdir') -> None:
    """Refuse an output folder that cannot be created or written (creates nothing).

    Raises click.BadParameter naming the value: empty, a file, under a file, or not writable.
    """
    if not outdir:
        raise click.BadParameter('an empty folder name is not accepted; give a folder such as out/',
                                 param_hint=param_hint)
    existing = _existing_ancestor(outdir)
    if not os.path.isdir(existing):
        where = 'is a file' if existing == os.path.abspath(outdir) else f'lies under {existing!r}, which is a file'
        raise click.BadParameter(f'{outdir!r} {where}; a folder (existing or new) is accepted', param_hint=param_hint)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise click.BadParameter(f'{outdir!r} cannot be written: no write permission in {existing!r}',
                                 param_hint=param_hint)


def make_outdir(outdir: str, param_hint: str = '--outdir') -> None:
    """Create the output folder and its parents; a refusal or OS error is a click.BadParameter naming it."""
    check_outdir(outdir, param_hint)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(f'cannot create {outdir!r}: {err.strerror or err}', param_hint=param_hint) from None


def check_output_file(path: str, param_hint: str) -> None:
    """Refuse an output file path that is a folder or whose folder cannot be created (creates nothing)."""
    if os.path.isdir(path):
        raise click.BadParameter(f'{path!r} is a folder; a file name such as out/vectors.npz is accepted',
                                 param_hint=param_hint)
    check_outdir(os.path.dirname(os.path.abspath(path)), param_hint)
