"""Load and convert network pickles (official `legacy.py` interface).

    python legacy.py --source=stylegan2-ffhq-config-f.pkl --dest=ffhq.pkl
    python legacy.py --source=network-snapshot-000100.pkl --dest=unused.pkl --safe-export=ffhq-safe/

Library use: `legacy.load_network_pkl(f)['G_ema']`. TensorFlow StyleGAN2 / StyleGAN2-ADA pickles
are converted without TensorFlow. Loading a pickle executes the network code embedded in it:
only load pickles you trust. `--safe-export` writes weights plus a JSON description, which
`stylegan_plus.networks.export.load_safe` reads back without unpickling any code.
"""

import pickle

import click

import dnnlib
from stylegan_plus.io import atomic
from stylegan_plus.io.legacy_tf import (  # noqa: F401 (re-exported official names)
    _LegacyUnpickler,
    _TFNetworkStub,
    convert_tf_discriminator,
    convert_tf_generator,
    load_network_pkl,
)


def _read_network_pickle(source, force_fp16):
    """Load `source` through `load_network_pkl`; any failure becomes a --source usage error."""
    try:
        with dnnlib.util.open_url(source) as f:
            return load_network_pkl(f, force_fp16=force_fp16)
    except Exception as err:  # pylint: disable=broad-except
        raise click.BadParameter(f'cannot load {source!r}: {type(err).__name__}: {err}', param_hint='--source') from err


@click.command()
@click.option('--source', help='Input pickle (path or URL): TensorFlow or native', required=True, metavar='PATH')
@click.option('--dest', help='Output pickle  [required unless --safe-export]', metavar='PATH')
@click.option('--force-fp16', help='Rebuild the networks with num_fp16_res=4, conv_clamp=256', type=bool,
              default=False, metavar='BOOL', show_default=True)
@click.option('--safe-export', help='Also write weights-only files (no code) into this folder', metavar='DIR')
def convert_network_pickle(source, dest, force_fp16, safe_export):
    """Convert a network pickle (TensorFlow or native) to a native snapshot pickle.

    \b
    The output is a dict with keys training_set_kwargs, G, D, G_ema, augment_pipe.
    """
    if dest is None and safe_export is None:
        raise click.UsageError('nothing to write: give --dest (a pickle) and/or --safe-export (a folder)')
    print(f'Reading networks from {source}')
    data = _read_network_pickle(source, force_fp16)
    if dest is not None:
        # Through a temporary file and a rename: an interrupted write never leaves a truncated `dest`.
        atomic.write_atomic(dest, lambda f: pickle.dump(data, f))
        print(f'Wrote native snapshot pickle {dest}')
    if safe_export is not None:
        from stylegan_plus.networks.export import save_safe
        try:
            save_safe(data, safe_export)
        except (ImportError, OSError, TypeError, ValueError) as err:  # the export leaves nothing behind
            raise click.ClickException(f'--safe-export={safe_export!r} failed, nothing was written there: {err}')
        print(f'Wrote weights-only export to {safe_export}')
    print('Conversion finished.')


if __name__ == '__main__':
    convert_network_pickle()  # pylint: disable=no-value-for-parameter
