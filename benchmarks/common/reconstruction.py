"""LOGAN-B's reconstruction errors on 2-D points: the run's own ("ad hoc") encoder and fresh "post hoc" ones.

A post hoc encoder (paper section 2.4.3, the authors' notebook) has the architecture of the run's
encoder (a copy of D with a z_dim output, `stylegan_plus.networks.encoders.build_encoder`), starts
from its own seed, and learns with G frozen to invert it on generated points: for x = G(z), z
from the run's prior, it minimises

    L1(G(E'(x)), x) + L1(E'(x), z)        (both summed over the batch, as the notebook's L1Loss(sum))

The x-space term is what makes the fit work: with a 5-d z and 2-d points, many z give the same
x, so regressing z alone cannot invert G (it aims at the average z of each point), whereas the
x-space term asks for any z that G maps back onto x. Both kinds of encoder are then scored on
held-out real points by the mean per-sample L1 sum of x - G(E(x)). This is evaluation code; it
trains no GAN.
"""

import copy

import numpy as np
import torch

from stylegan_plus.networks.encoders import build_encoder

from . import toy_metrics

NOTEBOOK_BETAS = (0.9, 0.999)   # torch's Adam defaults, which the notebook uses


def squash(z, prior):
    """The prior's support: tanh for the uniform prior in [-1, 1], identity for the Gaussian."""
    return torch.tanh(z) if prior == 'uniform' else z


@torch.no_grad()
def reconstruct(G, E, x, prior):
    """G(squash(E(x))): x float32 [N, 2] -> numpy float32 [N, 2]."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    z = squash(E(x), prior)
    return G(z, torch.zeros([len(x), G.c_dim])).reshape(len(x), -1).numpy()


def _generate(G, z, c):
    """G on latents with any leading shape: z [..., z_dim], c [prod(...), c_dim] -> x [..., 2]."""
    return G(z.reshape(-1, z.shape[-1]), c).reshape(*z.shape[:-1], -1)


def post_hoc_loss(G, encoder, z, c, prior, x_space=True):
    """The fit's loss on one batch (scalar): sum |E'(G(z)) - z| (+ sum |G(E'(G(z))) - G(z)| with x_space).

    z: [B, z_dim] for one encoder, or [K, B, z_dim] for K encoders side by side (`encoder` then maps
    [K, B, 2] to [K, B, z_dim]); c: [B or K * B, c_dim]. G is frozen (no parameter gradients) but
    differentiated through for the x-space term.
    """
    with torch.no_grad():
        x = _generate(G, z, c)
    z_fit = squash(encoder(x), prior)
    loss = (z_fit - z).abs().sum()
    if x_space:
        loss = loss + (_generate(G, z_fit, c) - x).abs().sum()
    return loss


def train_post_hoc_encoder(G, D, prior, seed, iterations, batch=2048, lr=1e-3, betas=NOTEBOOK_BETAS, x_space=True):
    """A fresh encoder shaped like the run's (from D), fitted to invert the frozen G; returns it in eval mode.

    G, D: snapshot networks (CPU); prior: 'uniform' or 'gaussian'; seed: init and latent draws;
    x_space: include the x-space term (the notebook's fit; False = z regression only).
    """
    encoder = build_encoder(D, G.z_dim, seed=seed).train().requires_grad_(True)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr, betas=tuple(float(b) for b in betas))
    gen = torch.Generator().manual_seed(int(seed))
    G = G.eval().requires_grad_(False)
    c = torch.zeros([batch, G.c_dim])
    for _ in range(int(iterations)):
        loss = post_hoc_loss(G, encoder, toy_metrics.draw_prior(batch, G.z_dim, prior, gen), c, prior, x_space=x_space)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return encoder.eval().requires_grad_(False)


def train_post_hoc_encoders(G, D, prior, seeds, iterations, batch=2048, lr=1e-3, betas=NOTEBOOK_BETAS, x_space=True):
    """`train_post_hoc_encoder` for every seed in one loop; returns the fitted encoders (eval mode), one per seed.

    The encoders run side by side (parameters stacked, `torch.func.vmap`), each on the latent
    stream of its own seed, with one Adam over the stacked parameters. Adam works element by
    element and each encoder's share of the summed loss depends on its own parameters only, so each
    encoder takes the steps it would take fitted alone (up to float summation order); it is several
    times faster because a lone fit of these tiny networks is mostly per-call overhead.
    """
    encoders = [build_encoder(D, G.z_dim, seed=seed) for seed in seeds]
    params, buffers = torch.func.stack_module_state(encoders)
    template = copy.deepcopy(encoders[0]).to('meta')    # structure only; the stacked tensors hold the values

    def encode(p, b, x):
        return torch.func.functional_call(template, (p, b), (x,))
    stacked = torch.func.vmap(encode, in_dims=(0, 0, 0))
    optimizer = torch.optim.Adam(list(params.values()), lr=lr, betas=tuple(float(b) for b in betas))
    gens = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    G = G.eval().requires_grad_(False)
    c = torch.zeros([len(seeds) * batch, G.c_dim])
    for _ in range(int(iterations)):
        z = torch.stack([toy_metrics.draw_prior(batch, G.z_dim, prior, gen) for gen in gens])     # [K, B, z_dim]
        loss = post_hoc_loss(G, lambda x: stacked(params, buffers, x), z, c, prior, x_space=x_space)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for k, encoder in enumerate(encoders):
            for name, param in encoder.named_parameters():
                param.copy_(params[name][k])
    return [encoder.eval().requires_grad_(False) for encoder in encoders]


def post_hoc_errors(G, D, x_test, prior, seeds, iterations, batch=2048, lr=1e-3, betas=NOTEBOOK_BETAS, x_space=True):
    """(list of reconstruction errors, one per seed, and the first encoder's reconstructions [N, 2]).

    The encoders are fitted side by side (`train_post_hoc_encoders`).
    """
    errors, first = [], None
    fitted = train_post_hoc_encoders(G, D, prior, seeds, iterations, batch=batch, lr=lr, betas=betas, x_space=x_space)
    for encoder in fitted:
        rec = reconstruct(G, encoder, x_test, prior)
        errors.append(toy_metrics.l1_reconstruction_error(x_test, rec))
        if first is None:
            first = rec
    return errors, first
