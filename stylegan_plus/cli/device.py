"""The click face of device choice, network loading and class labels for the command-line tools.

The work is done in the core (`stylegan_plus.devices`, `stylegan_plus.io.network_files`,
`stylegan_plus.networks.inference`); this module only turns their ValueErrors into usage errors
that name the option, so a user sees one line and no traceback.
"""

import click
import torch

from stylegan_plus import devices
from stylegan_plus.io import network_files
from stylegan_plus.networks.inference import describe_generator, has_mapping_synthesis
from stylegan_plus.cli.cli_types import DEVICE_HELP

__all__ = ['resolve_device', 'load_network', 'load_networks', 'require_mapping_synthesis', 'class_label', 'DEVICE_HELP']


def resolve_device(name: str = None, param_hint: str = '--device') -> torch.device:
    """`--device` value (cuda, cuda:N, cpu; None = CUDA when available) to a torch.device.

    Raises click.BadParameter with the reason from `stylegan_plus.devices.resolve_device`.
    """
    try:
        return devices.resolve_device(name)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=param_hint) from None


def load_network(network_pkl: str, key: str = 'G_ema', param_hint: str = '--network'):
    """The network `key` of a snapshot pickle (path or URL); errors as in `load_networks`."""
    return load_networks(network_pkl, (key,), param_hint=param_hint)[key]


def load_networks(network_pkl: str, keys=('G_ema',), param_hint: str = '--network', optional_keys=()):
    """Several networks (e.g. 'G_ema', 'D') from one read of a snapshot pickle: {key: module}.

    optional_keys are included when present. Any reason the file cannot serve becomes a
    click.BadParameter naming the path.
    """
    try:
        return network_files.load_networks(network_pkl, keys, optional_keys)
    except network_files.NetworkFileError as err:
        raise click.BadParameter(str(err), param_hint=param_hint) from err


def require_mapping_synthesis(G, tool: str):
    """click.UsageError unless G has a mapping/synthesis split (StyleGAN2).

    tool: what needs the split, named in the message (e.g. 'style_mixing.py').
    """
    if not has_mapping_synthesis(G):
        raise click.UsageError(f'{tool} needs a generator with a mapping/synthesis split (StyleGAN2); '
                               f'this pickle has {describe_generator(G)}, which maps z straight to its output')


def class_label(G, class_idx, device: torch.device, log=print) -> torch.Tensor:
    """One-hot label [1, G.c_dim] float32 on `device` for `--class` (all zeros when G is unconditional).

    A conditional G needs a class in 0..c_dim-1 (click.BadParameter otherwise); an unconditional
    G ignores --class with a warning, as the official tools do.
    """
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            log(f'warn: --class={class_idx} ignored when running on an unconditional network')
        return label
    if class_idx is None:
        raise click.BadParameter(f'this network is conditional with {G.c_dim} classes: '
                                 f'choose one with --class=N, N in 0..{G.c_dim - 1}', param_hint='--class')
    if not 0 <= class_idx < G.c_dim:
        raise click.BadParameter(f'{class_idx} is out of range: this network has {G.c_dim} classes, '
                                 f'accepted are 0..{G.c_dim - 1}', param_hint='--class')
    label[:, class_idx] = 1
    return label
