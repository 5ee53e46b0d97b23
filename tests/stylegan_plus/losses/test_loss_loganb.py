"""LOGAN-B (`--loss=logan-b`): every term on a hand-computed case, the joint D, phases, prior, options,
and train.py runs.

Hand case: the nets of tests.stylegan_plus.losses.test_loss_dist (G(z) = (z + 1) [1, 2], D features h(x) = x1 + x2,
E(x) = (x1 + x2) / 2) and a joint head with weights 1, no biases and no hidden layer (`loganb_joint_layers=0`):
D(x, z) = h(x) + lrelu(z).
Reals x = [[1, 1], [0, 1]] (E(x) = [1, 0.5]), z = [[0], [1]] (G(z) = [[1, 2], [2, 4]]):
D(x, E(x)) = [3, 1.5], D(G(z), z) = [3, 7], G(E(x)) = [[2, 4], [1.5, 3]].
"""

import math

import pytest
import torch

import dnnlib
from stylegan_plus.losses import common
from stylegan_plus.losses import logan_b as loganb_module
from stylegan_plus.losses.logan_b import LOGANBLoss
from stylegan_plus.losses.compose import ComposedLoss
from stylegan_plus.losses.phases import build_optimizers, check_phases, default_phases, run_phase
from stylegan_plus.networks import dcgan, encoders
from tests.stylegan_plus.losses.test_loss_dist import (ADAM, ENCODER, SMALL_CONV, StatsRecorder, approx, check_generate,
                                  check_resume_is_exact, check_snapshot, datasets, grads_of, options, set_params,
                                  snapshot, softplus, stat_names, step, tiny_nets, train_run, REAL, Z)

__all__ = ['datasets']  # the shared fixture, imported for pytest

HEAD = {'embed.weight': [[1.0]], 'embed.bias': [0.0], 'out.weight': [[1.0, 1.0]], 'out.bias': [0.0]}
REAL_JOINT, FAKE_JOINT = [3.0, 1.5], [3.0, 7.0]


def hand_loss(**kwargs):
    G, D = tiny_nets()
    kwargs = dict(dict(r1_gamma=0, pl_weight=0, style_mixing_prob=0, loganb_fuse='concat', loganb_joint_layers=0),
                  **kwargs)
    loss = LOGANBLoss('cpu', G=G, D=D, augment_pipe=None, **kwargs)
    set_params(loss.E, ENCODER)
    set_params(loss.Dz, HEAD)
    loss.E.requires_grad_(False)
    loss.Dz.requires_grad_(False)
    return loss, G, D


def test_loss_functions():
    real = torch.tensor([[0.0], [2.0]])
    assert loganb_module.e_loss(real, 'bigan').flatten().tolist() == approx(softplus([0.0, 2.0]))
    assert loganb_module.e_loss(real, 'cooperative').flatten().tolist() == approx(softplus([0.0, -2.0]))
    # Saturating (Eq. 6): E minimises log D = log sigmoid(l) = -softplus(-l); cooperative keeps -log D.
    assert loganb_module.e_loss(real, 'bigan', saturating=True).flatten().tolist() == approx(
        [math.log(0.5), math.log(1 / (1 + math.exp(-2.0)))])
    assert loganb_module.e_loss(real, 'cooperative', saturating=True).flatten().tolist() == approx(softplus([0.0, -2.0]))
    # G: log(1 - D) = -softplus(l) (Eq. 5) or the non-saturating -log D = softplus(-l).
    assert loganb_module.g_loss(real, saturating=True).flatten().tolist() == approx(
        [math.log(0.5), math.log(1 - 1 / (1 + math.exp(-2.0)))])
    assert loganb_module.g_loss(real, saturating=False).flatten().tolist() == approx(softplus([0.0, -2.0]))
    with pytest.raises(ValueError, match='wgan'):
        loganb_module.e_loss(real, 'wgan')
    x = torch.tensor([[[[1.0, -1.0]]], [[[0.0, 0.5]]]])
    assert common.sample_distance(x, torch.zeros_like(x), 'l1').tolist() == [2.0, 0.5]   # the surrogate's L1
    # The 2-D notebook's schedule: batches 0, 5, 10, ... have no surrogate step.
    assert [loganb_module.surrogate_due(i, 5) for i in range(11)] == [False, True, True, True, True, False,
                                                                      True, True, True, True, False]
    assert all(loganb_module.surrogate_due(i, 0) for i in range(6))


def test_d_step_by_hand(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss(r1_gamma=4.0)
    step(loss, 'Dboth', [D, loss.Dz])
    assert stats['Loss/scores/real'] == approx(REAL_JOINT) and stats['Loss/scores/fake'] == approx(FAKE_JOINT)
    expected = [a + b for a, b in zip(softplus([-v for v in REAL_JOINT]), softplus(FAKE_JOINT))]
    assert stats['Loss/D/loss'] == approx(expected)
    # R1 on D(x, E(x)) w.r.t. x with E(x) fixed: gradient [1, 1].
    assert stats['Loss/r1_penalty'] == approx([2.0, 2.0]) and stats['Loss/D/reg'] == approx([4.0, 4.0])
    # d/d(head's output bias) = mean(sigmoid(fake) - sigmoid(-real)); D's own output layer gets exactly 0.
    bias_grad = sum(1 / (1 + math.exp(-f)) - 1 / (1 + math.exp(r)) for f, r in zip(FAKE_JOINT, REAL_JOINT)) / 2
    assert float(loss.Dz.out.bias.grad) == approx(bias_grad)
    assert float(D.out.bias.grad) == 0 and D.body[0].weight.grad.abs().sum() > 0
    assert not grads_of(G) and not grads_of(loss.E)


def test_g_e_and_surrogate_steps_by_hand(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss()
    step(loss, 'Gboth', [G])
    assert stats['Loss/G/loss'] == approx(softplus([-v for v in FAKE_JOINT]))
    assert not grads_of(D) and not grads_of(loss.Dz) and not grads_of(loss.E)
    step(loss, 'Emain', [loss.E])
    assert stats['Loss/logan-b/E'] == approx(softplus(REAL_JOINT))        # bigan: E pushes D(x, E(x)) toward fake
    assert set(grads_of(loss.E)) == {name for name, _ in loss.E.named_parameters()}
    step(loss, 'Smain', [G, loss.E])
    assert stats['Loss/logan-b/rec'] == approx([1 + 3, 1.5 + 2])
    # Default reduce=sum (the notebooks): d/d(G's output bias) of sum_n |x - G(E(x))|_1 = sum sign(rec - x) = [2, 2].
    assert G.out.bias.grad.tolist() == approx([2.0, 2.0])
    assert not grads_of(D) and not grads_of(loss.Dz)
    loss.loganb_surrogate_reduce = 'mean'
    step(loss, 'Smain', [G, loss.E])
    assert G.out.bias.grad.tolist() == approx([1.0, 1.0])     # per-sample sum, batch mean


def test_saturating_g_and_e_losses_by_hand(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, _D = hand_loss(loganb_saturating=True)
    step(loss, 'Gboth', [G])
    # Eq. 5: G minimises log(1 - D(G(z), z)) = -softplus(logit).
    assert stats['Loss/G/loss'] == approx([-v for v in softplus(FAKE_JOINT)])
    # d/d(G's output bias) = mean over n of -sigmoid(l_n) * dl/dG(z) (= [1, 1] for h(x) = x1 + x2).
    expected = -sum(1 / (1 + math.exp(-v)) for v in FAKE_JOINT) / 2
    assert G.out.bias.grad.tolist() == approx([expected, expected])
    step(loss, 'Emain', [loss.E])
    # Eq. 6 with the BiGAN sign: E minimises log D(x, E(x)) = -softplus(-logit).
    assert stats['Loss/logan-b/E'] == approx([-v for v in softplus([-r for r in REAL_JOINT])])


def test_surrogate_skip_counts_iterations_and_resumes(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, _D = hand_loss(loganb_surrogate_skip=2)
    ran = []
    for _ in range(4):
        step(loss, 'Smain', [G, loss.E])
        ran.append(bool(grads_of(G)))
    assert ran == [False, True, False, True] and len(stats['Loss/logan-b/rec']) == 4   # 2 iterations x 2 samples
    # A round that is not the last of its execution (sync=False) does not advance the counter.
    c = torch.zeros([2, 0])
    loss.accumulate_gradients('Smain', REAL, c, Z, c, sync=False, gain=1)
    assert int(loss.loganb_surrogate_iters) == 4
    state = loss.state_dict()
    assert int(state['loganb_surrogate_iters']) == 4 and set(state) == {'pl_mean', 'loganb_surrogate_iters'}
    other = hand_loss(loganb_surrogate_skip=2)[0]
    other.load_state_dict(state)
    assert int(other.loganb_surrogate_iters) == 4
    other.load_state_dict({'pl_mean': torch.zeros([])})    # a state saved before the counter existed
    assert int(other.loganb_surrogate_iters) == 0


def test_cooperative_encoder_and_uniform_prior(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, _G, _D = hand_loss(loganb_e_loss='cooperative')
    loss.z_dist = 'uniform'     # the loop gives the run's --z-dist to the loss
    step(loss, 'Emain', [loss.E])
    # Uniform prior: E(x) = tanh([1, 0.5]); cooperative: -log D(x, E(x)).
    assert stats['Loss/logan-b/E'] == approx(softplus([-(2 + math.tanh(1)), -(1 + math.tanh(0.5))]))
    z = loss.sample_z(1000, 'cpu')
    assert z.shape == (1000, 1) and float(z.min()) >= -1 and float(z.max()) <= 1 and float(z.std()) > 0.5


def test_fuse_modes_and_head():
    head = encoders.FusionHead(2, 1, c_dim=0, fuse='add', embed_side=True)
    set_params(head, {'embed.weight': [[1.0], [-2.0]], 'embed.bias': [0.0, 0.0], 'out.weight': [[1.0, 0.5]],
                      'out.bias': [0.25]})
    # h + lrelu(embed(z)) = [1 + 1, 2 + lrelu(-2)] = [2, 1.6] -> 2 + 0.8 + 0.25.
    assert head(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0]])).item() == approx(3.05)
    head = encoders.FusionHead(1, 1, c_dim=2, fuse='concat')
    set_params(head, {'out.weight': [[1.0, 1.0]], 'out.bias': [0.0], 'cmap.weight': [[1.0, 0.0], [0.0, 2.0]]})
    # fused [2, 3]; label [1, 1] -> embedding [1, 2]; projection (2 + 6) / sqrt(2).
    logit = head(torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([[1.0, 1.0]])).item()
    assert logit == approx(5 + 8 / math.sqrt(2))
    torch.manual_seed(0)
    conv_D = dcgan.Discriminator(c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    G = dcgan.Generator(z_dim=3, c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    assert LOGANBLoss('cpu', G=G, D=conv_D).loganb_fuse == 'add'
    G, D = tiny_nets()
    assert LOGANBLoss('cpu', G=G, D=D).loganb_fuse == 'input'    # auto on an MLP D
    with pytest.raises(ValueError, match='loganb_fuse'):
        hand_loss(loganb_fuse='sum')


def test_joint_layer_lets_d_judge_pairs():
    # Without a hidden layer D(x, z) = f(x) + g(z): swapping the latents of two pairs leaves the
    # sum of the two logits unchanged, so D cannot prefer matched pairs. One hidden layer breaks that.
    torch.manual_seed(0)
    h, z = torch.randn([2, 10]), torch.randn([2, 5])
    swapped = z.flip(0)
    for layers, separable in [(0, True), (1, False)]:
        head = encoders.FusionHead(10, 5, fuse='concat', embed_side=True, joint_layers=layers)
        gap = float((head(h, z).sum() - head(h, swapped).sum()).detach())
        assert (abs(gap) < 1e-5) == separable, (layers, gap)
    head = encoders.FusionHead(10, 5, fuse='add', embed_side=True, joint_layers=2)
    assert [tuple(layer.weight.shape) for layer in head.joint] == [(10, 10), (10, 10)]
    assert head(h, z).shape == (2, 1)
    wide = encoders.FusionHead(8192, 5, fuse='add', embed_side=True, joint_layers=1)   # DCGAN's feature width
    assert tuple(wide.joint[0].weight.shape) == (encoders.JOINT_WIDTH_MAX, 8192)
    with pytest.raises(ValueError, match='joint_layers=-1'):
        encoders.FusionHead(10, 5, joint_layers=-1)
    G, D = tiny_nets()
    loss = LOGANBLoss('cpu', G=G, D=D, loganb_fuse='concat')       # the default: one hidden layer
    assert len(loss.Dz.joint) == 1 and loss.Dz.joint[0].weight.shape == (1, 2)
    with pytest.raises(ValueError, match='loganb_joint_layers'):
        LOGANBLoss('cpu', G=G, D=D, loganb_fuse='concat', loganb_joint_layers=-1)


def test_input_fuse_is_one_mlp_on_x_and_z_by_hand(monkeypatch):
    # --loganb-fuse=input: Dz = D's MLP on [x, z] (here 3 -> 1 -> 1); weights 1, no biases give
    # D(x, z) = lrelu(x1 + x2 + z), which on the hand case equals the concat head's numbers.
    stats = StatsRecorder(monkeypatch)
    G, D = tiny_nets()
    loss = LOGANBLoss('cpu', G=G, D=D, augment_pipe=None, r1_gamma=0, pl_weight=0, style_mixing_prob=0,
                      loganb_fuse='input')
    assert loss.Dz.in_features == 3 and list(loss.Dz.body.parameters())[0].shape == (1, 3)
    set_params(loss.E, ENCODER)
    set_params(loss.Dz, {'body.0.weight': [[1.0, 1.0, 1.0]], 'body.0.bias': [0.0], 'out.weight': [[1.0]],
                         'out.bias': [0.0]})
    loss.E.requires_grad_(False)
    step(loss, 'Dmain', [D, loss.Dz])
    assert stats['Loss/scores/real'] == approx(REAL_JOINT) and stats['Loss/scores/fake'] == approx(FAKE_JOINT)
    assert float(D.body[0].weight.grad.abs().sum()) == 0      # D itself is only in the graph at weight 0
    assert float(loss.Dz.body[0].weight.grad.abs().sum()) > 0
    conv_G = dcgan.Generator(z_dim=3, c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    conv_D = dcgan.Discriminator(c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    with pytest.raises(ValueError, match='needs an MLP D'):
        LOGANBLoss('cpu', G=conv_G, D=conv_D, loganb_fuse='input')


def test_phases_and_toy_defaults():
    own = hand_loss(loganb_surrogate_opt='own')[0]
    phases = own.phases(default_phases(ADAM, ADAM, 4, 16), dnnlib.EasyDict(G=ADAM, D=ADAM))
    assert [(s.name, s.modules, s.opt) for s in phases] == [
        ('Dmain', ('D', 'Dz'), 'D'), ('Dreg', ('D', 'Dz'), 'D'), ('Gmain', ('G',), 'G'), ('Greg', ('G',), 'G'),
        ('Emain', ('E',), 'E'), ('Smain', ('G', 'E'), 'S')]
    shared = hand_loss()[0]     # the default: the notebooks' G and E optimizers also step the surrogate
    phases = shared.phases(default_phases(ADAM, ADAM, 4, 16), dnnlib.EasyDict(G=ADAM, D=ADAM))
    assert [(s.name, s.modules, s.opt) for s in phases] == [
        ('Dmain', ('D', 'Dz'), 'D'), ('Dreg', ('D', 'Dz'), 'D'), ('Gmain', ('G', 'E'), 'G'), ('Greg', ('G', 'E'), 'G'),
        ('Emain', ('G', 'E'), 'G'), ('Smain', ('G', 'E'), 'G')]
    check_phases(phases, {'G', 'D', 'E', 'Dz'})
    toy, toy_args = dict(loganb_saturating=False, loganb_surrogate_skip=0), dnnlib.EasyDict()
    LOGANBLoss.adjust_training_options(toy_args, toy, cfg='toy', given=frozenset())
    assert toy == dict(loganb_saturating=True, loganb_surrogate_skip=5) and toy_args == dict(z_dist='uniform')
    kept, kept_args = dict(loganb_saturating=False, loganb_surrogate_skip=0), dnnlib.EasyDict()
    LOGANBLoss.adjust_training_options(kept_args, kept, cfg='toy',
                                       given=frozenset({'z_dist', 'loganb_saturating', 'loganb_surrogate_skip'}))
    assert kept == dict(loganb_saturating=False, loganb_surrogate_skip=0) and kept_args == {}
    images, image_args = {}, dnnlib.EasyDict()
    LOGANBLoss.adjust_training_options(image_args, images, cfg='dcgan', given=frozenset())
    assert images == {} and image_args == {}
    for bad in (dict(loganb_surrogate_opt='sgd'), dict(loganb_surrogate_reduce='max'), dict(loganb_surrogate_skip=-1)):
        with pytest.raises(ValueError, match=list(bad)[0]):
            hand_loss(**bad)


ADAM_FLOAT = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.01, betas=[0.9, 0.999])


def test_shared_optimizer_equals_the_notebooks_two_adams():
    """One Adam over G and E, stepped by Gboth, Emain and Smain, moves G and E exactly as the notebooks'
    separate G and E optimizers do (G: adversarial step, then surrogate; E: adversarial, then surrogate)."""
    loss, G, D = hand_loss(loganb_e_loss='cooperative')
    phases = loss.phases(default_phases(ADAM_FLOAT, ADAM_FLOAT, None, None), dnnlib.EasyDict(G=ADAM_FLOAT,
                                                                                            D=ADAM_FLOAT))
    modules = {'G': G, 'D': D, 'E': loss.E, 'Dz': loss.Dz}
    optimizers = build_optimizers(phases, modules)
    assert sorted(optimizers) == ['D', 'G']
    reference, G_ref, _D = hand_loss(loganb_e_loss='cooperative')
    opt_G = torch.optim.Adam(G_ref.parameters(), lr=0.01, betas=(0.9, 0.999))
    opt_E = torch.optim.Adam(reference.E.parameters(), lr=0.01, betas=(0.9, 0.999))
    rounds = [(REAL, torch.zeros([2, 0]), Z, torch.zeros([2, 0]))]
    by_name = {spec.name: spec for spec in phases}
    for _iteration in range(3):
        for name, ref_modules, ref_opts in [('Gboth', [G_ref], [opt_G]), ('Emain', [reference.E], [opt_E]),
                                            ('Smain', [G_ref, reference.E], [opt_G, opt_E])]:
            run_phase(loss, by_name[name], modules, optimizers['G'], rounds)
            for opt in ref_opts:
                opt.zero_grad(set_to_none=True)
            step(reference, name, ref_modules)
            for opt in ref_opts:
                opt.step()
    for mine, ref in [(G, G_ref), (loss.E, reference.E)]:
        for (name, p_mine), p_ref in zip(mine.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p_mine, p_ref, msg=name)
    assert not torch.equal(G.out.bias, torch.zeros(2))    # not vacuous: the steps moved G


def test_qua_on_loganb_mines_against_the_joint_head():
    """`logan-b+advlat-qua` raises D(G(z), z), the joint head's score: the step follows Dz's weights only."""
    def mined(embed_weight, d_out_weight):
        G, D = tiny_nets()
        loss = ComposedLoss('cpu', main=dict(class_name='stylegan_plus.losses.logan_b.LOGANBLoss', r1_gamma=0,
                                             pl_weight=0, style_mixing_prob=0, loganb_fuse='concat',
                                             loganb_joint_layers=0),
                            addons=[dict(class_name='stylegan_plus.losses.advlat.AdvLatQuaLoss', advlat_eps=0.125)],
                            G=G, D=D)
        set_params(loss.main.Dz, dict(HEAD, **{'embed.weight': [[embed_weight]]}))
        with torch.no_grad():
            D.out.weight.fill_(d_out_weight)
        z, _c = loss.addons[0].transform_fakes('Dmain', Z, torch.zeros([2, 0]), sync=True)
        loss.addons[0].accumulate_gradients('Dmain', REAL, torch.zeros([2, 0]), z, _c, True, 1)
        return z - Z
    # D(G(z), z) = 3 (z + 1) + lrelu(a z): slope 3 + a (or 3 + 0.2 a) > 0 for a = 1, < 0 for a = -20.
    assert mined(1.0, 1.0).flatten().tolist() == [0.125, 0.125]
    assert mined(-20.0, 1.0).flatten().tolist() == [-0.125, -0.125]
    # D's own (untrained) output layer does not steer: flipping it changes nothing.
    assert mined(-20.0, -5.0).flatten().tolist() == [-0.125, -0.125]
    loss = hand_loss()[0]
    with pytest.raises(ValueError, match='needs the latent z'):
        loss.decision(REAL, torch.zeros([2, 0]))
    torch.testing.assert_close(loss.decision(REAL, torch.zeros([2, 0]), z=torch.tensor([[1.0], [0.5]])),
                               torch.tensor([[3.0], [1.5]]))

#----------------------------------------------------------------------------
# train.py runs.

@pytest.mark.slow
def test_train_stylegan2_snapshot_and_generate(datasets, tmp_path):
    run = train_run(tmp_path / 'runs', f'--data={datasets["images"]}', '--loss=logan-b', *SMALL_CONV, '--batch=4',
                    '--nimg=4', '--aug=ada', '--augpipe=color', '--kimg-per-tick=100')
    kwargs = options(run)['loss_kwargs']
    assert (kwargs['loganb_e_loss'], kwargs['loganb_fuse']) == ('bigan', 'auto') and 'z_dist' not in options(run)
    assert kwargs['loganb_joint_layers'] == 1
    assert (kwargs['loganb_saturating'], kwargs['loganb_surrogate_opt'], kwargs['loganb_surrogate_reduce'],
            kwargs['loganb_surrogate_skip']) == (False, 'shared', 'sum', 0)     # the image notebooks
    assert {'Loss/logan-b/E', 'Loss/logan-b/rec', 'Loss/G/loss', 'Loss/D/loss', 'Timing/Smain'} <= stat_names(run)
    data = check_snapshot(snapshot(run), ['E', 'Dz'])
    assert data['Dz'].fuse == 'add'
    check_generate(snapshot(run), tmp_path / 'images')


@pytest.mark.slow
def test_train_dcgan_resume_is_exact(datasets, tmp_path):
    args = [f'--data={datasets["images"]}', '--cfg=dcgan', '--loss=logan-b', *SMALL_CONV, '--batch=4', '--aug=ada',
            '--augpipe=color', '--kimg-per-tick=0.008', '--loganb-e-loss=cooperative']
    full, _half, _resumed = check_resume_is_exact(tmp_path, args, ['G', 'D', 'G_ema', 'E', 'Dz', 'augment_pipe'])
    assert options(full)['loss_kwargs']['loganb_e_loss'] == 'cooperative'
    check_snapshot(snapshot(full), ['E', 'Dz'])


@pytest.mark.slow
def test_train_toy(datasets, tmp_path):
    run = train_run(tmp_path / 'runs', f'--data={datasets["points"]}', '--cfg=toy', '--loss=logan-b', '--batch=8',
                    '--nimg=16')
    kwargs = options(run)['loss_kwargs']
    assert (kwargs['loganb_saturating'], kwargs['loganb_surrogate_skip']) == (True, 5)
    assert options(run)['z_dist'] == 'uniform'
    data = check_snapshot(snapshot(run), ['E', 'Dz'])
    # auto on the toy MLPs: the joint D is one MLP on [x, z] (2 + z_dim inputs), as the paper's.
    assert data['Dz'].in_features == 2 + data['E'].out_dim
    assert data['Dz'](torch.zeros(3, data['Dz'].in_features)).shape == (3, 1)
