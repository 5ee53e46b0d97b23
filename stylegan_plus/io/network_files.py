"""Snapshot pickles read from a path or URL, with errors that name the file.

The pickle is read by `legacy_tf.load_network_pkl` (native and TensorFlow pickles alike). Every
reason a file cannot serve (missing, not a pickle, download error, network absent) is one
`NetworkFileError`, a ValueError whose message names the path, so the command-line tools can
show it as a usage error and library callers keep a plain exception.
"""

import os

import dnnlib

from .legacy_tf import load_network_pkl


class NetworkFileError(ValueError):
    """A network pickle that cannot be read, or lacks a requested network; the message names it."""


def load_snapshot(network_pkl: str, verbose: bool = True) -> dict:
    """The whole snapshot dict of a pickle path or URL ('G', 'D', 'G_ema', 'training_set_kwargs', ...).

    verbose: report a URL's download. Raises NetworkFileError naming `network_pkl`. A folder is
    read as a code-free export (`stylegan_plus.networks.export.load_safe`, on the CPU).
    """
    if os.path.isdir(network_pkl):
        return _load_export(network_pkl)
    if not dnnlib.util.is_url(network_pkl, allow_file_urls=True) and not os.path.isfile(network_pkl):
        raise NetworkFileError(f'network pickle {network_pkl!r} does not exist')
    try:
        with dnnlib.util.open_url(network_pkl, verbose=verbose) as f:
            return load_network_pkl(f)
    except Exception as err:  # whatever stops the read, the file is what the user must change
        raise NetworkFileError(f'cannot load network pickle {network_pkl!r}: {type(err).__name__}: {err}') from err


def _load_export(folder: str) -> dict:
    from stylegan_plus.networks import export  # pylint: disable=import-outside-toplevel  (torch, only when asked)
    try:
        return export.load_safe(folder)
    except (OSError, ValueError, ImportError) as err:    # UnsafeExportError is a ValueError
        raise NetworkFileError(f'cannot load the exported snapshot {folder!r}: {err}') from err


def load_networks(network_pkl: str, keys=('G_ema',), optional_keys=()) -> dict:
    """The networks `keys` (e.g. 'G_ema', 'D') from one read of a pickle path or URL: {key: module}.

    optional_keys: included when the pickle has them (e.g. a loss plugin's extra networks).
    Raises NetworkFileError naming `network_pkl`, also when one of `keys` is absent.
    """
    snapshot = load_snapshot(network_pkl)
    missing = [key for key in keys if snapshot.get(key) is None]
    if missing:
        raise NetworkFileError(f'network pickle {network_pkl!r} has no {", ".join(missing)}; '
                               f'it holds {", ".join(sorted(map(str, snapshot)))}')
    networks = {key: snapshot[key] for key in keys}
    networks.update({key: snapshot[key] for key in optional_keys if snapshot.get(key) is not None})
    return networks
