"""LOGAN-B's reconstruction errors on 2-D points: the run's own ("ad hoc") encoder and fresh "post hoc" ones.

A post hoc encoder (paper section 2.4.3) has the architecture of the run's encoder (a copy of D
with a z_dim output, `stylegan_plus.networks.encoders.build_encoder`), starts from its own seed,
and learns, with G frozen, to predict the latent that made a generated point: L1 between
E'(G(z)) and z (per-sample sum, batch mean), z from the run's prior. Both kinds are then scored
on held-out real points by the mean per-sample L1 sum of x - G(E(x)). This is evaluation code;
it trains no GAN.
"""

import numpy as np
import torch

from stylegan_plus.networks.encoders import build_encoder

from . import toy_metrics


def squash(z, prior):
    """The prior's support: tanh for the uniform prior in [-1, 1], identity for the Gaussian."""
    return torch.tanh(z) if prior == 'uniform' else z


@torch.no_grad()
def reconstruct(G, E, x, prior):
    """G(squash(E(x))): x float32 [N, 2] -> numpy float32 [N, 2]."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    z = squash(E(x), prior)
    return G(z, torch.zeros([len(x), G.c_dim])).reshape(len(x), -1).numpy()


def train_post_hoc_encoder(G, D, prior, seed, iterations, batch=2048, lr=1e-3, betas=(0.5, 0.999)):
    """A fresh encoder shaped like the run's (from D), fitted to invert the frozen G; returns it in eval mode.

    G, D: snapshot networks (CPU); prior: 'uniform' or 'gaussian'; seed: init and latent draws.
    """
    encoder = build_encoder(D, G.z_dim, seed=seed).train().requires_grad_(True)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr, betas=tuple(betas))
    gen = torch.Generator().manual_seed(int(seed))
    G = G.eval().requires_grad_(False)
    c = torch.zeros([batch, G.c_dim])
    for _ in range(int(iterations)):
        if prior == 'uniform':
            z = torch.rand([batch, G.z_dim], generator=gen) * 2 - 1
        else:
            z = torch.randn([batch, G.z_dim], generator=gen)
        with torch.no_grad():
            x = G(z, c)
        loss = (squash(encoder(x), prior) - z).abs().sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return encoder.eval().requires_grad_(False)


def post_hoc_errors(G, D, x_test, prior, seeds, iterations, batch=2048, lr=1e-3, betas=(0.5, 0.999)):
    """(list of reconstruction errors, one per seed, and the first encoder's reconstructions [N, 2])."""
    errors, first = [], None
    for seed in seeds:
        encoder = train_post_hoc_encoder(G, D, prior, seed, iterations, batch=batch, lr=lr, betas=betas)
        rec = reconstruct(G, encoder, x_test, prior)
        errors.append(toy_metrics.l1_reconstruction_error(x_test, rec))
        if first is None:
            first = rec
    return errors, first
