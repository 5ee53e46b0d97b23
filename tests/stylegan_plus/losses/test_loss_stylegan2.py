"""The baseline StyleGAN2 loss on tiny networks with fixed weights, checked against hand computations."""

import math

import numpy as np
import pytest
import torch

from stylegan_plus.losses import StyleGAN2Loss, build_optimizers, default_phases, run_phase
from stylegan_plus.networks import mlp
from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from training import networks

W = [1.0, 2.0, 0.0, -2.0]   # D weights over the 4 pixels of a 1x2x2 image
B = 0.5                     # D bias
S = 3.0                     # synthesis gain


def softplus(x):
    return math.log1p(math.exp(x))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


class _Probe(torch.autograd.Function):
    """Identity whose backward records whether weight gradients were switched off."""
    flags = []

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _Probe.flags.append(conv2d_gradfix.weight_gradients_disabled)
        return grad


class TinyMapping(torch.nn.Module):
    """z [N, 2] -> ws [N, num_ws, 2] = z * scale broadcast over layers."""
    z_dim, c_dim, w_dim = 2, 0, 2

    def __init__(self, num_ws=2):
        super().__init__()
        self.num_ws = num_ws
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.calls = []

    def forward(self, z, c, skip_w_avg_update=False):
        self.calls.append(skip_w_avg_update)
        return (z * self.scale).unsqueeze(1).repeat(1, self.num_ws, 1)


class TinySynthesis(torch.nn.Module):
    """ws [N, 2, 2] -> img [N, 1, 2, 2] = S * ws (row i of ws = image row i)."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(S))

    def forward(self, ws):
        return _Probe.apply(ws[:, :2].reshape(ws.shape[0], 1, 2, 2)) * self.gain


class TinyD(torch.nn.Module):
    """Linear D: logits = img.flatten(1) @ W + B -> [N, 1]; counts its calls."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(W))
        self.bias = torch.nn.Parameter(torch.tensor(B))
        self.calls = 0

    def forward(self, img, c, return_features=False):
        self.calls += 1
        features = _Probe.apply(img.flatten(1))
        logits = (features @ self.weight + self.bias).unsqueeze(1)
        return (logits, features) if return_features else logits


def _setup(num_ws=2, **loss_kwargs):
    mapping, synthesis, D = TinyMapping(num_ws), TinySynthesis(), TinyD()
    for net in (mapping, synthesis, D):
        net.requires_grad_(False)
    kwargs = dict(style_mixing_prob=0, r1_gamma=10, pl_weight=2)
    kwargs.update(loss_kwargs)
    loss = StyleGAN2Loss('cpu', G_mapping=mapping, G_synthesis=synthesis, D=D, **kwargs)
    return loss, mapping, synthesis, D


Z = torch.tensor([[1.0, 0.0], [0.0, -1.0]])         # fakes: [3,0,3,0] -> logit 3.5; [0,-3,0,-3] -> 0.5
REAL = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]).reshape(2, 1, 2, 2)  # logits 1.5, 0.5
C = torch.zeros(2, 0)
FAKE_LOGITS = [3.5, 0.5]
FAKE_DOT = [1.0, 0.0]                                # flatten(img / S) @ W per fake
REAL_LOGITS = [1.5, 0.5]


def _stats(collector):
    collector.update()
    return {name: collector.mean(name) for name in collector.names() if collector.num(name) > 0}


def test_gmain_values_and_grads():
    loss, mapping, synthesis, D = _setup()
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    mapping.requires_grad_(True)
    synthesis.requires_grad_(True)
    loss.accumulate_gradients('Gmain', REAL, C, Z, C, sync=True, gain=4)
    stats = _stats(collector)
    assert set(stats) == {'Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss'}
    assert stats['Loss/G/loss'] == pytest.approx((softplus(-3.5) + softplus(-0.5)) / 2, rel=1e-6)
    assert stats['Loss/scores/fake'] == pytest.approx(2.0) and stats['Loss/signs/fake'] == 1
    # d/dgain of mean softplus(-logit), logit = gain * dot + B, times the phase gain 4.
    expected = 4 * sum(-sigmoid(-l) * d for l, d in zip(FAKE_LOGITS, FAKE_DOT)) / 2
    assert synthesis.gain.grad.item() == pytest.approx(expected, rel=1e-6)
    assert D.weight.grad is None and D.bias.grad is None


def _d_phase(phase, gain, **kwargs):
    loss, mapping, synthesis, D = _setup(**kwargs)
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    D.requires_grad_(True)
    loss.accumulate_gradients(phase, REAL, C, Z, C, sync=True, gain=gain)
    assert synthesis.gain.grad is None and mapping.scale.grad is None
    return _stats(collector), D


def test_dmain_values_and_grads():
    stats, D = _d_phase('Dmain', gain=1)
    assert set(stats) == {'Loss/scores/fake', 'Loss/signs/fake', 'Loss/scores/real', 'Loss/signs/real', 'Loss/D/loss'}
    fake_terms = [softplus(l) for l in FAKE_LOGITS]
    real_terms = [softplus(-l) for l in REAL_LOGITS]
    assert stats['Loss/D/loss'] == pytest.approx((sum(fake_terms) + sum(real_terms)) / 2, rel=1e-6)
    assert stats['Loss/scores/real'] == pytest.approx(1.0)
    fakes = [S * np.array([1, 0, 1, 0]), S * np.array([0, -1, 0, -1])]
    reals = [np.ones(4), np.zeros(4)]
    grad = sum(sigmoid(l) * x for l, x in zip(FAKE_LOGITS, fakes)) / 2 - sum(sigmoid(-l) * x for l, x in zip(REAL_LOGITS, reals)) / 2
    np.testing.assert_allclose(D.weight.grad.numpy(), grad, rtol=1e-6)
    assert D.calls == 2


def test_dreg_r1_by_hand():
    _Probe.flags.clear()
    stats, D = _d_phase('Dreg', gain=16)
    assert set(stats) == {'Loss/scores/real', 'Loss/signs/real', 'Loss/r1_penalty', 'Loss/D/reg'}
    # Linear D: the input gradient is W for every sample, so R1 = |W|^2 = 9, D/reg = 10/2 * 9.
    assert stats['Loss/r1_penalty'] == pytest.approx(9.0)
    assert stats['Loss/D/reg'] == pytest.approx(45.0)
    # d/dW of gamma/2 |W|^2 = gamma W, times the gain; the bias only meets the zero-weighted logits.
    np.testing.assert_allclose(D.weight.grad.numpy(), 16 * 10 * np.array(W), rtol=1e-6)
    assert D.bias.grad.item() == 0
    assert _Probe.flags[0] is True and conv2d_gradfix.weight_gradients_disabled is False
    assert D.calls == 1


def test_dboth_shares_the_real_pass():
    stats, D = _d_phase('Dboth', gain=1)
    assert {'Loss/D/loss', 'Loss/r1_penalty', 'Loss/D/reg', 'Loss/scores/fake'} <= set(stats)
    assert D.calls == 2     # one fake pass, one real pass for both the loss and R1


def test_r1_sees_the_unaugmented_image():
    class Double(torch.nn.Module):
        def forward(self, img):
            return img * 2
    stats, _ = _d_phase('Dreg', gain=1, augment_pipe=Double())
    assert stats['Loss/r1_penalty'] == pytest.approx(36.0)      # d D(2x) / dx = 2 W


def test_path_length_values_and_pl_mean():
    loss, mapping, synthesis, _D = _setup()
    mapping.requires_grad_(True)    # as in the Greg phase: all of G is trained
    synthesis.requires_grad_(True)
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    z = torch.randn(4, 2)
    pl_mean = 0.0
    _Probe.flags.clear()
    for seed in (5, 6):
        torch.manual_seed(seed)
        loss.accumulate_gradients('Greg', REAL, C, z, torch.zeros(4, 0), sync=True, gain=4)
        torch.manual_seed(seed)
        noise = torch.randn([2, 1, 2, 2]).numpy() / 2        # pl batch 4 // 2; divided by sqrt(H*W)
        grads = S * noise.reshape(2, 2, 2)                    # d sum(img * noise) / d ws
        lengths = np.sqrt((grads ** 2).sum(axis=2).mean(axis=1))
        pl_mean = pl_mean + 0.01 * (lengths.mean() - pl_mean)
        penalty = (lengths - pl_mean) ** 2
        assert loss.pl_mean.item() == pytest.approx(pl_mean, rel=1e-5)
        collector.update()
        assert collector.num('Loss/pl_penalty') == 2
        assert collector.mean('Loss/pl_penalty') == pytest.approx(penalty.mean(), rel=1e-5)
        assert collector.mean('Loss/G/reg') == pytest.approx(2 * penalty.mean(), rel=1e-5)
        assert set(n for n in collector.names() if collector.num(n)) == {'Loss/pl_penalty', 'Loss/G/reg'}
    assert _Probe.flags and _Probe.flags[0] is True        # ws grads taken without weight grads
    assert synthesis.gain.grad is not None
    assert loss.state_dict()['pl_mean'].item() == pytest.approx(pl_mean, rel=1e-5)


def test_gboth_runs_main_and_path_length():
    loss, mapping, synthesis, _D = _setup()
    mapping.requires_grad_(True)
    synthesis.requires_grad_(True)
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    loss.accumulate_gradients('Gboth', REAL, C, torch.randn(4, 2), torch.zeros(4, 0), sync=True, gain=1)
    assert set(_stats(collector)) == {'Loss/scores/fake', 'Loss/signs/fake', 'Loss/G/loss', 'Loss/pl_penalty', 'Loss/G/reg'}
    assert loss.pl_mean.item() > 0


def test_zero_weights_skip_regularisers():
    loss, _m, synthesis, D = _setup(pl_weight=0, r1_gamma=0)
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    loss.accumulate_gradients('Greg', REAL, C, Z, C, sync=True, gain=4)
    loss.accumulate_gradients('Dreg', REAL, C, Z, C, sync=True, gain=16)
    assert _stats(collector) == {} and D.calls == 0 and loss.pl_mean.item() == 0


def test_style_mixing():
    loss, mapping, _s, _D = _setup(num_ws=4, style_mixing_prob=1)
    torch.manual_seed(0)
    z = torch.randn(3, 2)
    _img, ws = loss.run_G(z, torch.zeros(3, 0), sync=True)
    assert mapping.calls == [False, True]     # the second latent skips the w_avg update
    same = [torch.allclose(ws[:, i], z) for i in range(4)]
    cutoff = same.index(False)
    assert 1 <= cutoff < 4 and all(same[:cutoff]) and not any(same[cutoff:])
    assert all(torch.equal(ws[:, i], ws[:, cutoff]) for i in range(cutoff, 4))
    mapping.calls.clear()
    _img, ws = loss.run_G(z, torch.zeros(3, 0), sync=True, mixing=False)
    assert mapping.calls == [False] and torch.allclose(ws, z.unsqueeze(1).repeat(1, 4, 1))


def test_unknown_phase_refused():
    loss, *_ = _setup()
    with pytest.raises(ValueError, match="unknown phase 'Gmian'"):
        loss.accumulate_gradients('Gmian', REAL, C, Z, C, sync=True, gain=1)


def test_networks_without_mapping(capsys):
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=3, c_dim=0, hidden_features=[8]).requires_grad_(False)
    D = mlp.Discriminator(c_dim=0, hidden_features=[8]).requires_grad_(False)
    loss = StyleGAN2Loss('cpu', G=G, D=D)
    assert 'no mapping/synthesis split' in capsys.readouterr().out
    assert loss.pl_weight == 0 and loss.style_mixing_prob == 0 and not loss.has_mapping and loss.z_dim == 3
    real, z, c = torch.randn(4, 2), torch.randn(4, 3), torch.zeros(4, 0)
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    for spec in default_phases(dict(lr=1), dict(lr=1)):
        net = G if spec.modules == ('G',) else D
        net.requires_grad_(True)
        loss.accumulate_gradients(spec.name, real, c, z, c, sync=True, gain=spec.interval)
        net.requires_grad_(False)
        names = set(_stats(collector))
        assert ('Loss/G/loss' in names) == (spec.name == 'Gmain')
        assert ('Loss/r1_penalty' in names) == (spec.name == 'Dreg')
        assert 'Loss/pl_penalty' not in names
    assert all(p.grad is not None for p in D.parameters()) and all(p.grad is not None for p in G.parameters())
    img, ws = loss.run_G(z, c, sync=True)
    assert img.shape == (4, 2) and ws is None


def test_official_positional_signature():
    mapping, synthesis, D = TinyMapping(), TinySynthesis(), TinyD()
    loss = StyleGAN2Loss('cpu', mapping, synthesis, D, None, 0.5, 3, 4, 0.02, 1)
    assert (loss.style_mixing_prob, loss.r1_gamma, loss.pl_batch_shrink, loss.pl_decay, loss.pl_weight) == (0.5, 3, 4, 0.02, 1)
    assert loss.pl_mean.shape == () and loss.pl_mean.item() == 0
    loss = StyleGAN2Loss(device='cpu', G_mapping=mapping, G_synthesis=synthesis, D=D)
    assert (loss.style_mixing_prob, loss.r1_gamma, loss.pl_batch_shrink, loss.pl_decay, loss.pl_weight) == (0.9, 10, 2, 0.01, 2)


@pytest.mark.slow
def test_real_stylegan2_networks_through_all_phases():
    torch.manual_seed(0)
    G = networks.Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=8, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=16))
    D = networks.Discriminator(c_dim=2, img_resolution=8, img_channels=3, channel_base=64, channel_max=16)
    for net in (G, D):
        net.train().requires_grad_(False)
    loss = StyleGAN2Loss('cpu', G_mapping=G.mapping, G_synthesis=G.synthesis, D=D)
    adam = dict(class_name='torch.optim.Adam', lr=0.002, betas=[0, 0.99], eps=1e-8)
    phases = default_phases(adam, adam)
    modules = {'G': G, 'D': D}
    optimizers = build_optimizers(phases, modules)
    assert optimizers['G'].param_groups[0]['lr'] == pytest.approx(0.002 * 4 / 5)
    assert optimizers['D'].param_groups[0]['betas'] == pytest.approx((0, 0.99 ** (16 / 17)))
    real, c = torch.randn(4, 3, 8, 8), torch.eye(2)[[0, 1, 0, 1]]
    collector = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    for spec in phases:
        rounds = [(real[:2], c[:2], torch.randn(2, 8), c[:2]), (real[2:], c[2:], torch.randn(2, 8), c[2:])]
        run_phase(loss, spec, modules, optimizers[spec.opt], rounds)
    stats = _stats(collector)
    assert len(stats) == 10 and all(np.isfinite(v) for v in stats.values())
    assert loss.pl_mean.item() > 0
    _logits, features = D(real, c, return_features=True)
    assert features.shape == (4, 16)
