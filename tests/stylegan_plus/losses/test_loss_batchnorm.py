"""G's BatchNorm running statistics (DCGAN) describe prior draws only.

The plugins' passes on latents that are not prior draws (CLR's reconstruction G(phi(x)), Dist-GAN's
G(E(x)), LOGAN-B's surrogate G(E(x)), AdvLatGAN's mining steps) go through
`latent_steps.plugin_generator`, which leaves the running statistics alone; G_ema copies them, and
eval-mode sampling uses them.
"""

import copy

import pytest
import torch

from stylegan_plus.losses.clr import CLRLoss
from stylegan_plus.losses.compose import ComposedLoss
from stylegan_plus.losses.dist import DistGANLoss
from stylegan_plus.losses.logan_b import LOGANBLoss
from stylegan_plus.networks import dcgan
from stylegan_plus.sampling import latent_steps

BASELINE = dict(r1_gamma=0, pl_weight=0, style_mixing_prob=0)


def dcgan_nets():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=4, c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    D = dcgan.Discriminator(c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


def bn_state(G):
    """Copies of every BatchNorm buffer of G: {name: tensor}."""
    return {name: buf.clone() for name, buf in G.named_buffers() if 'running' in name or 'num_batches' in name}


def assert_same(a, b):
    assert list(a) == list(b) and a
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_differs(a, b):
    assert any(not torch.equal(a[name], b[name]) for name in a)


def batch(n=6):
    torch.manual_seed(1)
    return torch.rand([n, 1, 8, 8]) * 2 - 1, torch.zeros([n, 0]), torch.randn([n, 4]) * 3, torch.zeros([n, 0])


def test_frozen_stats_keep_forward_and_backward():
    G, _D = dcgan_nets()
    z = torch.randn([5, 4])
    before = bn_state(G)
    reference = copy.deepcopy(G).requires_grad_(True)
    expected = reference(z, None)
    assert_differs(bn_state(reference), before)      # a plain training-mode pass moves them
    G.requires_grad_(True)
    with latent_steps.frozen_batchnorm_stats(latent_steps.batchnorm_layers(G)):
        out = G(z, None)
    assert_same(bn_state(G), before)
    torch.testing.assert_close(out, expected)        # same batch-statistics forward
    out.square().sum().backward()                    # autograd still has the buffers it saved
    expected.square().sum().backward()
    for (name, p), p_ref in zip(G.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, msg=name)
    assert latent_steps.batchnorm_layers(G) is not latent_steps.batchnorm_layers(G)  # a fresh list each call
    assert len(latent_steps.batchnorm_layers(G, None)) == len([m for m in G.modules()
                                                               if isinstance(m, torch.nn.BatchNorm2d)]) > 0


def test_clr_reconstruction_leaves_stats():
    G, D = dcgan_nets()
    loss = CLRLoss('cpu', G=G, D=D, **BASELINE)
    real, real_c, _z, _c = batch()
    before = bn_state(G)
    loss.reconstruct(real, real_c, sync=True)
    assert_same(bn_state(G), before)


def test_loganb_surrogate_leaves_stats():
    G, D = dcgan_nets()
    loss = LOGANBLoss('cpu', G=G, D=D, **BASELINE)
    before = bn_state(G)
    G.requires_grad_(True)
    loss.E.requires_grad_(True)
    loss.accumulate_gradients('Smain', *batch(), sync=True, gain=1)
    assert_same(bn_state(G), before)
    assert any(p.grad is not None for p in G.parameters())     # the step did train G


@pytest.mark.parametrize('phase', ['AEmain', 'Dboth'])
def test_dist_counts_only_the_prior_pass(phase):
    """AE and D steps run G on prior z (one update, as any G pass on fakes) and on E(x) (none)."""
    G, D = dcgan_nets()
    loss = DistGANLoss('cpu', G=G, D=D, dist_gp=0, **BASELINE)
    real, real_c, z, c = batch()
    prior_only = copy.deepcopy(G)
    with torch.no_grad():
        prior_only(z, c)
    (G if phase == 'AEmain' else D).requires_grad_(True)
    loss.E.requires_grad_(phase == 'AEmain')
    loss.accumulate_gradients(phase, real, real_c, z, c, sync=True, gain=1)
    assert_same(bn_state(G), bn_state(prior_only))


def test_qua_mining_leaves_stats():
    G, D = dcgan_nets()
    loss = ComposedLoss('cpu', main=dict(class_name='stylegan_plus.losses.stylegan2.StyleGAN2Loss', **BASELINE),
                        addons=[dict(class_name='stylegan_plus.losses.advlat.AdvLatQuaLoss', advlat_steps=3)], G=G, D=D)
    _real, _real_c, z, c = batch()
    before = bn_state(G)
    moved, _c = loss.addons[0].transform_fakes('Dmain', z, c, sync=True)
    loss.addons[0].accumulate_gradients('Dmain', None, None, moved, c, True, 1)
    assert_same(bn_state(G), before)
    assert not torch.equal(moved, z)
