"""A trained generator made ready for inference, and what kind of generator it is.

Used by the command-line tools, the metrics and the projector. A generator whose last
resolutions were built in fp16 is rebuilt in fp32 when it runs on CPU: torch executes fp16
convolutions there, but tens of times slower, and the GPU's result is matched to about 1e-3.
"""

import sys

import torch

import dnnlib
from torch_utils import misc


def has_mapping_synthesis(G) -> bool:
    """Whether G is split into `G.mapping` (z -> ws) and `G.synthesis` (ws -> img), as StyleGAN2 is.

    DCGAN (`--cfg=dcgan`) and MLP (`--cfg=toy`) generators are plain `G(z, c)` modules: no w space,
    no w_avg, nothing to truncate, mix or project.
    """
    return hasattr(G, 'mapping') and hasattr(G, 'synthesis')


def describe_generator(G) -> str:
    """Short readable name of G's class for messages, e.g. 'Generator (DCGAN generator and ...)'.

    A persistent class is a wrapper (and, once unpickled, lives in a module built from the
    embedded source), so its name alone says little; the first line of the docstring of the
    module that defines the wrapped class tells the network family.
    """
    cls = type(G)
    wrapped = cls.__mro__[1] if hasattr(cls, '_orig_class_name') and len(cls.__mro__) > 1 else cls
    module_doc = getattr(sys.modules.get(wrapped.__module__), '__doc__', None) or ''
    lines = module_doc.strip().splitlines()
    family = lines[0].split(' (')[0].rstrip('.: ') if lines else ''
    return f'{cls.__name__} ({family})' if family else cls.__name__


def _fp16_resolutions(G) -> int:
    """num_fp16_res recorded in a persistent generator's init_kwargs (0 when absent)."""
    synthesis_kwargs = (getattr(G, 'init_kwargs', None) or {}).get('synthesis_kwargs', None) or {}
    return int(synthesis_kwargs.get('num_fp16_res', 0) or 0)


def rebuild_fp32(G):
    """Copy of the persistent generator `G` with `num_fp16_res=0` and the same weights.

    The class of G is constructed again from `G.init_kwargs` (an official pickle keeps running its
    embedded code); conv_clamp is kept, so the copy computes what G computes with force_fp32=True.
    """
    kwargs = G.init_kwargs
    kwargs.synthesis_kwargs = dnnlib.EasyDict(kwargs.get('synthesis_kwargs', None) or {})
    kwargs.synthesis_kwargs.num_fp16_res = 0
    with torch.random.fork_rng(devices=[]):  # the discarded random init must not move the caller's RNG
        copy32 = type(G)(*G.init_args, **kwargs)
    copy32 = copy32.eval().requires_grad_(False)
    misc.copy_params_and_buffers(G, copy32, require_all=True)
    return copy32


def prepare_generator(G, device: torch.device, log=print):
    """G on `device` in eval mode without gradients; on CPU, fp16 blocks become fp32 (one notice).

    G: a generator module (persistent class with init_kwargs, or any torch.nn.Module).
    log: where the fp32 notice goes. Returns the module to use (G itself when nothing changes).
    """
    fp16_resolutions = _fp16_resolutions(G)
    if device.type == 'cpu' and fp16_resolutions > 0:
        log(f'Note: this network runs its last {fp16_resolutions} resolutions in fp16, which is very slow on CPU; '
            f'running them in fp32 instead (results differ from GPU output by about 1e-3).')
        G = rebuild_fp32(G)
    return G.eval().requires_grad_(False).to(device)
