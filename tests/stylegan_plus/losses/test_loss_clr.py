"""CLR-GAN (`--loss=clr`): the loss values and gradients on a hand-computed case, the latent head,
phases and style mixing on StyleGAN2/DCGAN/MLP nets, options and state.

Hand case (tests.stylegan_plus.sampling.test_latent_steps): G(z) = z W^T, D(x) = x v + b with features x, and a head
phi(x) = x H^T + h with fixed weights.
"""

import copy
import json
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

import dnnlib
import legacy
from stylegan_plus.losses import clr as clr_module
from stylegan_plus.losses import common
from stylegan_plus.losses import registry
from stylegan_plus.losses.clr import CLRLoss
from stylegan_plus.losses.phases import default_phases
from stylegan_plus.losses.stylegan2 import StyleGAN2Loss
from stylegan_plus.networks import dcgan, mlp
from tests.stylegan_plus.sampling.test_latent_steps import V, W, Z0, LinearD, LinearG, empty_c
from tests.test_legacy import REPO
from torch_utils import training_stats
from training import networks

H = [[0.5, 0.0, -1.0], [0.25, 1.0, 0.5]]    # head weight [z_dim 2, features 3]
HB = [0.125, -0.25]                         # head bias
REAL = torch.tensor([[0.5, -0.25, 1.0], [-1.0, 0.75, 0.25], [0.0, 0.5, -0.5], [1.0, 1.0, -0.75]])
LAMBDA_LATENT, LAMBDA_REC = 5.0, 0.5


def hand_loss(dist='mse', augment_pipe=None):
    G, D = LinearG(), LinearD()
    loss = CLRLoss('cpu', G=G, D=D, augment_pipe=augment_pipe, r1_gamma=0, pl_weight=0, style_mixing_prob=0,
                   clr_lambda_latent=LAMBDA_LATENT, clr_lambda_rec=LAMBDA_REC, clr_dist=dist)
    with torch.no_grad():
        loss.clr_head.weight.copy_(torch.tensor(H))
        loss.clr_head.bias.copy_(torch.tensor(HB))
    for module in (G, D, loss.clr_head):
        module.requires_grad_(False)  # as the loop leaves them outside their phases
    return loss


def run_phase(loss, phase, trained, real=REAL, z=Z0):
    """One round of `phase` with only `trained` requiring grad (as the loop does); returns the new stats."""
    collector = training_stats.Collector(regex='Loss/.*')
    collector.update()
    for module in trained:
        module.requires_grad_(True)
    loss.accumulate_gradients(phase, real, empty_c(len(real)), z, empty_c(len(z)), sync=True, gain=1)
    for module in trained:
        module.requires_grad_(False)
    collector.update()
    return {name: collector.mean(name) for name in collector.names() if collector.num(name) > 0}


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))

#----------------------------------------------------------------------------
# Hand-computed case

@pytest.mark.parametrize('dist', ['mse', 'l1'])
def test_D_step_latent_consistency_by_hand(dist):
    loss = hand_loss(dist)
    stats = run_phase(loss, 'Dmain', [loss.D, loss.clr_head])
    x_fake = Z0 @ torch.tensor(W).t()
    pred = x_fake @ torch.tensor(H).t() + torch.tensor(HB)
    err = pred - Z0
    n, k = Z0.shape
    if dist == 'mse':
        latent = err.square().mean()
        grad_H = LAMBDA_LATENT * 2 / (n * k) * err.t() @ x_fake
        grad_hb = LAMBDA_LATENT * 2 / (n * k) * err.sum(dim=0)
    else:
        latent = err.abs().sum(dim=1).mean()
        grad_H = LAMBDA_LATENT / n * err.sign().t() @ x_fake
        grad_hb = LAMBDA_LATENT / n * err.sign().sum(dim=0)
    assert stats['Loss/clr/latent'] == pytest.approx(latent.item(), rel=1e-5)
    assert stats['Loss/clr/latent_mse'] == pytest.approx(err.square().mean().item(), rel=1e-5)
    torch.testing.assert_close(loss.clr_head.weight.grad, grad_H)
    torch.testing.assert_close(loss.clr_head.bias.grad, grad_hb)
    # D's own weights get exactly the baseline gradient (its features do not depend on them here).
    l_fake, l_real = x_fake @ torch.tensor(V) + 0.25, REAL @ torch.tensor(V) + 0.25
    grad_v = (sigmoid(l_fake)[:, None] * x_fake).mean(0) - (sigmoid(-l_real)[:, None] * REAL).mean(0)
    torch.testing.assert_close(loss.D.weight.grad[0], grad_v)
    assert 'Loss/clr/rec' not in stats


@pytest.mark.parametrize('dist', ['mse', 'l1'])
def test_G_step_reconstruction_by_hand(dist):
    loss = hand_loss(dist)
    stats = run_phase(loss, 'Gboth', [loss.G])
    Wt = torch.tensor(W)
    latent = REAL @ torch.tensor(H).t() + torch.tensor(HB)   # phi(x_real) [4, 2]
    err = latent @ Wt.t() - REAL                               # G(phi(x)) - x [4, 3]
    n, m = REAL.shape
    if dist == 'mse':
        rec, grad_rec = err.square().mean(), 2 / (n * m) * err.t() @ latent
    else:
        rec, grad_rec = err.abs().sum(dim=1).mean(), 1 / n * err.sign().t() @ latent
    logits = Z0 @ Wt.t() @ torch.tensor(V) + 0.25
    grad_adv = -(sigmoid(-logits)[:, None, None] * torch.tensor(V)[None, :, None] * Z0[:, None, :]).mean(0)
    assert stats['Loss/clr/rec'] == pytest.approx(rec.item(), rel=1e-5)
    torch.testing.assert_close(loss.G.weight.grad, grad_adv + LAMBDA_REC * grad_rec)
    # phi comes from the frozen D and head: neither gets a gradient in the G step.
    assert loss.D.weight.grad is None and loss.clr_head.weight.grad is None
    assert 'Loss/clr/latent' not in stats


class Negate(torch.nn.Module):
    def forward(self, x):
        return -x


def test_reconstruction_target_is_the_unaugmented_real():
    """D sees the augmented real (here -x) for phi; the reconstruction is compared with x itself."""
    loss = hand_loss('mse', augment_pipe=Negate())
    stats = run_phase(loss, 'Gmain', [loss.G])
    latent = -REAL @ torch.tensor(H).t() + torch.tensor(HB)
    expected = (latent @ torch.tensor(W).t() - REAL).square().mean()
    assert stats['Loss/clr/rec'] == pytest.approx(expected.item(), rel=1e-5)


def test_zero_weights_give_the_baseline_gradients():
    loss = hand_loss()
    loss.clr_lambda_latent = loss.clr_lambda_rec = 0
    base = StyleGAN2Loss('cpu', G=LinearG().requires_grad_(False), D=LinearD().requires_grad_(False), r1_gamma=0,
                         pl_weight=0, style_mixing_prob=0)
    for phase, nets in [('Gboth', lambda l: [l.G]), ('Dmain', lambda l: [l.D])]:
        run_phase(loss, phase, nets(loss))
        run_phase(base, phase, nets(base))
        for mine, ref in zip(nets(loss), nets(base)):
            torch.testing.assert_close(mine.weight.grad, ref.weight.grad)


def test_distance_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown distance 'l2'"):
        common.sample_distance(Z0, Z0, 'l2')
    with pytest.raises(ValueError, match="clr_dist='cos'"):
        CLRLoss('cpu', G=LinearG(), D=LinearD(), pl_weight=0, style_mixing_prob=0, clr_dist='cos')

#----------------------------------------------------------------------------
# Networks: the head rule, phases, style mixing

def tiny_stylegan2(z_dim):
    torch.manual_seed(0)
    G = networks.Generator(z_dim=z_dim, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=16))
    D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                               epilogue_kwargs=dict(mbstd_group_size=2))
    return G, D


def stylegan2_loss(z_dim, **kwargs):
    G, D = tiny_stylegan2(z_dim)
    return CLRLoss('cpu', G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, r1_gamma=1, **kwargs)


def head_prediction(loss, img):
    """The head's prediction from the epilogue conv output of D on img, recomputed outside the plugin."""
    seen = []
    handle = loss.D.b4.fc.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    try:
        loss.D(img, empty_c(len(img)))
    finally:
        handle.remove()
    return loss.clr_head(seen[0])


def test_stylegan2_head_reads_the_epilogue_conv_output():
    loss = stylegan2_loss(z_dim=16, style_mixing_prob=0)   # z_dim = fc width (16 channels at 4x4)
    # A head for every width, on the fc's input: 16 channels x 4 x 4 (the fc output did not learn z, Q6).
    assert loss.clr_head.in_features == 16 * 4 * 4 and list(loss.extra_modules()) == ['clr_head']
    z, real = torch.randn([4, 16]), torch.rand([4, 3, 16, 16]) * 2 - 1
    torch.manual_seed(5)
    stats = run_phase(loss, 'Dmain', [loss.D, loss.clr_head], real=real, z=z)
    with torch.no_grad():
        torch.manual_seed(5)
        img, _ws = loss.run_G(z, empty_c(4), sync=False)
        predicted = head_prediction(loss, img)
        conv_out = loss.D.b4.conv(loss.D.b4.mbstd(_epilogue_input(loss.D, img)))
    torch.testing.assert_close(loss.clr_head(conv_out.flatten(1)), predicted)
    assert stats['Loss/clr/latent'] == pytest.approx((predicted - z).square().mean().item(), rel=1e-5)
    # The hook lives only for the call: D pickles and copies as before.
    assert not loss.D.b4.fc._forward_hooks
    pickle.dumps(loss.D)


def _epilogue_input(D, img):
    """The activations D's epilogue receives (the last block's output) for img."""
    h = None
    for res in D.block_resolutions:
        h, img = getattr(D, f'b{res}')(h, img)
    return h


def test_style_mixing_target_is_the_first_z():
    loss = stylegan2_loss(z_dim=16, style_mixing_prob=1)   # always mix
    z, real = torch.randn([4, 16]), torch.rand([4, 3, 16, 16]) * 2 - 1
    torch.manual_seed(7)
    stats = run_phase(loss, 'Dmain', [loss.D, loss.clr_head], real=real, z=z)
    with torch.no_grad():
        torch.manual_seed(7)  # replays the same cutoff and second z
        img, _ws = loss.run_G(z, empty_c(4), sync=False)
        unmixed, _ws = loss.run_G(z, empty_c(4), sync=False, mixing=False)
        predicted = head_prediction(loss, img)
    assert not torch.allclose(img, unmixed)  # mixing did happen
    assert stats['Loss/clr/latent'] == pytest.approx((predicted - z).square().mean().item(), rel=1e-5)


def test_stylegan2_head_learns_the_latent():
    """A few D steps on a tiny StyleGAN2 (G frozen, z_dim = fc width = 16) bring the latent MSE on
    fakes clearly below 1.0, what predicting 0 scores. The fc output used as the prediction (the
    authors' layout, this plugin before Q6's fix) stays at 0.98-1.0 here, as it did in Q6."""
    torch.manual_seed(0)
    G = networks.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=1,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=16))
    D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=1, channel_base=64, channel_max=16,
                               architecture='orig', epilogue_kwargs=dict(mbstd_group_size=4))
    loss = CLRLoss('cpu', G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, r1_gamma=0, pl_weight=0,
                   style_mixing_prob=0, clr_lambda_rec=0)
    trained = [loss.D, loss.clr_head]
    optimizer = torch.optim.Adam([p for m in trained for p in m.parameters()], lr=0.0025, betas=(0.0, 0.99))
    G.requires_grad_(False)
    generator = torch.Generator().manual_seed(1)
    real = torch.rand([32, 1, 16, 16], generator=generator) * 2 - 1
    mse = []
    for _ in range(60):
        optimizer.zero_grad(set_to_none=True)
        z = torch.randn([32, 16], generator=generator)
        mse.append(run_phase(loss, 'Dmain', trained, real=real, z=z)['Loss/clr/latent_mse'])
        optimizer.step()
    assert np.mean(mse[-10:]) < 0.92 and np.mean(mse[-10:]) < np.mean(mse[:10]), (mse[:10], mse[-10:])


def check_head_training(loss, real, z_dim):
    """The head trains with D (D phases, D's optimizer key) and only there."""
    head = loss.extra_modules()['clr_head']
    assert isinstance(head, torch.nn.Linear) and head.out_features == z_dim
    opt = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.01)
    phases = loss.phases(default_phases(opt, opt, None, 16), dnnlib.EasyDict(G=opt, D=opt))
    assert [(p.name, p.modules) for p in phases] == [('Gboth', ('G',)), ('Dmain', ('D', 'clr_head')),
                                                     ('Dreg', ('D', 'clr_head'))]
    z = torch.randn([4, z_dim])
    generator = [net for net in (loss.G, loss.G_mapping, loss.G_synthesis) if net is not None]
    for module in [*generator, loss.D, head]:
        module.requires_grad_(False)
    stats = run_phase(loss, 'Gboth', generator, real=real, z=z)
    assert head.weight.grad is None and all(p.grad is None for p in loss.D.parameters())
    assert 'Loss/clr/rec' in stats and all(p.grad is not None for net in generator for p in net.parameters())
    stats = run_phase(loss, 'Dmain', [loss.D, head], real=real, z=z)
    assert head.weight.grad.abs().sum() > 0 and 'Loss/clr/latent_mse' in stats
    restored = pickle.loads(pickle.dumps(copy.deepcopy(head).eval().requires_grad_(False)))
    torch.testing.assert_close(restored.weight, head.weight)


def test_stylegan2_other_width_gets_a_linear_head():
    loss = stylegan2_loss(z_dim=8, style_mixing_prob=0, pl_weight=0)
    assert loss.clr_head.in_features == 16 * 4 * 4
    check_head_training(loss, torch.rand([4, 3, 16, 16]) * 2 - 1, z_dim=8)


def test_dcgan_always_gets_a_linear_head():
    torch.manual_seed(0)
    D = dcgan.Discriminator(0, 16, 3, channel_base=32, channel_max=4)   # 4 channels at 4x4 -> 64 features
    G = dcgan.Generator(D.num_features, 0, 16, 3, channel_base=32, channel_max=4)
    loss = CLRLoss('cpu', G=G, D=D, r1_gamma=1, pl_weight=0, style_mixing_prob=0)
    assert loss.clr_head.in_features == 64   # widths equal, still a head (METHODS: DCGAN/MLP use one)
    check_head_training(loss, torch.rand([4, 3, 16, 16]) * 2 - 1, z_dim=64)


def test_mlp_gets_a_linear_head():
    torch.manual_seed(0)
    G, D = mlp.Generator(4, 0, hidden_features=(8,)), mlp.Discriminator(0, hidden_features=(8, 6))
    loss = CLRLoss('cpu', G=G, D=D, r1_gamma=1, pl_weight=0, style_mixing_prob=0)
    assert loss.clr_head.in_features == 6
    check_head_training(loss, torch.randn([4, 2]), z_dim=4)


def test_too_few_features_for_z_are_refused():
    """A linear head from F < z_dim features cannot predict z: refused, with the widths and the fix."""
    with pytest.raises(ValueError, match='covers at most 256 of the 512 latent directions'):
        stylegan2_loss(z_dim=512, style_mixing_prob=0, pl_weight=0)   # 16 channels x 4 x 4 = 256 features
    torch.manual_seed(0)
    D = dcgan.Discriminator(0, 16, 3, channel_base=32, channel_max=4)   # 64 features
    G = dcgan.Generator(100, 0, 16, 3, channel_base=32, channel_max=4)
    with pytest.raises(ValueError, match='from 64 features'):
        CLRLoss('cpu', G=G, D=D, r1_gamma=1, pl_weight=0, style_mixing_prob=0)
    # Before anything is built: the StyleGAN2 head width follows from the options (16 * min(cbase / 4, cmax)).
    D_kwargs = dict(class_name='training.networks.Discriminator', channel_base=1024, channel_max=64)
    assert clr_module.stylegan2_width_from_kwargs(D_kwargs) == 1024
    assert clr_module.stylegan2_channels_from_kwargs(D_kwargs) == 64
    assert clr_module.stylegan2_width_from_kwargs(dict(class_name='training.networks.Discriminator')) == 8192
    assert clr_module.stylegan2_width_from_kwargs(dict(class_name='stylegan_plus.networks.dcgan.Discriminator')) is None
    args = dnnlib.EasyDict(D_kwargs=dict(D_kwargs, channel_base=128, channel_max=16), G_kwargs=dict(z_dim=512))
    with pytest.raises(registry.LossSpecError, match=r'16 \* min\(cbase / 4, cmax\) >= 512'):
        CLRLoss.adjust_training_options(args, {}, cfg='cifar', given=frozenset())
    args.D_kwargs = D_kwargs    # 1024 features for z_dim 512: fine
    CLRLoss.adjust_training_options(args, {}, cfg='cifar', given=frozenset())


def test_linear_head_learns_the_latent():
    """The head trained with D's optimizer lowers the latent MSE below its start (MLP nets, G frozen)."""
    torch.manual_seed(0)
    G, D = mlp.Generator(4, 0, hidden_features=(16,)), mlp.Discriminator(0, hidden_features=(32, 16))
    loss = CLRLoss('cpu', G=G, D=D, r1_gamma=0, pl_weight=0, style_mixing_prob=0, clr_lambda_rec=0)
    trained = [loss.D, loss.clr_head]
    optimizer = torch.optim.Adam([p for m in trained for p in m.parameters()], lr=0.01, betas=(0.5, 0.99))
    G.requires_grad_(False)
    mse = []
    for _ in range(60):
        optimizer.zero_grad(set_to_none=True)
        mse.append(run_phase(loss, 'Dmain', trained, real=torch.randn([32, 2]), z=torch.randn([32, 4]))[
            'Loss/clr/latent_mse'])
        optimizer.step()
    assert np.mean(mse[-10:]) < 0.7 * np.mean(mse[:10]), (mse[:10], mse[-10:])


def test_feature_width_probe_restores_mode():
    D = LinearD()
    del D.num_features
    D.train()
    assert clr_module.feature_width(D) == 3 and D.training
    rng = torch.get_rng_state()
    clr_module.build_latent_head(D, 2)
    assert torch.equal(rng, torch.get_rng_state())  # building the head leaves the run's random stream alone

#----------------------------------------------------------------------------
# Options, composition, state

def test_options_defaults_and_configuration():
    defaults = {opt.key: opt.default for opt in registry.get_loss('clr').options}
    assert defaults == dict(clr_lambda_latent=5.0, clr_lambda_rec=0.5, clr_dist='mse')
    args = dnnlib.EasyDict(loss_kwargs=dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=2.0))
    registry.configure_loss('clr', args, {'clr_dist': 'l1'}, given={'clr_dist'})
    assert args.loss_kwargs == dict(class_name='stylegan_plus.losses.clr.CLRLoss', r1_gamma=2.0, clr_lambda_latent=5.0,
                                    clr_lambda_rec=0.5, clr_dist='l1')
    with pytest.raises(registry.LossSpecError, match="'clr' and 'stylegan2' are both main losses"):
        registry.configure_loss('clr+stylegan2', dnnlib.EasyDict(loss_kwargs={}), {})


def test_state_round_trip():
    loss = hand_loss()
    loss.pl_mean.fill_(1.5)
    other = hand_loss()
    other.load_state_dict(loss.state_dict())
    assert set(loss.state_dict()) == {'pl_mean'} and other.pl_mean.item() == 1.5

#----------------------------------------------------------------------------
# train.py runs on tiny data (a few iterations on CPU)

def tiny_image_folder(path, count=8):
    """`count` random 16x16 RGB PNGs in `path`; returns the path."""
    path.mkdir()
    rnd = np.random.RandomState(0)
    for idx in range(count):
        PIL.Image.fromarray(rnd.randint(0, 256, [16, 16, 3], dtype=np.uint8)).save(path / f'{idx}.png')
    return path


def train_tiny(outdir, data, *args):
    """Run train.py for 8 images (2 iterations of batch 4) on CPU; returns the new run directory."""
    before = set(outdir.iterdir()) if outdir.is_dir() else set()
    cmd = [sys.executable, 'train.py', f'--outdir={outdir}', f'--data={data}', '--device=cpu', '--metrics=none',
           '--nimg=8', '--batch=4', '--workers=1', '--aug=noaug', '--kimg-per-tick=0.004', '--snap=1', *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (run_dir,) = set(outdir.iterdir()) - before
    return run_dir


def run_outputs(run_dir):
    """(stat names with at least one value, loss_kwargs from training_options.json, the snapshot dict)."""
    names = set()
    with open(run_dir / 'stats.jsonl', encoding='utf-8') as f:
        for line in f:
            names.update(name for name, value in json.loads(line).items()
                         if isinstance(value, dict) and value['num'] > 0 and np.isfinite(value['mean']))
    with open(run_dir / 'training_options.json', encoding='utf-8') as f:
        loss_kwargs = json.load(f)['loss_kwargs']
    snapshot = sorted(run_dir.glob('network-snapshot-*.pkl'))[-1]     # the last one (names sort by progress)
    with open(snapshot, 'rb') as f:
        data = legacy.load_network_pkl(f)
    return names, loss_kwargs, data


CLR_STATS = {'Loss/clr/latent', 'Loss/clr/latent_mse', 'Loss/clr/rec'}


@pytest.mark.slow
def test_train_dcgan_clr_snapshot_and_resume(tmp_path):
    data = tiny_image_folder(tmp_path / 'data')
    args = ['--cfg=dcgan', '--cbase=64', '--cmax=16', '--loss=clr', '--clr-lambda-rec=0.25']
    run_dir = train_tiny(tmp_path / 'runs', data, *args)
    names, loss_kwargs, snapshot = run_outputs(run_dir)
    assert CLR_STATS <= names
    assert loss_kwargs == dict(class_name='stylegan_plus.losses.clr.CLRLoss', r1_gamma=loss_kwargs['r1_gamma'],
                               pl_weight=0, style_mixing_prob=0, clr_lambda_latent=5.0, clr_lambda_rec=0.25,
                               clr_dist='mse')
    head = snapshot['clr_head']
    assert isinstance(head, torch.nn.Linear) and head.in_features == snapshot['D'].num_features
    assert head.out_features == snapshot['G'].z_dim and not head.weight.requires_grad
    resumed = train_tiny(tmp_path / 'runs', data, *args, '--resume=latest', '--nimg=16')  # 2 more iterations
    names, resumed_kwargs, _snapshot = run_outputs(resumed)
    assert CLR_STATS <= names and resumed_kwargs == loss_kwargs
    assert 'full training state' in (resumed / 'log.txt').read_text(encoding='utf-8')


@pytest.mark.slow
def test_train_stylegan2_clr_with_advlat_qua(tmp_path):
    # z_dim = w_dim = 16 = the fc width (the authors' layout, set by the benchmark loss class); the head
    # reads the epilogue conv output, 16 channels x 4 x 4.
    run_dir = train_tiny(tmp_path / 'runs', tiny_image_folder(tmp_path / 'data'), '--cfg=stylegan2', '--cbase=256',
                         '--cmax=16', '--loss=benchmarks.common.matched_latent.CLR+advlat-qua')
    names, loss_kwargs, snapshot = run_outputs(run_dir)
    assert CLR_STATS | {'Loss/advlat/qua_logits_start'} <= names
    assert loss_kwargs['main']['clr_dist'] == 'mse' and loss_kwargs['addons'][0]['advlat_eps'] == 0.03
    assert snapshot['clr_head'].in_features == 256 and snapshot['G'].z_dim == snapshot['G'].w_dim == 16


@pytest.mark.slow
def test_train_refuses_a_D_too_narrow_for_z(tmp_path):
    data = tiny_image_folder(tmp_path / 'data')
    proc = subprocess.run([sys.executable, 'train.py', f'--outdir={tmp_path / "runs"}', f'--data={data}',
                           '--device=cpu', '--cfg=stylegan2', '--cbase=256', '--cmax=16', '--loss=clr'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    message = ' '.join(proc.stderr.split())     # undo click's line wrapping
    assert proc.returncode == 2 and "from D's 256 features" in message and 'Traceback' not in message
    assert not (tmp_path / 'runs').exists()


@pytest.mark.slow
def test_train_refuses_two_main_losses_before_building(tmp_path):
    data = tiny_image_folder(tmp_path / 'data')
    proc = subprocess.run([sys.executable, 'train.py', f'--outdir={tmp_path / "runs"}', f'--data={data}',
                           '--device=cpu', '--loss=clr+dist'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "'clr' and 'dist' are both main losses" in proc.stderr
    assert not (tmp_path / 'runs').exists()
