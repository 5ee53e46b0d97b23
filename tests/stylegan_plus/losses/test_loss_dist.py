"""Dist-GAN (`--loss=dist`): every term on a hand-computed case, phases, options, and train.py runs.

Hand case (shared with test_loss_loganb/test_loss_rf): 2-D points, z_dim 1, MLPs with one hidden
unit whose pre-activations stay positive, so the leaky ReLUs are the identity:
G(z) = (z + 1) * [1, 2], D(x) = x1 + x2 (features: the same value), E(x) = (x1 + x2) / 2.
Reals x = [[1, 1], [0, 1]], latents z = [[0], [1]]: E(x) = [1, 0.5], G(E(x)) = [[2, 4], [1.5, 3]],
G(z) = [[1, 2], [2, 4]]; D(x) = [2, 1], D(G(z)) = [3, 6], D(G(E(x))) = [6, 4.5].

Also home of the helpers the three plugin test files share: the tiny nets, a stats recorder, and
`train_run`, which runs `train.py` as a user does, each run in its own process forked from a
fresh fork server that has imported torch and train.py once (so a run costs seconds, not the
interpreter start-up).
"""

import contextlib
import json
import math
import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from click.testing import CliRunner

import dnnlib
import generate
import legacy
from stylegan_plus.losses import dist as dist_module
from stylegan_plus.losses import penalty_pass
from stylegan_plus.losses.dist import DistGANLoss
from stylegan_plus.losses.phases import default_phases
from stylegan_plus.networks import mlp
from stylegan_plus.training.augment import AugmentPipe
from stylegan_plus.data.toy_data import save_toy_points
from torch_utils import training_stats

REAL = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
Z = torch.tensor([[0.0], [1.0]])
ENCODER = {'net.body.0.weight': [[0.5, 0.5]], 'net.body.0.bias': [0.0], 'net.out.weight': [[1.0]],
           'net.out.bias': [0.0]}
OFFICIAL_KEYS = ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe']
ADAM = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.001, betas=[0, 0.99])

#----------------------------------------------------------------------------
# Shared helpers: fixed-weight networks, statistics, phases.

def set_params(module, values):
    """Copy `values` (name -> nested list) into the parameters of `module`; every parameter must be named."""
    params = dict(module.named_parameters())
    assert set(values) == set(params), f'set {sorted(values)}, module has {sorted(params)}'
    with torch.no_grad():
        for name, value in values.items():
            params[name].copy_(torch.tensor(value))


def tiny_nets():
    """(G, D): the hand case's MLPs (z_dim 1, one hidden unit), frozen as the loop leaves them."""
    G = mlp.Generator(z_dim=1, c_dim=0, hidden_features=[1])
    D = mlp.Discriminator(c_dim=0, hidden_features=[1])
    set_params(G, {'body.0.weight': [[1.0]], 'body.0.bias': [1.0], 'out.weight': [[1.0], [2.0]], 'out.bias': [0.0, 0.0]})
    set_params(D, {'body.0.weight': [[1.0, 1.0]], 'body.0.bias': [0.0], 'out.weight': [[1.0]], 'out.bias': [0.0]})
    return G.requires_grad_(False), D.requires_grad_(False)


def softplus(values):
    return [math.log1p(math.exp(v)) for v in values]


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


class StatsRecorder:
    """Records every `training_stats.report(name, value)` as flat lists of floats."""

    def __init__(self, monkeypatch):
        self.values = {}
        monkeypatch.setattr(training_stats, 'report', self._report)

    def _report(self, name, value):
        self.values.setdefault(name, []).extend(torch.as_tensor(value).detach().reshape(-1).tolist())
        return value

    def __getitem__(self, name):
        return self.values[name]


def step(loss, phase, trained, real=REAL, z=Z):
    """One accumulation round of `phase`, only `trained` requiring grad (as the loop does); clears grads first."""
    for module in trained:
        for param in module.parameters():
            param.grad = None
        module.requires_grad_(True)
    c = torch.zeros([real.shape[0], 0])
    loss.accumulate_gradients(phase, real, c, z, torch.zeros([z.shape[0], 0]), sync=True, gain=1)
    for module in trained:
        module.requires_grad_(False)


def grads_of(module):
    return {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


def approx(values, rel=1e-5, abs=1e-6): # pylint: disable=redefined-builtin
    return pytest.approx(values, rel=rel, abs=abs)

#----------------------------------------------------------------------------
# Shared helpers: train.py runs and their outputs.

FAST = ['--device=cpu', '--metrics=none', '--workers=1']
SMALL_CONV = ['--cbase=256', '--cmax=32']


def _train_child(argv):
    # A fresh process per run (forked from the fork server): one thread, and DataLoader workers
    # forked as well instead of spawned, to keep start-up short.
    torch.set_num_threads(1)
    torch.multiprocessing.set_start_method = lambda *args, **kwargs: None
    import train # pylint: disable=import-outside-toplevel
    train.build_command(argv).main(args=argv, standalone_mode=False)


def train_run(outdir, *args):
    """Run `train.py --outdir=outdir *args` (plus FAST) in its own process; returns the new run folder."""
    outdir = Path(outdir)
    before = set(outdir.glob('*')) if outdir.exists() else set()
    ctx = multiprocessing.get_context('forkserver')
    ctx.set_forkserver_preload(['torch', 'torch._dynamo', 'train', __name__])
    proc = ctx.Process(target=_train_child, args=([f'--outdir={outdir}', *FAST, *args],))
    proc.start()
    proc.join(timeout=300)
    new = sorted(set(outdir.glob('*')) - before)
    log = (new[0] / 'log.txt').read_text() if new and (new[0] / 'log.txt').exists() else ''
    assert proc.exitcode == 0, f'train.py {" ".join(args)} failed ({proc.exitcode}):\n{log[-3000:]}'
    assert len(new) == 1
    return new[0]


@pytest.fixture(scope='session')
def datasets(tmp_path_factory):
    """{'images': folder of 8 RGB 16x16 PNGs, 'points': ring8 .npy}."""
    root = tmp_path_factory.mktemp('data')
    rng = np.random.RandomState(0)
    (root / 'images').mkdir()
    for idx in range(8):
        PIL.Image.fromarray(rng.randint(0, 256, size=(16, 16, 3), dtype=np.uint8)).save(root / 'images' / f'{idx}.png')
    save_toy_points(str(root / 'ring.npy'), 'ring8', std=0.05, points_per_mode=4)
    return dict(images=str(root / 'images'), points=str(root / 'ring.npy'))


def snapshot(run_dir):
    """The run's last network snapshot (names sort by training progress)."""
    paths = sorted(Path(run_dir).glob('network-snapshot-*.pkl'))
    assert paths, f'no network snapshot in {run_dir}'
    return paths[-1]


def options(run_dir):
    return json.loads((Path(run_dir) / 'training_options.json').read_text())


def stat_names(run_dir):
    names = set()
    for line in (Path(run_dir) / 'stats.jsonl').read_text().splitlines():
        names.update(json.loads(line))
    return names


class RecordingUnpickler(pickle.Unpickler):
    """Records the module of every global a pickle references."""

    def __init__(self, file):
        super().__init__(file)
        self.modules = set()

    def find_class(self, module, name):
        self.modules.add(module)
        return super().find_class(module, name)


def check_snapshot(path, extra_keys):
    """The snapshot has the official keys first, then `extra_keys`; legacy loads it; it needs no fork module."""
    with open(path, 'rb') as f:
        unpickler = RecordingUnpickler(f)
        data = unpickler.load()
    assert list(data) == OFFICIAL_KEYS + list(extra_keys) + ['z_dist']     # the prior last, a plain str
    assert data['z_dist'] in ('normal', 'uniform')
    assert not [m for m in unpickler.modules if m.split('.')[0] in ('stylegan_plus', 'tests')]
    with open(path, 'rb') as f:
        loaded = legacy.load_network_pkl(f)
    for key in ('G', 'D', 'G_ema', *extra_keys):
        assert isinstance(loaded[key], torch.nn.Module)
        assert not any(p.requires_grad for p in loaded[key].parameters())
    return data


def assert_same_state(path_a, path_b, keys):
    """Networks `keys` of two snapshots have bit-identical parameters and buffers."""
    with open(path_a, 'rb') as fa, open(path_b, 'rb') as fb:
        a, b = pickle.load(fa), pickle.load(fb)
    for key in keys:
        sa, sb = a[key].state_dict(), b[key].state_dict()
        assert list(sa) == list(sb)
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f'{key}.{name} differs'


def check_resume_is_exact(tmp_path, args, keys):
    """A run of 4 iterations equals one of 2 iterations resumed for 2 more (args: with --batch=4)."""
    full = train_run(tmp_path / 'full', *args, '--nimg=16')
    half = train_run(tmp_path / 'half', *args, '--nimg=8')
    resumed = train_run(tmp_path / 'resumed', *args, '--nimg=16', f'--resume={snapshot(half)}')
    assert_same_state(snapshot(full), snapshot(resumed), keys)
    with pytest.raises(AssertionError, match='differs'):
        assert_same_state(snapshot(full), snapshot(half), keys)     # not vacuous: training moved them
    return full, half, resumed


def check_generate(pkl, outdir):
    """generate.py renders 16x16 RGB images from the snapshot's G_ema."""
    result = CliRunner().invoke(generate.generate_images, [f'--network={pkl}', '--seeds=0-1', f'--outdir={outdir}',
                                                           '--device=cpu'])
    assert result.exit_code == 0, result.output
    image = PIL.Image.open(Path(outdir) / 'seed0001.png')
    assert (image.size, image.mode) == ((16, 16), 'RGB')

#----------------------------------------------------------------------------
# Loss terms as functions.

def test_ae_terms_by_hand():
    phi_real = torch.tensor([[1.0, 2.0, 0.0, 1.0]])
    phi_rec = torch.tensor([[0.0, 2.0, 1.0, 3.0]])
    phi_fake = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 2.0]])
    rec, reg = dist_module.ae_terms(phi_real, phi_rec, phi_fake, torch.tensor([[0.5]]), torch.tensor([[1.0], [0.0]]))
    assert rec.tolist() == approx([(1 + 0 + 1 + 4) / 4])     # the authors' mean over feature dimensions
    rec_sum, _reg = dist_module.ae_terms(phi_real, phi_rec, phi_fake, torch.tensor([[0.5]]),
                                         torch.tensor([[1.0], [0.0]]), recon_mean=False)
    assert rec_sum.tolist() == approx([1 + 0 + 1 + 4])       # the paper's squared norm
    # M(phi_rec) = 1.5, M(phi_fake) = 0.75, M(E(x)) = 0.5, M(z) = 0.5, lambda_w = sqrt(1 / 4).
    assert float(reg) == approx((1.5 - 0.75 - 0.5 * 0.0) ** 2)
    _rec, reg = dist_module.ae_terms(phi_real, phi_rec, phi_fake, torch.tensor([[2.5]]), torch.tensor([[1.0], [0.0]]))
    assert float(reg) == approx((0.75 - 0.5 * 2.0) ** 2)


def test_score_distance_gradient_penalty_interpolate():
    assert float(dist_module.score_distance(torch.tensor([[0.0], [2.0]]), torch.tensor([[-1.0]]))) == \
        approx(abs((0.5 + sigmoid(2)) / 2 - sigmoid(-1)))
    grads = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    assert dist_module.gradient_penalty(grads, 'l2').tolist() == approx([16.0, 0.25])
    # rms (the default, the authors' code): sqrt(mean g^2) = sqrt(12.5) and sqrt(0.125).
    assert dist_module.gradient_penalty(grads).tolist() == approx([(math.sqrt(12.5) - 1) ** 2,
                                                                   (math.sqrt(0.125) - 1) ** 2])
    with pytest.raises(ValueError, match="norm 'l1'"):
        dist_module.gradient_penalty(grads, 'l1')
    mixed = dist_module.interpolate(torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), torch.tensor([0.25, 1.0]))
    assert mixed[:, 0, 0, 0].tolist() == [0.25, 1.0]


def test_augment_pair_uses_the_same_draws():
    torch.manual_seed(0)
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, brightness=1, contrast=1)
    pipe.p.copy_(torch.tensor(0.8))
    x = torch.randn(6, 3, 8, 8)
    a, b = dist_module.augment_pair(pipe, x, x.clone())
    assert torch.equal(a, b) and not torch.equal(a, x)
    c, _d = dist_module.augment_pair(pipe, x, x)
    assert not torch.equal(a, c)    # the stream moved on
    assert dist_module.augment_pair(None, x, x + 1)[1].equal(x + 1)

#----------------------------------------------------------------------------
# The plugin on the hand case.

def hand_loss(**kwargs):
    G, D = tiny_nets()
    loss = DistGANLoss('cpu', G=G, D=D, augment_pipe=None, r1_gamma=0, pl_weight=0, style_mixing_prob=0, **kwargs)
    set_params(loss.E, ENCODER)
    loss.E.requires_grad_(False)
    return loss, G, D


@pytest.mark.parametrize('recon_mean', [True, False])
def test_ae_step_by_hand(monkeypatch, recon_mean):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss(dist_lambda_r=0.5, dist_recon_mean=recon_mean)
    step(loss, 'AEmain', [loss.E, G])
    lambda_w = math.sqrt(1 / 2)                 # d_z = 1, Phi = identity on 2-D points
    latent_gap = 0.375 - lambda_w * 0.25        # M(G(E(x))) - M(G(z)) = 2.625 - 2.25; M(E(x)) - M(z) = 0.25
    scale = 1 / 2 if recon_mean else 1          # L_R: mean over the 2 dimensions, or their sum
    assert stats['Loss/dist/rec'] == approx([scale * (1 + 9), scale * (2.25 + 4)])
    assert stats['Loss/dist/latent_reg'] == approx([latent_gap ** 2])
    # d/d(G's output bias): the reconstruction term only (the bias cancels in M(G(E(x))) - M(G(z))).
    assert G.out.bias.grad.tolist() == approx([scale * 2.5, scale * 5.0])
    # d/d(E's output bias): mean of 2 (rec - x) . [1, 2] (times scale), plus lambda_r * 2 * gap * (1.5 - lambda_w).
    assert float(loss.E.net.out.bias.grad) == approx(scale * 12.5 + 0.5 * 2 * latent_gap * (1.5 - lambda_w))
    assert not grads_of(D)


@pytest.mark.parametrize('norm', ['l2', 'rms'])
def test_d_step_by_hand(monkeypatch, norm):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss(dist_recon_weight=0.25, dist_gp=2.0, dist_gp_norm=norm)
    step(loss, 'Dboth', [D])
    real, fake, rec = [2.0, 1.0], [3.0, 6.0], [6.0, 4.5]
    # grad_x D = v [1, 1] everywhere on the segments (v = 1, D's output weight): ||.||_2 = sqrt2 v, rms = v.
    norm_per_v = math.sqrt(2) if norm == 'l2' else 1.0
    gp = (norm_per_v - 1) ** 2
    assert stats['Loss/dist/recon_real'] == approx(softplus([-v for v in rec]))
    assert stats['Loss/dist/gp'] == approx([gp, gp])
    assert stats['Loss/D/loss'] == approx([a + b for a, b in zip(softplus(fake), softplus([-v for v in real]))])
    assert stats['Loss/scores/real'] == approx(real) and stats['Loss/signs/real'] == [1.0, 1.0]
    # D's output layer: logit = v h + u (h = logit here); the penalty (v n - 1)^2 depends on v only.
    bias_grad = np.mean([sigmoid(f) - sigmoid(-r) - 0.25 * sigmoid(-c) for f, r, c in zip(fake, real, rec)])
    weight_grad = np.mean([sigmoid(f) * f - sigmoid(-r) * r - 0.25 * sigmoid(-c) * c
                           for f, r, c in zip(fake, real, rec)]) + 2.0 * 2 * (norm_per_v - 1) * norm_per_v
    assert float(D.out.bias.grad) == approx(bias_grad)
    assert float(D.out.weight.grad) == approx(weight_grad)
    assert not grads_of(G) and not grads_of(loss.E)


def test_r1_is_kept_with_gamma(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    G, D = tiny_nets()
    loss = DistGANLoss('cpu', G=G, D=D, r1_gamma=4.0, pl_weight=0, style_mixing_prob=0)
    step(loss, 'Dreg', [D])
    assert stats['Loss/r1_penalty'] == approx([2.0, 2.0]) and stats['Loss/D/reg'] == approx([4.0, 4.0])


def test_g_step_by_hand(monkeypatch):
    stats = StatsRecorder(monkeypatch)
    loss, G, D = hand_loss()
    step(loss, 'Gboth', [G])
    mean_real, mean_fake = (sigmoid(2) + sigmoid(1)) / 2, (sigmoid(3) + sigmoid(6)) / 2
    assert stats['Loss/G/loss'] == approx([abs(mean_real - mean_fake)])
    # Here the fakes score higher than the reals, so G pulls their scores down: the gradient of
    # +mean sigmoid(D(G(z))) w.r.t. G's output bias (dD/db = [1, 1]).
    assert mean_fake > mean_real
    expected = np.mean([sigmoid(s) * (1 - sigmoid(s)) for s in (3.0, 6.0)])
    assert G.out.bias.grad.tolist() == approx([expected, expected])
    assert not grads_of(D) and not grads_of(loss.E)


def test_image_features_and_phases():
    """On images Phi is D's penultimate feature vector; the order is AE, D phases, G phases."""
    torch.manual_seed(0)
    from stylegan_plus.networks import dcgan # pylint: disable=import-outside-toplevel
    G = dcgan.Generator(z_dim=4, c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    D = dcgan.Discriminator(c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    loss = DistGANLoss('cpu', G=G, D=D, r1_gamma=1, pl_weight=0, style_mixing_prob=0)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loss.features(x, None), D(x, None, return_features=True)[1])
    assert loss.E(x).shape == (3, 4)
    names = [spec.name for spec in loss.phases(default_phases(ADAM, ADAM, 4, 16), dnnlib.EasyDict(G=ADAM, D=ADAM))]
    assert names == ['AEmain', 'Dmain', 'Dreg', 'Gmain', 'Greg']
    # --d-steps=5 (the authors' 2-D code): the loop's D main phase repeats; R1 keeps its interval.
    phases = loss.phases(default_phases(ADAM, ADAM, 4, 16, d_steps=5), dnnlib.EasyDict(G=ADAM, D=ADAM))
    assert [(spec.name, spec.repeat, spec.interval) for spec in phases] == [
        ('AEmain', 1, 1), ('Dmain', 5, 1), ('Dreg', 1, 16), ('Gmain', 1, 1), ('Greg', 1, 4)]
    phases = loss.phases(default_phases(ADAM, ADAM, None, None, d_steps=5), dnnlib.EasyDict(G=ADAM, D=ADAM))
    assert [(spec.name, spec.repeat) for spec in phases] == [('AEmain', 1), ('Dboth', 5), ('Gboth', 1)]
    ae_phase = loss.phases(default_phases(ADAM, ADAM, None, None), dnnlib.EasyDict(G=ADAM, D=ADAM))[0]
    assert (ae_phase.modules, ae_phase.opt, ae_phase.opt_kwargs.betas) == (('E', 'G'), 'AE', [0.0, 0.99])


IMAGE_DEFAULTS = dict(dist_lambda_r=1.0, dist_recon_weight=0.05, dist_gp=1.0, dist_gp_norm='rms', dist_recon_mean=True)
TOY_LOOP = dict(z_dist='uniform', d_steps=5, lr_schedule='step:0.9:1429')   # the authors' 2-D code (10 000 global steps, 7 an iteration)


def test_option_defaults_and_toy_defaults():
    assert {opt.key: opt.default for opt in DistGANLoss.options} == IMAGE_DEFAULTS
    args = dnnlib.EasyDict()
    kwargs = dict(IMAGE_DEFAULTS)
    DistGANLoss.adjust_training_options(args, kwargs, cfg='toy', given=frozenset({'dist_gp'}))
    assert kwargs == dict(IMAGE_DEFAULTS, dist_lambda_r=0.1, dist_recon_weight=1.0)
    assert args == TOY_LOOP
    args = dnnlib.EasyDict(d_steps=2)
    kwargs = dict(IMAGE_DEFAULTS, dist_recon_weight=0.3)
    DistGANLoss.adjust_training_options(args, kwargs, cfg='toy', given=frozenset({'dist_recon_weight', 'd_steps',
                                                                                   'lr_schedule'}))
    assert kwargs == dict(IMAGE_DEFAULTS, dist_lambda_r=0.1, dist_recon_weight=0.3, dist_gp=0.1)
    assert args == dict(z_dist='uniform', d_steps=2)     # given loop options are the user's
    args, kwargs = dnnlib.EasyDict(), dict(IMAGE_DEFAULTS)
    DistGANLoss.adjust_training_options(args, kwargs, cfg='dcgan', given=frozenset())
    assert kwargs == IMAGE_DEFAULTS and args == {}


def test_priors_and_bad_values():
    loss, _G, _D = hand_loss()
    loss.z_dist = 'uniform'     # the loop gives the run's --z-dist to the loss
    z = loss.sample_z(2000, 'cpu')
    assert z.shape == (2000, 1) and float(z.min()) >= -1 and float(z.max()) <= 1 and float(z.std()) > 0.5
    default = hand_loss()[0]
    torch.manual_seed(3)
    gaussian = default.sample_z(4, 'cpu')
    torch.manual_seed(3)
    assert torch.equal(gaussian, torch.randn([4, 1]))
    G, D = tiny_nets()
    for bad, message in [(dict(dist_gp=-1), 'dist_gp=-1'), (dict(dist_gp_norm='l1'), "dist_gp_norm='l1'")]:
        with pytest.raises(ValueError, match=message):
            DistGANLoss('cpu', G=G, D=D, **bad)

#----------------------------------------------------------------------------
# train.py runs.

@pytest.mark.slow
def test_train_stylegan2_snapshot_and_generate(datasets, tmp_path):
    run = train_run(tmp_path / 'runs', f'--data={datasets["images"]}', '--loss=dist', *SMALL_CONV, '--batch=4',
                    '--nimg=4', '--aug=ada', '--augpipe=color', '--kimg-per-tick=100')
    kwargs = options(run)['loss_kwargs']
    assert kwargs['class_name'] == 'stylegan_plus.losses.dist.DistGANLoss'
    assert {key: kwargs[key] for key in IMAGE_DEFAULTS} == IMAGE_DEFAULTS
    assert {'Loss/dist/rec', 'Loss/dist/latent_reg', 'Loss/dist/gp', 'Loss/dist/recon_real', 'Loss/G/loss',
            'Timing/AEmain'} <= stat_names(run)
    data = check_snapshot(snapshot(run), ['E'])
    assert data['augment_pipe'] is not None
    check_generate(snapshot(run), tmp_path / 'images')


@pytest.mark.slow
def test_train_dcgan_resume_is_exact(datasets, tmp_path):
    args = [f'--data={datasets["images"]}', '--cfg=dcgan', '--loss=dist', *SMALL_CONV, '--batch=4', '--aug=ada',
            '--augpipe=color', '--kimg-per-tick=0.008', '--dist-recon-weight=0.5',
            '--d-steps=2']      # the extra D step reads its own real batch: the resumed sampler must count it
    full, _half, resumed = check_resume_is_exact(tmp_path, args, ['G', 'D', 'G_ema', 'E', 'augment_pipe'])
    assert options(resumed)['loss_kwargs']['dist_recon_weight'] == 0.5
    check_snapshot(snapshot(full), ['E'])


@pytest.mark.slow
def test_train_toy(datasets, tmp_path):
    run = train_run(tmp_path / 'runs', f'--data={datasets["points"]}', '--cfg=toy', '--loss=dist', '--batch=8',
                    '--nimg=16', '--dist-gp=0.5')
    kwargs = options(run)['loss_kwargs']
    assert (kwargs['dist_lambda_r'], kwargs['dist_gp'], kwargs['dist_recon_weight']) == (0.1, 0.5, 1.0)
    assert kwargs['dist_gp_norm'] == 'rms' and 'dist_prior' not in kwargs and 'dist_d_steps' not in kwargs
    assert {key: options(run)[key] for key in TOY_LOOP} == TOY_LOOP
    assert 'Progress/lr_factor' in stat_names(run)
    assert 'Timing/Dboth' in stat_names(run)
    data = check_snapshot(snapshot(run), ['E'])
    assert data['E'](torch.zeros(3, 2)).shape == (3, 2)

#----------------------------------------------------------------------------
# The gradient penalty's D pass without the backward on zeros (`losses/penalty_pass.py`): same values and
# gradients, bit for bit, as the code before it (a frozen copy below), fewer convolution backwards.

class EarlierPenaltyDistGANLoss(DistGANLoss):
    """DistGANLoss with `penalty_at_interpolates` as it was before penalty_pass.py (frozen copy)."""

    def penalty_at_interpolates(self, real_img, real_c, gen_img):
        eps = torch.rand([real_img.shape[0]], device=real_img.device)
        mixed = dist_module.interpolate(real_img.detach(), gen_img.detach(), eps).requires_grad_(True)
        logits = self.decision(mixed, real_c)
        with dist_module.conv2d_gradfix.no_weight_gradients():
            grads = torch.autograd.grad(outputs=[logits.sum()], inputs=[mixed], create_graph=True)[0]
        return dist_module.gradient_penalty(grads, self.dist_gp_norm)


class ConvBackwardCounter(TorchDispatchMode):
    """Counts aten.convolution_backward calls, by output mask."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution_backward.default:
            self.masks.append(tuple(args[-1]))
        return func(*args, **(kwargs or {}))


def small_image_nets(family, c_dim):
    """(G, D) at 16 px, 3 channels, a few channels wide, frozen as the loop leaves them."""
    torch.manual_seed(0)
    if family == 'dcgan':
        from stylegan_plus.networks import dcgan # pylint: disable=import-outside-toplevel
        small = dict(channel_base=128, channel_max=16)
        G = dcgan.Generator(z_dim=8, c_dim=c_dim, img_resolution=16, img_channels=3, **small)
        D = dcgan.Discriminator(c_dim=c_dim, img_resolution=16, img_channels=3, **small)
    else:
        from stylegan_plus.networks import stylegan2 # pylint: disable=import-outside-toplevel
        small = dict(channel_base=128, channel_max=16)
        G = stylegan2.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=16, img_channels=3,
                                mapping_kwargs=dict(num_layers=2), synthesis_kwargs=small)
        D = stylegan2.Discriminator(c_dim=c_dim, img_resolution=16, img_channels=3,
                                    epilogue_kwargs=dict(mbstd_group_size=2), **small)
    return G.requires_grad_(False), D.requires_grad_(False)


def one_iteration(loss_class, family, c_dim, monkeypatch):
    """Grads of E, G, D after AEmain, Dboth (with R1) and Gboth on fixed data, plus every statistic."""
    G, D = small_image_nets(family, c_dim)     # built afresh, from the same seed, for each run
    stats = StatsRecorder(monkeypatch)
    loss = loss_class('cpu', G=G, D=D, r1_gamma=1.0, pl_weight=0, style_mixing_prob=0)
    gen = torch.Generator().manual_seed(1)
    real = torch.randn([4, 3, 16, 16], generator=gen)
    z = torch.randn([4, 8], generator=gen)
    c = torch.eye(max(c_dim, 1))[torch.tensor([0, 1, 1, 0]) % max(c_dim, 1)][:, :c_dim]
    torch.manual_seed(2)    # the penalty's eps and any noise: the same draws in both runs
    grads = {}
    counter = ConvBackwardCounter()
    for phase, trained in [('AEmain', [loss.E, G]), ('Dboth', [D]), ('Gboth', [G])]:
        for module in trained:
            module.requires_grad_(True)
        with counter if phase == 'Dboth' else contextlib.nullcontext():
            loss.accumulate_gradients(phase, real, c, z, c, sync=True, gain=1)
        for module in trained:
            module.requires_grad_(False)
            for name, param in module.named_parameters():
                if param.grad is not None:
                    grads[f'{phase}/{type(module).__name__}/{name}'] = param.grad
                param.grad = None
    return grads, stats.values, counter.masks


@pytest.mark.parametrize('family,c_dim', [('dcgan', 0), ('dcgan', 3), ('stylegan2', 0)])
def test_penalty_pass_matches_the_earlier_code(monkeypatch, family, c_dim):
    """One iteration (AE, D with the penalty and R1, G) gives bitwise the earlier gradients and statistics."""
    new_grads, new_stats, new_masks = one_iteration(DistGANLoss, family, c_dim, monkeypatch)
    old_grads, old_stats, old_masks = one_iteration(EarlierPenaltyDistGANLoss, family, c_dim, monkeypatch)
    assert sorted(new_grads) == sorted(old_grads) and any(name.startswith('Dboth') for name in new_grads)
    for name, grad in new_grads.items():
        assert torch.equal(grad, old_grads[name]), name
    assert new_stats == old_stats and new_stats['Loss/dist/gp']
    if family == 'dcgan':
        # D has 2 convolutions at 16 px. Before: 2 full backwards (weight + data) on zeros through
        # the penalty's forward graph; now none. R1 (the baseline's code) keeps its own.
        full = (True, True, True)
        assert old_masks.count(full) - new_masks.count(full) == 2
        assert len(old_masks) - len(new_masks) == 2


def test_penalty_pass_functions_are_torchs_ops():
    """Inside the mode: conv2d (bias, stride, groups) and leaky ReLU give torch's values, first- and
    second-order gradients bit for bit, send nothing back into the forward graph, and leave other
    calls (in-place leaky ReLU, padding='same', no autograd, autocast) as they are."""
    torch.manual_seed(0)
    w1, b1 = torch.randn([4, 2, 3, 3]), torch.randn([4])
    w2 = torch.randn([6, 2, 3, 3])     # groups=2
    x = torch.randn([3, 2, 9, 9])
    v = torch.randn([3, 6, 3, 3])     # a fixed readout: grad_x of (out * v).sum() depends on x through slopes only

    def net(inp):
        h = F.leaky_relu(F.conv2d(inp, w1, b1, stride=2, padding=1), 0.2)
        return F.leaky_relu(F.conv2d(h, w2, None, 1, 0, 1, 2), negative_slope=0.1)

    results = []
    for use_mode in [False, True]:
        for t in (w1, b1, w2):
            t.requires_grad_(True)
            t.grad = None
        inp = x.clone().requires_grad_(True)
        with penalty_pass.without_zero_backward(enabled=use_mode):
            out = net(inp)
        grad_x = torch.autograd.grad((out * v).sum(), [inp], create_graph=True)[0]
        counter = ConvBackwardCounter()
        with counter:
            grad_x.square().sum().backward()
        results.append((out.detach(), grad_x.detach(), [t.grad for t in (w1, b1, w2)], inp.grad, counter.masks))
    (out_a, gx_a, gw_a, gi_a, masks_a), (out_b, gx_b, gw_b, gi_b, masks_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    assert torch.equal(gw_a[0], gw_b[0]) and torch.equal(gw_a[2], gw_b[2])
    # b1 moves the slopes only: torch's gradient is exact zeros (sent along the zero path), now none.
    # In the D step every D parameter also gets the other terms' gradients (the test above).
    assert gw_a[1] is not None and not gw_a[1].any() and gw_b[1] is None
    assert gi_a is not None and not gi_a.any() and gi_b is None     # the same for the input
    # Backpropagating the penalty: torch ran both layers' full backward (on zeros); now neither.
    assert masks_a == [(True, True, False), (True, True, True)] and masks_b == []
    inp = x.clone().requires_grad_(True)
    with penalty_pass.without_zero_backward():
        y = F.leaky_relu(inp * 1, 0.2, inplace=True)
        same = F.conv2d(inp, w1, None, padding='same')
        with torch.no_grad():
            plain = F.conv2d(inp, w1, b1)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            cast = F.conv2d(inp, w1, b1)
    assert type(y.grad_fn).__name__ == 'LeakyReluBackward1'
    assert type(same.grad_fn).__name__ == 'ConvolutionBackward0' and plain.grad_fn is None
    assert type(cast.grad_fn).__name__ == 'ConvolutionBackward0' and cast.dtype == torch.bfloat16
