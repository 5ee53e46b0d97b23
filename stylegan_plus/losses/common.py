"""Helpers shared by loss plugins: score statistics, distances, priors, extra optimizers, defaults.

Everything two plugins use lives here, so no plugin imports another plugin's module. The
functions are pure (tensors in, tensors out) apart from `report_scores`, which writes statistics,
and `set_unless_given`, which fills an options dict.
See docs/plugins.md.
"""

import torch

import dnnlib
from stylegan_plus.sampling import prior as prior_lib
from torch_utils import misc
from torch_utils import training_stats

PRIORS = prior_lib.Z_DISTS
DISTANCES = ('mse', 'l1')

#----------------------------------------------------------------------------
# Statistics.

def report_scores(kind, logits):
    """Write D's logits [N, 1] under `Loss/scores/<kind>` and their signs under `Loss/signs/<kind>`.

    kind: 'real' or 'fake' (the official statistic names, docs/compat.md). Returns the signs
    ([N, 1], detached, same dtype as logits), which `LossPlugin.report_scores` hands to ADA.
    """
    signs = logits.detach().sign()
    training_stats.report(f'Loss/scores/{kind}', logits)
    training_stats.report(f'Loss/signs/{kind}', signs)
    return signs

#----------------------------------------------------------------------------
# Distances.

def sample_distance(a, b, kind):
    """Per-sample distance [N] float32 between a and b of the same shape [N, ...].

    kind 'mse': mean of squared differences over each sample's elements (so the batch mean is the
    mean over all elements); 'l1': sum of absolute differences per sample.
    """
    if kind not in DISTANCES:
        raise ValueError(f'unknown distance {kind!r}; expected one of {", ".join(DISTANCES)}')
    diff = (a.to(torch.float32) - b.to(torch.float32)).flatten(1)
    return diff.square().mean(dim=1) if kind == 'mse' else diff.abs().sum(dim=1)


def mean_abs_distance(a, b):
    """Batch-level distance: mean |a - b| over all elements of two equal-shape tensors; a scalar."""
    return (a - b).abs().mean()

#----------------------------------------------------------------------------
# Latent prior.

def sample_prior(prior, n, z_dim, device):
    """n latents [n, z_dim] float32 from torch's global stream (`stylegan_plus.sampling.prior.draw_z`).

    prior: 'normal' (or its older name 'gaussian': N(0, I), the official prior) or 'uniform'
    (U[-1, 1]). Plugins normally draw through their `sample_z`, which follows the run's `--z-dist`.
    """
    return prior_lib.draw_z(prior, n, z_dim, device)

#----------------------------------------------------------------------------
# Extra networks.

def extra_opt_kwargs(opt_kwargs):
    """Optimizer kwargs for a plugin's own phase, from the configured G (or D) kwargs: an EasyDict copy.

    Betas become floats: the presets write `betas=[0, 0.99]`, which torch's Adam refuses as a mix
    of int and float (the lazy-regularisation adjustment converts them for G and D only).
    """
    kwargs = dnnlib.EasyDict(opt_kwargs)
    if 'betas' in kwargs:
        kwargs.betas = [float(beta) for beta in kwargs.betas]
    return kwargs


def run_module(module, sync, *args, **kwargs):
    """`module(*args, **kwargs)` inside `misc.ddp_sync(module, sync)` (a no-op for plain modules)."""
    with misc.ddp_sync(module, sync):
        return module(*args, **kwargs)


def is_point_data(img):
    """True for 2-D point batches ([N, C] without spatial dimensions), False for images [N, C, H, W]."""
    return img.ndim == 2


#----------------------------------------------------------------------------
# Option defaults (for `adjust_training_options`).

def set_unless_given(target, defaults, given):
    """Copy each `defaults` item into the dict `target` unless its name is in `given` (the options
    the user set explicitly): a plugin's preset defaults never override a user's value."""
    target.update({key: value for key, value in defaults.items() if key not in given})
