"""MLP networks for 2-D points: shapes, widths, features, conditioning, pickling, one training step."""

import pickle

import pytest
import torch

from stylegan_plus.networks import mlp

from .test_networks_dcgan import ALLOWED_IMPORTS, imported_modules, train_one_iteration


def test_shapes_and_widths():
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=5, c_dim=0, hidden_features=[10, 20])
    D = mlp.Discriminator(c_dim=0, hidden_features=[30, 40], lrelu_slope=0.1)
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (5, 0, 1, 2)
    assert [m.out_features for m in G.modules() if isinstance(m, torch.nn.Linear)] == [10, 20, 2]
    assert [m.out_features for m in D.modules() if isinstance(m, torch.nn.Linear)] == [30, 40, 1]
    assert [m.negative_slope for m in D.modules() if isinstance(m, torch.nn.LeakyReLU)] == [0.1, 0.1]
    points = G(torch.randn(7, 5), torch.zeros(7, 0))
    assert points.shape == (7, 2) and points.dtype == torch.float32
    logits, features = D(points, None, return_features=True)
    assert logits.shape == (7, 1) and features.shape == (7, 40) and D.num_features == 40
    assert torch.equal(features, D.body(points)) and torch.equal(logits, D.out(features))
    assert torch.equal(D(points.reshape(7, 2, 1, 1), None), logits)   # NCHW points read the same


def test_image_shaped_output():
    G = mlp.Generator(z_dim=4, c_dim=0, img_resolution=4, img_channels=1, hidden_features=[8])
    D = mlp.Discriminator(c_dim=0, img_resolution=4, img_channels=1, hidden_features=[8])
    img = G(torch.randn(3, 4), None)
    assert img.shape == (3, 1, 4, 4) and D(img, None).shape == (3, 1)


def test_conditional():
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=3, c_dim=4, hidden_features=[16])
    D = mlp.Discriminator(c_dim=4, hidden_features=[16])
    z = torch.randn(1, 3).repeat(2, 1)
    c = torch.eye(4)[:2]
    x = G(z, c)
    assert not torch.allclose(x[0], x[1])
    same = x[:1].repeat(2, 1)
    logits, features = D(same, c, return_features=True)
    assert torch.equal(features[0], features[1]) and not torch.allclose(logits[0], logits[1])
    with pytest.raises(AssertionError):
        D(same, torch.zeros(2, 3))


@pytest.mark.parametrize('widths', [[], [0, 4]])
def test_bad_widths(widths):
    with pytest.raises(ValueError, match='hidden_features'):
        mlp.Generator(z_dim=2, c_dim=0, hidden_features=widths)


def test_sigmoid_output_squashes_the_linear_output():
    torch.manual_seed(0)
    linear = mlp.Generator(z_dim=2, c_dim=0, hidden_features=[8])
    torch.manual_seed(0)
    squashed = mlp.Generator(z_dim=2, c_dim=0, hidden_features=[8], output_activation='sigmoid')
    z = torch.randn(64, 2) * 10       # large latents: raw outputs well outside (0, 1)
    raw, out = linear(z, None), squashed(z, None)
    assert raw.abs().max() > 1
    assert torch.allclose(out, torch.sigmoid(raw)) and out.min() > 0 and out.max() < 1
    assert pickle.loads(pickle.dumps(squashed)).output_activation == 'sigmoid'
    with pytest.raises(ValueError, match="output_activation='tanh'.*linear, sigmoid"):
        mlp.Generator(z_dim=2, c_dim=0, output_activation='tanh')


def test_pickle_and_ignored_keywords():
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=2, c_dim=0, hidden_features=(8, 8))
    G2 = pickle.loads(pickle.dumps(G))
    z = torch.randn(3, 2)
    assert torch.equal(G(z, None), G2(z, None, truncation_psi=0.7, noise_mode='const'))
    assert G2.init_kwargs.hidden_features == (8, 8)
    assert imported_modules(mlp) <= ALLOWED_IMPORTS


def test_one_g_and_d_step():
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=2, c_dim=0, hidden_features=[16, 16]).train().requires_grad_(False)
    D = mlp.Discriminator(c_dim=0, hidden_features=[16, 16]).train().requires_grad_(False)
    changed = train_one_iteration(G, D, torch.randn(8, 2), batch_gpu=4, r1_gamma=0.5)
    assert changed == {'G': sorted(G.state_dict()), 'D': sorted(D.state_dict())}    # every parameter moved
