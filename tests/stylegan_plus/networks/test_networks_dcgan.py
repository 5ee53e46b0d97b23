"""DCGAN networks: shapes, layers, features, conditioning, pickling, and one training step."""

import ast
import copy
import inspect
import pickle

import pytest
import torch

from stylegan_plus.losses import StyleGAN2Loss, build_optimizers, default_phases, run_phase
from stylegan_plus.networks import dcgan

SMALL = dict(channel_base=256, channel_max=32)   # channels(r) = min(256 // r, 32)
# What a pickled (persistent) network module may import: it must also run in an official checkout.
ALLOWED_IMPORTS = {'numpy', 'scipy', 'torch', 'dnnlib', 'torch_utils.misc', 'torch_utils.persistence',
                   'torch_utils.ops.conv2d_resample', 'torch_utils.ops.upfirdn2d', 'torch_utils.ops.bias_act',
                   'torch_utils.ops.fma', 'torch_utils.ops.conv2d_gradfix', 'torch_utils.ops.grid_sample_gradfix'}


def imported_modules(module):
    """Fully qualified names a module's source imports (`from a import b` counts as `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(f'{"." * node.level}{node.module}.{alias.name}' for alias in node.names)
    return found


def train_one_iteration(G, D, real, batch_gpu, r1_gamma=1.0):
    """Run the default Gboth/Dboth phases once with the baseline loss; returns {net: changed state keys}."""
    loss = StyleGAN2Loss('cpu', G=G, D=D, r1_gamma=r1_gamma, pl_weight=0, style_mixing_prob=0)
    adam = dict(class_name='torch.optim.Adam', lr=0.01, betas=[0.5, 0.99])
    phases = default_phases(adam, adam, G_reg_interval=None, D_reg_interval=None)
    modules = {'G': G, 'D': D}
    optimizers = build_optimizers(phases, modules)
    before = {name: copy.deepcopy(net.state_dict()) for name, net in modules.items()}
    c = torch.zeros(real.shape[0], 0)
    for spec in phases:
        z = torch.randn(real.shape[0], G.z_dim)
        rounds = list(zip(real.split(batch_gpu), c.split(batch_gpu), z.split(batch_gpu), c.split(batch_gpu)))
        run_phase(loss, spec, modules, optimizers[spec.opt], rounds)
    for net in modules.values():
        assert all(torch.isfinite(v.float()).all() for v in net.state_dict().values())
    return {name: sorted(k for k, v in net.state_dict().items() if not torch.equal(v, before[name][k]))
            for name, net in modules.items()}


def _modules_of(net, kind):
    return [m for m in net.modules() if isinstance(m, kind)]


@pytest.mark.parametrize('res', [16, 32, 64])
def test_shapes_layers_and_features(res):
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, c_dim=0, img_resolution=res, img_channels=3, **SMALL)
    D = dcgan.Discriminator(c_dim=0, img_resolution=res, img_channels=3, **SMALL)
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (8, 0, res, 3)
    img = G(torch.randn(5, 8), torch.zeros(5, 0))
    assert img.shape == (5, 3, res, res) and img.dtype == torch.float32
    assert img.abs().max() <= 1 and img.std() > 0      # tanh output
    num_up = res.bit_length() - 3                        # 4x4 stem, then one block per doubling but the last
    assert len(_modules_of(G, torch.nn.BatchNorm2d)) == num_up
    assert len(_modules_of(G, torch.nn.ConvTranspose2d)) == num_up + 1
    assert not _modules_of(D, torch.nn.BatchNorm2d)
    assert [m.stride for m in _modules_of(D, torch.nn.Conv2d)] == [(2, 2)] * (res.bit_length() - 3)
    assert len(_modules_of(D, torch.nn.LeakyReLU)) == res.bit_length() - 3
    logits, features = D(img, None, return_features=True)
    assert logits.shape == (5, 1) and features.shape == (5, 32 * 16) and D.num_features == 32 * 16
    assert torch.equal(D(img, None), logits)


def test_default_widths_are_classic_dcgan():
    G = dcgan.Generator(z_dim=100, c_dim=0, img_resolution=64, img_channels=3)
    D = dcgan.Discriminator(c_dim=0, img_resolution=64, img_channels=3)
    assert G.b4[0].out_channels == 512 and G.torgb.in_channels == 64 and G.torgb.out_channels == 3
    assert [G.b8[0].out_channels, G.b16[0].out_channels, G.b32[0].out_channels] == [256, 128, 64]
    assert [getattr(D, f'b{r}')[0].out_channels for r in (64, 32, 16, 8)] == [64, 128, 256, 512]
    assert D.num_features == 512 * 16


def test_conditional():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, c_dim=3, img_resolution=16, img_channels=1, **SMALL).eval()
    D = dcgan.Discriminator(c_dim=3, img_resolution=16, img_channels=1, **SMALL)
    z = torch.randn(2, 8).repeat(3, 1)
    c = torch.eye(3).repeat_interleave(2, dim=0)
    img = G(z, c)
    assert not torch.allclose(img[0], img[2])            # same z, different label
    x = img[:2].repeat(3, 1, 1, 1)
    logits, features = D(x, c, return_features=True)
    assert torch.allclose(features[0], features[2]) and not torch.allclose(logits[0], logits[2])
    plain = D.out(features)
    projection = (features * D.embed(c)).sum(dim=1, keepdim=True)
    assert torch.allclose(logits, plain + projection, atol=1e-5)
    with pytest.raises(AssertionError):
        G(z, torch.zeros(6, 2))


def test_stylegan_keywords_are_ignored():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, c_dim=0, img_resolution=16, img_channels=3, **SMALL).eval()
    z = torch.randn(2, 8)
    c = torch.zeros(2, 0)
    assert torch.equal(G(z, c), G(z, c, truncation_psi=0.5, truncation_cutoff=2, noise_mode='const', force_fp32=True))


@pytest.mark.parametrize('res', [4, 24])
def test_bad_resolution(res):
    with pytest.raises(ValueError, match='power of two >= 8'):
        dcgan.Generator(z_dim=8, c_dim=0, img_resolution=res, img_channels=3)


def test_pickle_round_trip_and_imports():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, c_dim=2, img_resolution=16, img_channels=3, **SMALL).eval()
    G2 = pickle.loads(pickle.dumps(G))
    z, c = torch.randn(2, 8), torch.eye(2)
    assert torch.equal(G(z, c), G2(z, c))
    assert G2.init_kwargs == dict(z_dim=8, c_dim=2, img_resolution=16, img_channels=3, **SMALL)
    assert imported_modules(dcgan) <= ALLOWED_IMPORTS


def test_one_g_and_d_step():
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, c_dim=0, img_resolution=16, img_channels=3, **SMALL).train().requires_grad_(False)
    D = dcgan.Discriminator(c_dim=0, img_resolution=16, img_channels=3, **SMALL).train().requires_grad_(False)
    changed = train_one_iteration(G, D, torch.rand(4, 3, 16, 16) * 2 - 1, batch_gpu=4)
    assert changed['D'] == sorted(D.state_dict())
    # Every G weight moved, and BatchNorm (train mode) updated its running statistics.
    assert changed['G'] == sorted(G.state_dict())
    assert any('running_mean' in k for k in changed['G'])
