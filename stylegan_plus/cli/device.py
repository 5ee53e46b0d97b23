"""Device choice, network loading, generator kinds and class labels for the inference tools.

Used by `generate.py`, `style_mixing.py` and `projector.py`.

The official tools hard-code `torch.device('cuda')`. Here `--device` picks the device (default:
CUDA when available, else CPU), and a generator built with fp16 blocks is rebuilt in fp32 when
it runs on CPU: torch executes fp16 convolutions on CPU, but tens of times slower.
"""

import os
import sys

import click
import torch

import dnnlib
from stylegan_plus.io.legacy_tf import load_network_pkl
from torch_utils import misc

from stylegan_plus.cli.cli_types import DEVICE_HELP  # noqa: E402,F401  (kept here: the tools import it from this module)


def resolve_device(name: str = None) -> torch.device:
    """`--device` value to a torch.device; None means CUDA when available, else CPU.

    Raises click.BadParameter for an unknown device string or a CUDA device that is not there.
    """
    if name is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise click.BadParameter(f'{name!r} is not a device; use cuda, cuda:N or cpu', param_hint='--device') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise click.BadParameter(f'{name!r} requested, but CUDA is not available on this machine; use cpu',
                                     param_hint='--device')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise click.BadParameter(f'{name!r} does not exist: this machine has {torch.cuda.device_count()} '
                                     f'CUDA device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}',
                                     param_hint='--device')
    elif device.type != 'cpu':
        raise click.BadParameter(f'{name!r} is not supported; use cuda, cuda:N or cpu', param_hint='--device')
    return device


def _fp16_resolutions(G) -> int:
    """num_fp16_res recorded in a persistent generator's init_kwargs (0 when absent)."""
    init_kwargs = getattr(G, 'init_kwargs', None) or {}
    synthesis_kwargs = init_kwargs.get('synthesis_kwargs', None) or {}
    return int(synthesis_kwargs.get('num_fp16_res', 0) or 0)


def rebuild_fp32(G):
    """Copy of the persistent generator `G` with `num_fp16_res=0` and the same weights.

    The same class is constructed from `G.init_kwargs` (so official pickles keep running their
    own embedded code); conv_clamp is kept, so the result equals running G with force_fp32=True.
    """
    kwargs = G.init_kwargs
    kwargs.synthesis_kwargs = dnnlib.EasyDict(kwargs.get('synthesis_kwargs', None) or {})
    kwargs.synthesis_kwargs.num_fp16_res = 0
    with torch.random.fork_rng(devices=[]):  # the throw-away random init must not shift the caller's RNG
        G32 = type(G)(*G.init_args, **kwargs)
    G32 = G32.eval().requires_grad_(False)
    misc.copy_params_and_buffers(G, G32, require_all=True)
    return G32


def prepare_generator(G, device: torch.device, log=print):
    """Move G to `device` for inference; on CPU, fp16 blocks are switched to fp32 (one notice).

    G: a generator module (persistent class with init_kwargs, or any torch.nn.Module).
    Returns the module to use, in eval mode without gradients.
    """
    num_fp16_res = _fp16_resolutions(G)
    if device.type == 'cpu' and num_fp16_res > 0:
        log(f'Note: this network runs its last {num_fp16_res} resolutions in fp16, which is very slow on CPU; '
            f'running them in fp32 instead (results differ from GPU output by about 1e-3).')
        G = rebuild_fp32(G)
    return G.eval().requires_grad_(False).to(device)


def load_network(network_pkl: str, key: str = 'G_ema', param_hint: str = '--network'):
    """Load `key` from a network pickle (path or URL) via `load_network_pkl`, for a CLI.

    Every failure (missing file, download error, corrupt or foreign pickle) becomes a
    click.BadParameter that names the path, so the user sees a usage error and not a traceback.
    """
    return load_networks(network_pkl, (key,), param_hint=param_hint)[key]


def load_networks(network_pkl: str, keys=('G_ema',), param_hint: str = '--network', optional_keys=()):
    """Load several `keys` (e.g. 'G_ema', 'D') from one read of a network pickle: dict key -> module.

    `optional_keys` are included when the pickle has them (e.g. a plugin's extra networks).
    Errors as in `load_network`.
    """
    if not dnnlib.util.is_url(network_pkl, allow_file_urls=True) and not os.path.isfile(network_pkl):
        raise click.BadParameter(f'network pickle {network_pkl!r} does not exist', param_hint=param_hint)
    try:
        with dnnlib.util.open_url(network_pkl) as f:
            data = load_network_pkl(f)
    except Exception as err:  # any reason a pickle cannot be read is a bad --network value
        raise click.BadParameter(f'cannot load network pickle {network_pkl!r}: {type(err).__name__}: {err}',
                                 param_hint=param_hint) from err
    nets = {key: data[key] for key in keys}
    nets.update({key: data[key] for key in optional_keys if data.get(key) is not None})
    return nets


def has_mapping_synthesis(G) -> bool:
    """Whether G is split into `G.mapping` (z -> ws) and `G.synthesis` (ws -> img), as StyleGAN2 is.

    DCGAN (`--cfg=dcgan`) and MLP (`--cfg=toy`) generators are plain `G(z, c)` modules: no w space,
    no w_avg, nothing to truncate, mix or project.
    """
    return hasattr(G, 'mapping') and hasattr(G, 'synthesis')


def describe_generator(G) -> str:
    """Short human-readable name of G's class for messages, e.g. 'Generator (DCGAN generator and ...)'.

    Persistent classes are wrapped (and, when unpickled, defined in a module built from the
    embedded source), so the class name alone says little; the first line of the defining
    module's docstring, when there is one, tells which network family it is.
    """
    cls = type(G)
    base = cls.__mro__[1] if hasattr(cls, '_orig_class_name') and len(cls.__mro__) > 1 else cls
    module = sys.modules.get(base.__module__)
    doc_lines = ((getattr(module, '__doc__', None) or '').strip()).splitlines()
    summary = doc_lines[0].split(' (')[0].rstrip('.: ') if doc_lines else ''
    return f'{cls.__name__} ({summary})' if summary else cls.__name__


def require_mapping_synthesis(G, tool: str):
    """Raise click.UsageError unless G has a mapping/synthesis split (see `has_mapping_synthesis`).

    tool: what needs the split, named in the message (e.g. 'style_mixing.py').
    """
    if not has_mapping_synthesis(G):
        raise click.UsageError(f'{tool} needs a generator with a mapping/synthesis split (StyleGAN2); '
                               f'this pickle has {describe_generator(G)}, which maps z straight to its output')


def class_label(G, class_idx, device: torch.device, log=print) -> torch.Tensor:
    """One-hot label [1, G.c_dim] float32 for `--class` (all zeros for an unconditional G).

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
