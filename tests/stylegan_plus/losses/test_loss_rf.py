"""RFGAN (`--loss=rf`): the denoising AE, the joint decision on a hand-computed case, the frozen encoder,
pre-training and reuse, options, and train.py runs.

Hand case: the nets of tests.stylegan_plus.losses.test_loss_dist (G(z) = (z + 1) [1, 2], D features h_D(x) = x1 + x2),
an autoencoder whose encoder features are h_E(x) = (x1 + x2) / 2 (code = h_E) and whose decoder
is G, and a joint head with weights 1: logit = h_D + h_E. Reals x = [[1, 1], [0, 1]] -> [3, 1.5];
fakes G(z) for z = [[0], [1]] = [[1, 2], [2, 4]] -> [4.5, 9]; AE(x) = [[2, 4], [1.5, 3]].
"""

import math
import pickle

import pytest
import torch

import dnnlib
from stylegan_plus.losses import rf as rf_module
from stylegan_plus.losses.phases import default_phases
from stylegan_plus.losses.registry import LossSpecError
from stylegan_plus.losses.rf import RFLoss
from stylegan_plus.networks import encoders, mlp
from tests.stylegan_plus.losses.test_loss_dist import (ADAM, SMALL_CONV, StatsRecorder, approx, assert_same_state, check_generate,
                                  check_resume_is_exact, check_snapshot, datasets, grads_of, options, set_params,
                                  snapshot, softplus, stat_names, step, tiny_nets, train_run)
from tests.stylegan_plus.networks.test_networks_dcgan import ALLOWED_IMPORTS, imported_modules
from training import networks

__all__ = ['datasets']  # the shared fixture, imported for pytest

AE = {'encoder.net.body.0.weight': [[0.5, 0.5]], 'encoder.net.body.0.bias': [0.0],
      'encoder.net.out.weight': [[1.0]], 'encoder.net.out.bias': [0.0],
      'decoder.0.body.0.weight': [[1.0]], 'decoder.0.body.0.bias': [1.0],
      'decoder.0.out.weight': [[1.0], [2.0]], 'decoder.0.out.bias': [0.0, 0.0]}
REAL_LOGITS, FAKE_LOGITS = [3.0, 1.5], [4.5, 9.0]


def hand_loss(head=(1.0, 1.0), **kwargs):
    G, D = tiny_nets()
    kwargs = dict(dict(r1_gamma=0, pl_weight=0, style_mixing_prob=0, rf_ae_kimg=0, rf_ae_noise=0), **kwargs)
    loss = RFLoss('cpu', G=G, D=D, augment_pipe=None, **kwargs)
    set_params(loss.rf_ae, AE)
    set_params(loss.rf_head, {'out.weight': [list(head)], 'out.bias': [0.0]})
    loss.rf_ae.requires_grad_(False)
    loss.rf_head.requires_grad_(False)
    return loss, G, D


def test_denoising_pretraining_by_hand(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss(rf_ae_kimg=0.004)
    assert not loss.pretraining_done()
    step(loss, 'RFae', [loss.rf_ae])
    # AE(x) = [[2, 4], [1.5, 3]]: mean squared error per sample.
    assert stats['Loss/rf/ae'] == approx([(1 + 9) / 2, (2.25 + 4) / 2])
    assert set(grads_of(loss.rf_ae)) == set(AE) and int(loss.rf_ae_nimg) == 2
    step(loss, 'Gboth', [G])
    step(loss, 'Dboth', [D, loss.rf_head])
    assert not grads_of(G) and not grads_of(D) and 'Loss/G/loss' not in stats.values   # G, D wait
    step(loss, 'RFae', [loss.rf_ae])
    assert loss.pretraining_done() and int(loss.rf_ae_nimg) == 4
    step(loss, 'RFae', [loss.rf_ae])
    assert not grads_of(loss.rf_ae) and len(stats['Loss/rf/ae']) == 4     # done: the phase does nothing
    step(loss, 'Gboth', [G])
    assert grads_of(G) and not loss.rf_ae.training     # frozen in eval mode once G trains
    assert loss.state_dict()['rf_ae_nimg'] == 4


def test_noise_is_added():
    loss, _G, _D = hand_loss(rf_ae_noise=0.5)
    torch.manual_seed(1)
    noise = torch.randn(2, 2) * 0.5
    torch.manual_seed(1)
    value = rf_module.denoising_loss(loss.rf_ae, torch.tensor([[1.0, 1.0], [0.0, 1.0]]), 0.5)
    # code = (x1 + x2 + n1 + n2) / 2, AE = (code + 1) [1, 2]
    code = (torch.tensor([2.0, 1.0]) + noise.sum(dim=1)) / 2
    rec = (code + 1)[:, None] * torch.tensor([1.0, 2.0])
    assert value.tolist() == approx(((rec - torch.tensor([[1.0, 1.0], [0.0, 1.0]])) ** 2).mean(dim=1).tolist())


def test_joint_decision_by_hand_and_frozen_encoder(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss(r1_gamma=2.0)
    step(loss, 'Gboth', [G])
    assert stats['Loss/G/loss'] == approx(softplus([-v for v in FAKE_LOGITS]))
    step(loss, 'Dboth', [D, loss.rf_head])
    expected = [a + b for a, b in zip(softplus(FAKE_LOGITS), softplus([-v for v in REAL_LOGITS]))]
    assert stats['Loss/D/loss'] == approx(expected)
    # R1 through D and the frozen encoder: grad_x (h_D + h_E) = [1.5, 1.5].
    assert stats['Loss/r1_penalty'] == approx([4.5, 4.5]) and stats['Loss/D/reg'] == approx([4.5, 4.5])
    assert grads_of(loss.rf_head) and grads_of(D)
    assert not grads_of(loss.rf_ae)     # the encoder's weights never get a gradient
    assert all(not p.requires_grad for p in loss.rf_ae.parameters())


def test_gradient_reaches_g_through_the_encoder():
    loss, G, _D = hand_loss(head=(0.0, 1.0))    # the decision uses h_E only
    step(loss, 'Gboth', [G])
    # logit = (G1 + G2) / 2 = [1.5, 3]; d softplus(-logit) / d(G's output bias) = -sigmoid(-logit) / 2.
    expected = -(1 / (1 + math.exp(1.5)) + 1 / (1 + math.exp(3.0))) / 2 * 0.5
    assert G.out.bias.grad.tolist() == approx([expected, expected])
    assert not grads_of(loss.rf_ae)


def test_each_phase_runs_the_encoder_once_per_image_batch():
    """P2 cost (docs/benchmarks.md): one E and one D pass per decision, a graph through E only where a gradient needs it.

    Per G step: E on the fakes, with a graph (G's gradient flows through E). Per D step: E on the
    fakes and on the reals, with no graph (E is frozen, the images need no gradient); with R1 the
    real pass keeps the graph (R1 is taken through E). The decoder never runs after pre-training.
    """
    loss, G, D = hand_loss(r1_gamma=2.0)
    calls = []
    hooks = [module.register_forward_hook(lambda module, args, out, name=name: calls.append(
        (name, (out[0] if isinstance(out, tuple) else out).requires_grad)))
        for name, module in [('E', loss.rf_ae.encoder), ('D', D), ('decoder', loss.rf_ae.decoder)]]
    try:
        expected = {'Gboth': [('D', True), ('E', True)],
                    'Dmain': [('D', True), ('E', False)] * 2,
                    'Dreg': [('D', True), ('E', True)],
                    'Dboth': [('D', True), ('E', False), ('D', True), ('E', True)]}
        for phase, trained in [('Gboth', [G]), ('Dmain', [D, loss.rf_head]), ('Dreg', [D, loss.rf_head]),
                               ('Dboth', [D, loss.rf_head])]:
            calls.clear()
            step(loss, phase, trained)
            assert calls == expected[phase], phase
    finally:
        for hook in hooks:
            hook.remove()


def test_pretrained_file_phases_and_state(tmp_path):
    loss, _G, _D = hand_loss(rf_ae_kimg=1)
    names = [s.name for s in loss.phases(default_phases(ADAM, ADAM, 4, 16), dnnlib.EasyDict(G=ADAM, D=ADAM))]
    assert names == ['RFae', 'Gmain', 'Greg', 'Dmain', 'Dreg']
    phases = loss.phases(default_phases(ADAM, ADAM, None, None), dnnlib.EasyDict(G=ADAM, D=ADAM))
    assert [s.modules for s in phases] == [('rf_ae',), ('G',), ('D', 'rf_head')]
    path = tmp_path / 'rf-ae.pkl'
    with open(path, 'wb') as f:
        pickle.dump(dict(rf_ae=loss.rf_ae), f)
    G, D = tiny_nets()
    reused = RFLoss('cpu', G=G, D=D, rf_ae=str(path), r1_gamma=0, pl_weight=0, style_mixing_prob=0)
    assert reused.pretraining_done() and not reused.rf_ae.training
    assert all(torch.equal(a, b) for a, b in zip(reused.rf_ae.parameters(), loss.rf_ae.parameters()))
    assert 'RFae' not in [s.name for s in reused.phases(default_phases(ADAM, ADAM, None, None),
                                                        dnnlib.EasyDict(G=ADAM, D=ADAM))]
    with open(tmp_path / 'bad.pkl', 'wb') as f:
        pickle.dump(dict(G=G), f)
    with pytest.raises(ValueError, match='no "rf_ae" network'):
        RFLoss('cpu', G=G, D=D, rf_ae=str(tmp_path / 'bad.pkl'))
    wide_G, wide_D = mlp.Generator(z_dim=1, c_dim=0, hidden_features=[2]), mlp.Discriminator(c_dim=0)
    with pytest.raises(ValueError, match='does not fit'):
        RFLoss('cpu', G=wide_G, D=wide_D, rf_ae=str(path))
    loss.load_state_dict(dict(pl_mean=torch.zeros([]), rf_ae_nimg=torch.tensor(1000)))
    assert loss.pretraining_done() and not loss.rf_ae.training


def test_training_options():
    args, kwargs = dnnlib.EasyDict(), dict(rf_ae=None)
    RFLoss.adjust_training_options(args, kwargs, cfg='dcgan', given=frozenset())
    assert args.g_steps == 2
    args = dnnlib.EasyDict()
    RFLoss.adjust_training_options(args, kwargs, cfg='dcgan', given=frozenset({'g_steps'}))
    RFLoss.adjust_training_options(args, kwargs, cfg='toy', given=frozenset())
    assert 'g_steps' not in args
    with pytest.raises(LossSpecError, match='no such file'):
        RFLoss.adjust_training_options(args, dict(rf_ae='/nonexistent/rf-ae.pkl'), cfg='toy', given=frozenset())


def test_encoders_module_imports_only_what_official_checkouts_have():
    assert imported_modules(encoders) <= ALLOWED_IMPORTS


def test_encoder_mirrors_d_without_labels_mbstd_or_frozen_layers():
    torch.manual_seed(0)
    D = networks.Discriminator(c_dim=2, img_resolution=8, img_channels=3, channel_base=64, channel_max=8,
                               block_kwargs=dict(freeze_layers=2), epilogue_kwargs=dict(mbstd_group_size=2))
    kwargs = encoders.encoder_backbone_kwargs(D)
    assert (kwargs['c_dim'], kwargs['block_kwargs']) == (0, {})
    assert kwargs['epilogue_kwargs'] == dict(mbstd_group_size=2, mbstd_num_channels=0)
    E = encoders.build_encoder(D, 5)
    x = torch.randn(3, 3, 8, 8)
    assert E(x).shape == (3, 5) and torch.allclose(E(x[:1]), E(x)[:1], atol=1e-6)    # per image
    assert 'net.b8.fromrgb.weight' in dict(E.named_parameters())
    assert isinstance(E.net.b4.out, networks.FullyConnectedLayer) and encoders.uses_equalized_lr(D)

#----------------------------------------------------------------------------
# train.py runs.

@pytest.mark.slow
def test_train_stylegan2_snapshot_and_generate(datasets, tmp_path):
    run = train_run(tmp_path / 'runs', f'--data={datasets["images"]}', '--loss=rf', '--rf-ae-kimg=0', *SMALL_CONV,
                    '--batch=4', '--nimg=4', '--aug=ada', '--augpipe=color', '--kimg-per-tick=100')
    assert options(run)['loss_kwargs']['rf_ae_noise'] == 0.1 and 'g_steps' not in options(run)
    assert {'Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty'} <= stat_names(run)
    data = check_snapshot(snapshot(run), ['rf_ae', 'rf_head'])
    assert isinstance(data['rf_ae'], encoders.RFAutoencoder) and data['rf_ae'](torch.zeros(2, 3, 16, 16)).shape == \
        (2, 3, 16, 16)
    check_generate(snapshot(run), tmp_path / 'images')


@pytest.mark.slow
def test_train_dcgan_pretraining_and_resume_is_exact(datasets, tmp_path):
    args = [f'--data={datasets["images"]}', '--cfg=dcgan', '--loss=rf', '--rf-ae-kimg=0.004', *SMALL_CONV,
            '--batch=4', '--aug=ada', '--augpipe=color', '--kimg-per-tick=0.008']
    full, half, resumed = check_resume_is_exact(tmp_path, args, ['G', 'D', 'G_ema', 'rf_ae', 'rf_head',
                                                                 'augment_pipe'])
    assert options(full)['g_steps'] == 2
    assert (full / 'rf-ae.pkl').is_file() and (half / 'rf-ae.pkl').is_file()
    # The resumed run starts after pre-training: it neither trains nor saves the AE again.
    assert not (resumed / 'rf-ae.pkl').exists() and 'Loss/rf/ae' not in stat_names(resumed)
    assert 'Loss/rf/ae' in stat_names(half)
    check_snapshot(snapshot(full), ['rf_ae', 'rf_head'])


@pytest.mark.slow
def test_train_toy_and_reuse_the_autoencoder(datasets, tmp_path):
    args = [f'--data={datasets["points"]}', '--cfg=toy', '--loss=rf', '--batch=8', '--nimg=16']
    first = train_run(tmp_path / 'runs', *args, '--rf-ae-kimg=0.008')
    ae_file = first / 'rf-ae.pkl'
    check_snapshot(snapshot(first), ['rf_ae', 'rf_head'])
    second = train_run(tmp_path / 'runs', *args, f'--rf-ae={ae_file}')
    assert options(second)['loss_kwargs']['rf_ae'] == str(ae_file)
    assert 'Timing/RFae' not in stat_names(second) and 'Timing/RFae' in stat_names(first)
    assert_same_state(ae_file, snapshot(second), ['rf_ae'])
