"""AdvLatGAN add-ons (`--loss=advlat-qua`, `--loss=advlat-div`): latent steps and loss values on a
hand-computed case, style mixing, composition with CLR-GAN, options and state.

Hand case (tests.stylegan_plus.sampling.test_latent_steps): G(z) = z W^T, D(x) = x v + b; the baseline main loss with
R1, path length and style mixing off, so every term can be written down.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

import dnnlib
from stylegan_plus.losses import registry
from stylegan_plus.losses.advlat import AdvLatDivLoss, AdvLatQuaLoss
from stylegan_plus.losses.compose import ComposedLoss
from stylegan_plus.training.resolve import resolve_options
from tests.stylegan_plus.sampling.test_latent_steps import B, EPS, STEP_SIGN, V, W, Z0, LinearD, LinearG, empty_c, hand_logits
from tests.test_legacy import REPO
from tests.stylegan_plus.training.test_train_batch_gpu import option_values
from tests.stylegan_plus.training.test_train_utils import make_point_dataset
from tests.stylegan_plus.losses.test_loss_clr import (REAL, run_outputs, run_phase, sigmoid, tiny_image_folder, tiny_stylegan2,
                                 train_tiny)

BASELINE = dict(class_name='stylegan_plus.losses.stylegan2.StyleGAN2Loss', r1_gamma=0, pl_weight=0, style_mixing_prob=0)
QUA = 'stylegan_plus.losses.advlat.AdvLatQuaLoss'
DIV = 'stylegan_plus.losses.advlat.AdvLatDivLoss'
DIV_EPS = 2 ** -8                       # exact in float32 next to the numbers below
DELTA = torch.tensor([[0.125, -0.25], [0.25, 0.125], [-0.125, 0.375], [0.5, -0.125]])   # z2 start - z1


def composed(*addons, main=None):
    G, D = LinearG().requires_grad_(False), LinearD().requires_grad_(False)
    return ComposedLoss('cpu', main=main or BASELINE, addons=list(addons), G=G, D=D)


def hand_D_grad(x_fake, x_real=REAL):
    """d/dv of mean softplus(D(x_fake)) + mean softplus(-D(x_real)) for D(x) = x v + b."""
    v = torch.tensor(V)
    l_fake, l_real = x_fake @ v + B, x_real @ v + B
    return (sigmoid(l_fake)[:, None] * x_fake).mean(0) - (sigmoid(-l_real)[:, None] * x_real).mean(0)


def hand_G_grad(z):
    """d/dW of mean softplus(-D(G(z))): -(1/N) sum_n sigmoid(-l_n) v z_n^T."""
    v = torch.tensor(V)
    return -(sigmoid(-hand_logits(z))[:, None, None] * v[None, :, None] * z[:, None, :]).mean(0)

#----------------------------------------------------------------------------
# advlat-qua

def test_qua_D_step_trains_on_fakes_moved_by_eps():
    loss = composed(dict(class_name=QUA, advlat_eps=EPS, advlat_steps=1))
    stats = run_phase(loss, 'Dmain', [loss.main.D])
    moved = Z0 + EPS * STEP_SIGN            # by hand: z + eps * sign(W^T v) = z + eps * (-1, +1)
    torch.testing.assert_close(loss.main.D.weight.grad[0], hand_D_grad(moved @ torch.tensor(W).t()))
    assert stats['Loss/advlat/qua_logits_start'] == pytest.approx(hand_logits(Z0).mean().item(), rel=1e-6)
    # The scores D trained on are exactly eps * ||W^T v||_1 = eps * 4.5 higher than before the step.
    assert stats['Loss/scores/fake'] == pytest.approx(hand_logits(Z0).mean().item() + EPS * 4.5, rel=1e-6)


def test_qua_transform_fakes_only_in_D_main_phases():
    loss = composed(dict(class_name=QUA, advlat_eps=EPS, advlat_steps=2))
    qua = loss.addons[0]
    for phase in ('Dmain', 'Dboth'):
        z, c = qua.transform_fakes(phase, Z0, empty_c(4), sync=True)
        assert torch.equal(z - Z0, (2 * EPS * STEP_SIGN).expand(4, 2)) and c.shape == (4, 0)
        qua.accumulate_gradients(phase, REAL, empty_c(4), z, c, True, 1)
    for phase in ('Gmain', 'Gboth', 'Greg', 'Dreg'):
        assert qua.transform_fakes(phase, Z0, empty_c(4), sync=True)[0] is Z0


def test_qua_G_step_uses_fresh_unmoved_z():
    loss = composed(dict(class_name=QUA, advlat_eps=EPS, advlat_steps=1))
    stats = run_phase(loss, 'Gmain', [loss.main.G])
    torch.testing.assert_close(loss.main.G.weight.grad, hand_G_grad(Z0))
    assert 'Loss/advlat/qua_logits_start' not in stats


def stylegan2_composed(addon):
    """(loss, G, D): the baseline with style mixing 0.9 plus `addon` on tiny StyleGAN2 nets (z_dim 8)."""
    G, D = tiny_stylegan2(z_dim=8)
    G.requires_grad_(False)
    D.requires_grad_(False)
    loss = ComposedLoss('cpu', main=dict(BASELINE, style_mixing_prob=0.9), addons=[addon],
                        G_mapping=G.mapping, G_synthesis=G.synthesis, D=D)
    return loss, G, D


def test_qua_turns_style_mixing_off_for_the_moved_batch_only():
    loss, G, D = stylegan2_composed(dict(class_name=QUA))
    seen = []
    run_G = loss.main.run_G
    loss.main.run_G = lambda *args, **kwargs: (seen.append(loss.main.style_mixing_prob), run_G(*args, **kwargs))[1]
    real, z = torch.rand([4, 3, 16, 16]) * 2 - 1, torch.randn([4, 8])
    run_phase(loss, 'Dmain', [D], real=real, z=z)
    assert seen == [0] and loss.main.style_mixing_prob == 0.9
    run_phase(loss, 'Gmain', [G], real=real, z=z)
    assert seen == [0, 0.9]


def test_clr_with_qua_targets_the_moved_z():
    clr = dict(BASELINE, class_name='stylegan_plus.losses.clr.CLRLoss', clr_lambda_latent=5.0)
    loss = composed(dict(class_name=QUA, advlat_eps=EPS, advlat_steps=1), main=clr)
    head = loss.main.clr_head
    stats = run_phase(loss, 'Dmain', [loss.main.D, head])
    moved = Z0 + EPS * STEP_SIGN
    with torch.no_grad():
        expected = (head(moved @ torch.tensor(W).t()) - moved).square().mean()
    assert stats['Loss/clr/latent'] == pytest.approx(expected.item(), rel=1e-6)
    assert 'Loss/advlat/qua_logits_start' in stats

#----------------------------------------------------------------------------
# advlat-div

def hand_pair_mining(z1, z2, steps, eps=DIV_EPS):
    """Sign descent on r = d_I / (d_z + 1) with the gradient written out (numpy, float64)."""
    z1, z2, w = z1.numpy().astype(np.float64), z2.numpy().astype(np.float64), np.array(W)
    n, k, m = z1.shape[0], z1.shape[1], w.shape[0]
    for _ in range(steps):
        delta = z2 - z1
        img_diff = delta @ w.T
        d_img, d_z = np.abs(img_diff).mean(), np.abs(delta).mean()
        grad_dimg = np.sign(img_diff) @ w / (n * m)
        grad_dz = np.sign(delta) / (n * k)
        grad = grad_dimg / (d_z + 1) - d_img * grad_dz / (d_z + 1) ** 2
        assert np.abs(grad).min() > 1e-6   # no tie: the sign is well defined
        z2 = z2 - eps * np.sign(grad)
    return torch.tensor(z2, dtype=torch.float32)


def hand_mode_seeking(z1, z2, weight=1.0):
    """(weight / (d_I / d_z + 1e-5), d_I / d_z, d loss / dW) for the pair, by hand."""
    delta = z2 - z1
    img_diff = delta @ torch.tensor(W).t()
    n, m = img_diff.shape
    d_img, d_z = img_diff.abs().mean(), delta.abs().mean()
    ratio = d_img / d_z
    loss = weight / (ratio + 1e-5)
    grad_W = -weight / (ratio + 1e-5) ** 2 / d_z * img_diff.sign().t() @ delta / (n * m)
    return loss, ratio, grad_W


def div_kwargs(**kwargs):
    kwargs.setdefault('advlat_div_frac', 1.0)   # the hand cases pair every latent
    return dict(class_name=DIV, advlat_div_eps=DIV_EPS, **kwargs)


def test_div_pair_mining_moves_z2_by_exactly_eps_by_hand():
    loss = composed(div_kwargs())
    div = loss.addons[0]
    start = Z0 + DELTA
    z2 = div.mine_pair(Z0, empty_c(4), start=start)
    expected = hand_pair_mining(Z0, start, steps=3)
    assert torch.equal(z2, expected)
    # Each element took 3 steps of exactly eps: it ends 1 or 3 steps away from the start.
    assert set(((z2 - start).abs() / DIV_EPS).unique().tolist()) <= {1.0, 3.0}
    assert loss.main.G.weight.grad is None  # mining leaves G's weights alone


def test_div_mode_seeking_term_value_and_gradient_by_hand():
    loss = composed(div_kwargs(advlat_div_lambda=2.0))
    div = loss.addons[0]
    loss.main.G.requires_grad_(True)
    value = div.backward_mode_seeking(Z0, empty_c(4), sync=True, gain=1, start=Z0 + DELTA)
    z2 = hand_pair_mining(Z0, Z0 + DELTA, steps=3)
    expected, ratio, grad_W = hand_mode_seeking(Z0, z2, weight=2.0)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(loss.main.G.weight.grad, grad_W)
    assert 0 < ratio < np.abs(np.array(W)).max() * 2


def test_div_G_step_adds_the_term_to_the_baseline():
    loss = composed(div_kwargs())
    torch.manual_seed(3)
    stats = run_phase(loss, 'Gboth', [loss.main.G])
    torch.manual_seed(3)  # the baseline G step draws nothing here, so this replays z2's start
    start = Z0 + 0.08 * torch.randn_like(Z0)
    z2 = loss.addons[0].mine_pair(Z0, empty_c(4), start=start)
    expected, ratio, grad_W = hand_mode_seeking(Z0, z2)
    torch.testing.assert_close(loss.main.G.weight.grad, hand_G_grad(Z0) + grad_W)
    assert stats['Loss/advlat/div_ms'] == pytest.approx(expected.item(), rel=1e-5)
    assert stats['Loss/advlat/div_ratio'] == pytest.approx(ratio.item(), rel=1e-5)
    assert (z2 - start).abs().max() <= 3 * DIV_EPS + 1e-6


@pytest.mark.parametrize('dpair', [False, True])
def test_div_dpair_trains_D_on_the_partner_fakes(dpair):
    loss = composed(div_kwargs(advlat_div_dpair=dpair))
    torch.manual_seed(4)
    stats = run_phase(loss, 'Dmain', [loss.main.D])
    expected = hand_D_grad(Z0 @ torch.tensor(W).t())
    if dpair:
        torch.manual_seed(4)
        z2 = loss.addons[0].mine_pair(Z0, empty_c(4), start=Z0 + 0.08 * torch.randn_like(Z0))
        x2 = z2 @ torch.tensor(W).t()
        expected = expected + (sigmoid(x2 @ torch.tensor(V) + B)[:, None] * x2).mean(0)
        assert 'Loss/advlat/div_D_pair' in stats
    else:
        assert not any(name.startswith('Loss/advlat/') for name in stats)
    torch.testing.assert_close(loss.main.D.weight.grad[0], expected)


def test_div_on_stylegan2_reports_its_statistics():
    loss, G, D = stylegan2_composed(div_kwargs(advlat_div_dpair=True))
    w_avg = G.mapping.w_avg.clone()
    real, z = torch.rand([4, 3, 16, 16]) * 2 - 1, torch.randn([4, 8])
    stats = run_phase(loss, 'Gmain', [G], real=real, z=z)
    assert stats['Loss/advlat/div_ratio'] > 0 and stats['Loss/advlat/div_ms'] > 0
    # Only the main loss's own mapping pass moves w_avg (one EMA step), not the mining passes.
    expected_w_avg = w_avg.lerp(G.mapping(z, empty_c(4), skip_w_avg_update=True)[:, 0].mean(0).detach(), 1 - 0.995)
    torch.testing.assert_close(G.mapping.w_avg, expected_w_avg)
    stats = run_phase(loss, 'Dmain', [D], real=real, z=z)
    assert 'Loss/advlat/div_D_pair' in stats

def test_div_mining_without_batchnorm_runs_G_z1_once_with_the_same_result(monkeypatch):
    loss, G, _D = stylegan2_composed(dict(class_name=DIV, advlat_div_std=0.5, advlat_div_eps=0.01))
    div = loss.addons[0]
    z1 = torch.randn([4, 8])
    start = z1 + 0.5 * torch.randn_like(z1)
    calls = []
    forward = G.synthesis.forward
    monkeypatch.setattr(G.synthesis, 'forward', lambda ws, **kw: (calls.append(ws.shape[0]), forward(ws, **kw))[1])
    assert not div._batch_dependent_generator()
    fast = div.mine_pair(z1, empty_c(4), start=start)
    assert calls == [4, 4, 4, 4]            # G(z1) once, then G(z2) per step, never the joint batch
    monkeypatch.setattr(type(div), '_batch_dependent_generator', lambda self: True)
    calls.clear()
    joint = div.mine_pair(z1, empty_c(4), start=start)
    assert calls == [8, 8, 8]
    assert torch.equal(fast, joint) and not torch.equal(fast, start)


def _mode_seeking_grads(loss, G, z, start):
    G.requires_grad_(True)
    for param in G.parameters():
        param.grad = None
    value = loss.addons[0].backward_mode_seeking(z, empty_c(z.shape[0]), sync=True, gain=1, start=start)
    return value, {name: param.grad.clone() for name, param in G.named_parameters() if param.grad is not None}


def test_div_shared_G_z1_pass_gives_the_joint_batch_loss_and_gradients(monkeypatch):
    # The optimisation (G(z1) once with its graph, reused by mining and term) against the
    # straightforward joint pair pass, on a tiny StyleGAN2 without BatchNorm.
    loss, G, _D = stylegan2_composed(dict(class_name=DIV, advlat_div_std=0.5, advlat_div_eps=0.01,
                                          advlat_div_frac=1.0))
    div = loss.addons[0]
    torch.manual_seed(5)
    z = torch.randn([4, 8])
    start = z + 0.5 * torch.randn_like(z)
    assert div._separable_pair()
    fast_value, fast_grads = _mode_seeking_grads(loss, G, z, start)
    monkeypatch.setattr(type(div), '_separable_pair', lambda self: False)
    joint_value, joint_grads = _mode_seeking_grads(loss, G, z, start)
    torch.testing.assert_close(fast_value, joint_value, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == joint_grads.keys() and len(fast_grads) > 4
    for name in joint_grads:
        torch.testing.assert_close(fast_grads[name], joint_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(grad.abs().sum() > 0 for grad in fast_grads.values())


def test_div_frac_pairs_the_first_latents_only():
    # With frac = 1/2 the term equals the full computation on the first half of the batch.
    z8 = torch.cat([Z0, Z0 * -2 + 0.5])
    start8 = z8 + torch.cat([DELTA, -DELTA])
    half = composed(div_kwargs(advlat_div_frac=0.5))
    assert half.addons[0].num_pairs(8) == 4 and half.addons[0].num_pairs(1) == 1
    half.main.G.requires_grad_(True)
    value = half.addons[0].backward_mode_seeking(z8, empty_c(8), sync=True, gain=1, start=start8)
    z2 = hand_pair_mining(Z0, Z0 + DELTA, steps=3)
    expected, _ratio, grad_W = hand_mode_seeking(Z0, z2)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(half.main.G.weight.grad, grad_W)
    with pytest.raises(ValueError, match='frac'):
        composed(div_kwargs(advlat_div_frac=0.0))


def test_div_mining_with_batchnorm_keeps_the_joint_batch():
    from stylegan_plus.networks import dcgan
    G = dcgan.Generator(z_dim=4, c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    loss = ComposedLoss('cpu', main=BASELINE, addons=[div_kwargs()], G=G.train(), D=LinearD())
    assert loss.addons[0]._batch_dependent_generator()
    G.eval()
    assert not loss.addons[0]._batch_dependent_generator()


#----------------------------------------------------------------------------
# Options, composition, state

def test_options_defaults_and_composition():
    options = [opt for name in ('advlat-qua', 'advlat-div') for opt in registry.get_loss(name).options]
    defaults = {opt.key: opt.default for opt in options}
    assert defaults == dict(advlat_eps=0.03, advlat_steps=1, advlat_div_lambda=1.0, advlat_div_std=0.08,
                            advlat_div_eps=0.004, advlat_div_steps=3, advlat_div_dpair=False,
                            advlat_div_frac=0.5)
    args = dnnlib.EasyDict(loss_kwargs=dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0,
                                                       pl_weight=0, style_mixing_prob=0))
    registry.configure_loss('clr+advlat-qua', args, {'advlat_steps': 2}, given={'advlat_steps'})
    assert args.loss_kwargs.class_name == 'stylegan_plus.losses.compose.ComposedLoss'
    assert args.loss_kwargs.addons == [dict(class_name=QUA, advlat_eps=0.03, advlat_steps=2)]
    loss = dnnlib.util.construct_class_by_name(device='cpu', G=LinearG(), D=LinearD(), **args.loss_kwargs)
    assert isinstance(loss.addons[0], AdvLatQuaLoss) and loss.addons[0].advlat_steps == 2
    assert loss.main.clr_head is not None and list(loss.extra_modules()) == ['clr_head']
    alone = dnnlib.EasyDict(loss_kwargs=dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0))
    registry.configure_loss('advlat-div', alone, {})
    assert alone.loss_kwargs.main.class_name == 'training.loss.StyleGAN2Loss'
    assert alone.loss_kwargs.addons[0].class_name == DIV
    with pytest.raises(registry.LossSpecError, match='belongs to --loss=advlat-div'):
        registry.configure_loss('clr', dnnlib.EasyDict(loss_kwargs={}), {'advlat_div_dpair': True},
                                given={'advlat_div_dpair'})


@pytest.mark.parametrize('cfg,given,expected', [
    ('toy', {}, dict(advlat_eps=0.3, advlat_steps=5)),                         # the toy defaults (Q3's sweep)
    ('toy', {'advlat_eps': 0.05}, dict(advlat_eps=0.05, advlat_steps=5)),      # a given value wins
    ('toy', {'advlat_eps': 0.03, 'advlat_steps': 1}, dict(advlat_eps=0.03, advlat_steps=1)),  # even the image default
    ('cifar', {}, dict(advlat_eps=0.03, advlat_steps=1)),                      # image presets keep theirs
    ('dcgan', {'advlat_steps': 2}, dict(advlat_eps=0.03, advlat_steps=2)),
])
def test_qua_toy_defaults_unless_given(cfg, given, expected):
    args = dnnlib.EasyDict(loss_kwargs=dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0))
    registry.configure_loss('advlat-qua', args, dict(given), cfg=cfg, given=set(given))
    assert args.loss_kwargs.addons == [dict(class_name=QUA, **expected)]


def test_qua_toy_defaults_reach_train_options(tmp_path):
    """Through train.py's option resolution: what training_options.json would hold."""
    data = make_point_dataset(tmp_path / 'ring.npy')
    toy = resolve_options(option_values(data, 'toy', 32, None, loss='advlat-qua'))
    assert toy.loss_kwargs['addons'] == [dict(class_name=QUA, advlat_eps=0.3, advlat_steps=5)]
    values = option_values(data, 'toy', 32, None, loss='advlat-qua', advlat_steps=1)
    given = resolve_options(values, given={'advlat_steps'})
    assert given.loss_kwargs['addons'] == [dict(class_name=QUA, advlat_eps=0.3, advlat_steps=1)]


def test_bad_values_and_state():
    with pytest.raises(ValueError, match='advlat_eps must be >= 0'):
        AdvLatQuaLoss('cpu', G=LinearG(), D=LinearD(), advlat_eps=-1)
    with pytest.raises(ValueError, match='integer steps'):
        AdvLatDivLoss('cpu', G=LinearG(), D=LinearD(), advlat_div_steps=1.5)
    loss = composed(dict(class_name=QUA), div_kwargs())
    state = loss.state_dict()
    assert state == {'main': {'pl_mean': torch.zeros([])}, 'addons': [{}, {}]}
    loss.load_state_dict(state)

#----------------------------------------------------------------------------
# train.py runs on tiny data (a few iterations on CPU)

QUA_STATS = {'Loss/advlat/qua_logits_start'}
DIV_STATS = {'Loss/advlat/div_ratio', 'Loss/advlat/div_ms'}


@pytest.mark.slow
def test_train_dcgan_advlat_qua_and_div_snapshot_and_resume(tmp_path):
    data = tiny_image_folder(tmp_path / 'data')
    args = ['--cfg=dcgan', '--cbase=64', '--cmax=16', '--loss=advlat-qua+advlat-div', '--advlat-eps=0.05',
            '--advlat-div-dpair=1']
    run_dir = train_tiny(tmp_path / 'runs', data, *args)
    names, loss_kwargs, snapshot = run_outputs(run_dir)
    assert QUA_STATS | DIV_STATS | {'Loss/advlat/div_D_pair', 'Loss/G/loss', 'Loss/D/loss'} <= names
    assert loss_kwargs['main']['class_name'] == 'training.loss.StyleGAN2Loss'   # add-ons alone: baseline main
    assert loss_kwargs['addons'] == [
        dict(class_name=QUA, advlat_eps=0.05, advlat_steps=1),
        dict(class_name=DIV, advlat_div_lambda=1.0, advlat_div_std=0.08, advlat_div_eps=0.004, advlat_div_steps=3,
             advlat_div_dpair=True, advlat_div_frac=0.5)]
    assert set(snapshot) >= {'G', 'D', 'G_ema'} and 'clr_head' not in snapshot
    resumed = train_tiny(tmp_path / 'runs', data, *args, '--resume=latest', '--nimg=16')
    names, resumed_kwargs, _snapshot = run_outputs(resumed)
    assert QUA_STATS | DIV_STATS <= names and resumed_kwargs == loss_kwargs


@pytest.mark.slow
def test_train_stylegan2_advlat_div(tmp_path):
    run_dir = train_tiny(tmp_path / 'runs', tiny_image_folder(tmp_path / 'data'), '--cfg=stylegan2', '--cbase=256',
                         '--cmax=16', '--loss=advlat-div')
    names, loss_kwargs, snapshot = run_outputs(run_dir)
    assert DIV_STATS <= names and 'Loss/advlat/div_D_pair' not in names   # dpair off by default
    assert loss_kwargs['addons'][0]['advlat_div_dpair'] is False
    assert snapshot['G_ema'].z_dim == 512


@pytest.mark.slow
def test_train_help_lists_every_option_with_its_default():
    proc = subprocess.run([sys.executable, 'train.py', '--help'], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    help_text = ' '.join(proc.stdout.split())   # undo click's line wrapping
    for name in ('clr', 'advlat-qua', 'advlat-div'):
        for opt in registry.get_loss(name).options:
            assert opt.flag in help_text and f'[default: {opt.default}]' in help_text.split(opt.flag, 1)[1][:400], opt.flag
