"""The shared latent step (I-FGSM on z) and AdvLatGAN-z sampling with generate.py.

Hand case used here and by the loss tests: a 1-layer G(z) = z W^T ([N, 2] -> [N, 3]) and a 1-layer
D(x) = x v + b whose features are its input. Numbers are multiples of powers of two, so the steps
are exact in float32.
"""

import copy
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from stylegan_plus.networks import inference
from stylegan_plus.sampling import latent_steps
from tests.test_legacy import REPO, load_pickle, make_snapshot, write_pickle
from training import networks

W = [[1.0, 2.0], [0.5, -1.0], [-1.0, 0.25]]    # G weight [3, 2]
V = [0.5, -1.0, 2.0]                            # D weight
B = 0.25                                        # D bias
# d logit / dz = W^T v = [0.5 - 0.5 - 2, 1 + 1 + 0.5] = [-2, 2.5]: raising D's score moves z by (-eps, +eps).
STEP_SIGN = torch.tensor([-1.0, 1.0])
Z0 = torch.tensor([[0.5, -0.25], [1.0, 0.125], [-0.75, 0.5], [0.0, -1.5]])
EPS = 0.0625


class LinearG(torch.nn.Module):
    """G(z, c) = z W^T: z [N, 2] -> [N, 3]; a generator without mapping/synthesis split."""

    def __init__(self, weight=W):
        super().__init__()
        self.z_dim, self.c_dim = 2, 0
        self.weight = torch.nn.Parameter(torch.tensor(weight))

    def forward(self, z, c=None, **_ignored):
        return z @ self.weight.t()


class LinearD(torch.nn.Module):
    """D(x, c) = x v + b: x [N, 3] -> logits [N, 1]; features = x (width 3)."""

    def __init__(self, weight=V, bias=B):
        super().__init__()
        self.c_dim, self.img_channels, self.img_resolution, self.num_features = 0, 3, 1, 3
        self.weight = torch.nn.Parameter(torch.tensor([weight]))
        self.bias = torch.nn.Parameter(torch.tensor([bias]))

    def forward(self, x, c=None, return_features=False, **_ignored):
        x = x.flatten(1)
        logits = x @ self.weight.t() + self.bias
        return (logits, x) if return_features else logits


def hand_logits(z):
    """D(G(z)) by hand: z [N, 2] -> [N]."""
    return z @ (torch.tensor(W).t() @ torch.tensor(V)) + B


def empty_c(n):
    return torch.zeros([n, 0])

#----------------------------------------------------------------------------
# sign_descent / mine_latents on the hand case

@pytest.mark.parametrize('steps', [1, 3])
def test_ifgsm_moves_z_by_exactly_eps_toward_higher_D_score(steps):
    G, D = LinearG(), LinearD()
    D.requires_grad_(True)  # as in a D phase: still no parameter gradient may appear
    generator, discriminator = latent_steps.network_callables(G, D)
    z = latent_steps.mine_latents(Z0, empty_c(4), generator, discriminator, eps=EPS, steps=steps)
    # The step direction never changes for a linear G and D, so T steps move by exactly T * eps * sign.
    assert torch.equal(z - Z0, (steps * EPS * STEP_SIGN).expand(4, 2))
    # D's logit rises by eps * ||W^T v||_1 = eps * 4.5 per step, exactly.
    assert torch.equal(hand_logits(z) - hand_logits(Z0), torch.full([4], steps * EPS * 4.5))
    assert D.weight.grad is None and D.bias.grad is None and G.weight.grad is None
    assert not z.requires_grad


def test_objective_is_the_generator_loss_by_hand():
    G, D = LinearG(), LinearD()
    objective = latent_steps.realness_objective(*latent_steps.network_callables(G, D), empty_c(4))
    expected = torch.log1p(torch.exp(-hand_logits(Z0)))  # softplus(-logit)
    torch.testing.assert_close(objective(Z0)[:, 0], expected)


def test_augment_pipe_is_differentiated_through():
    """A pipe that negates images flips dD/dz, so the step flips too."""
    G, D = LinearG(), LinearD()
    generator, discriminator = latent_steps.network_callables(G, D, augment_pipe=torch.neg)
    z = latent_steps.mine_latents(Z0, empty_c(4), generator, discriminator, eps=EPS, steps=1)
    assert torch.equal(z - Z0, (-EPS * STEP_SIGN).expand(4, 2))


def test_steps_work_under_no_grad_and_zero_steps_is_identity():
    G, D = LinearG(), LinearD()
    generator, discriminator = latent_steps.network_callables(G, D)
    with torch.no_grad():
        z = latent_steps.mine_latents(Z0, empty_c(4), generator, discriminator, eps=EPS, steps=2)
    assert torch.equal(z - Z0, (2 * EPS * STEP_SIGN).expand(4, 2))
    assert torch.equal(latent_steps.mine_latents(Z0, empty_c(4), generator, discriminator, eps=EPS, steps=0), Z0)
    with pytest.raises(ValueError, match='integer >= 0'):
        latent_steps.sign_descent(Z0, lambda z: z.sum(), 0.1, -1)
    with pytest.raises(ValueError, match='>= 0'):
        latent_steps.sign_descent(Z0, lambda z: z.sum(), -0.1, 1)


def test_latent_step_generator_wraps_G():
    G, D = LinearG(), LinearD()
    wrapped = latent_steps.LatentStepGenerator(G, D, steps=2, eps=EPS)
    assert wrapped.z_dim == 2 and wrapped.c_dim == 0
    with torch.no_grad():
        torch.testing.assert_close(wrapped(Z0, empty_c(4)), G(Z0 + 2 * EPS * STEP_SIGN))
        torch.testing.assert_close(latent_steps.LatentStepGenerator(G, D, steps=0)(Z0, empty_c(4)), G(Z0))


@pytest.mark.slow
def test_latent_step_generator_as_metrics_use_it():
    """calc_metrics wiring: deep-copied, prepared like G_ema, called G(z=..., c=..., **G_kwargs) under no_grad."""
    data = make_snapshot()
    wrapped = latent_steps.LatentStepGenerator(data['G_ema'], data['D'], steps=3, eps=0.05)
    prepared = inference.prepare_generator(copy.deepcopy(wrapped), torch.device('cpu'))
    z = torch.randn([4, 8])
    with torch.no_grad():
        img = prepared(z=z, c=empty_c(4), noise_mode='const')
        moved = prepared.move_latents(z, empty_c(4), noise_mode='const')
        expected = data['G_ema'](moved, empty_c(4), noise_mode='const')
    torch.testing.assert_close(img, expected)
    assert torch.allclose((moved - z).abs().max(), torch.tensor(0.15)) and prepared.img_resolution == 16


def test_discriminator_kwargs_run_fp16_blocks_in_fp32_on_cpu():
    D = LinearD()
    assert latent_steps.discriminator_kwargs(D, 'cpu') == {}
    D.init_kwargs = dict(num_fp16_res=4)
    assert latent_steps.discriminator_kwargs(D, 'cpu') == dict(force_fp32=True)
    assert latent_steps.discriminator_kwargs(D, torch.device('cuda', 0)) == {}


@pytest.mark.slow
def test_stylegan2_step_raises_D_score():
    """Through mapping, synthesis and a minibatch-stddev D: every element moves by eps, scores rise."""
    torch.manual_seed(0)
    G = networks.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=16))
    D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    z0 = torch.randn([8, 8])
    generator, discriminator = latent_steps.network_callables(G, D, G_kwargs=dict(noise_mode='const'))
    z1 = latent_steps.mine_latents(z0, empty_c(8), generator, discriminator, eps=0.01, steps=1)
    torch.testing.assert_close((z1 - z0).abs(), torch.full_like(z0, 0.01))
    z20 = latent_steps.mine_latents(z0, empty_c(8), generator, discriminator, eps=0.05, steps=20)
    assert (z20 - z0).abs().max() <= 20 * 0.05 + 1e-6
    with torch.no_grad():
        before = discriminator(generator(z0, empty_c(8)), empty_c(8))
        after = discriminator(generator(z20, empty_c(8)), empty_c(8))
    assert after.mean() > before.mean() + 0.05

#----------------------------------------------------------------------------
# generate.py --latent-steps

def run_generate(*args):
    proc = subprocess.run([sys.executable, 'generate.py', *args, '--device=cpu'], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def d_scores(pkl, z):
    """D(G_ema(z)) per row, as generate.py renders (psi 1, const noise)."""
    data = load_pickle(pkl)
    c = torch.zeros([len(z), 0])
    with torch.no_grad():
        img = data['G_ema'](torch.tensor(z, dtype=torch.float32), c, noise_mode='const')
        return data['D'](img, c)[:, 0].numpy()


@pytest.mark.slow
def test_generate_latent_steps_change_images_and_raise_D_scores(tmp_path):
    pkl = write_pickle(make_snapshot(), tmp_path / 'snap.pkl')
    rc, out = run_generate(f'--network={pkl}', '--seeds=0-5', f'--outdir={tmp_path / "plain"}')
    assert rc == 0, out
    rc, out = run_generate(f'--network={pkl}', '--seeds=0-5', f'--outdir={tmp_path / "moved"}', '--latent-steps=20',
                           '--latent-eps=0.05', f'--vector-out={tmp_path / "v.npz"}')
    assert rc == 0, out
    assert out.count('20 latent steps of 0.05: D logit') == 6
    for seed in range(6):
        plain = np.asarray(PIL.Image.open(tmp_path / 'plain' / f'seed{seed:04d}.png'))
        moved = np.asarray(PIL.Image.open(tmp_path / 'moved' / f'seed{seed:04d}.png'))
        assert plain.shape == moved.shape and not np.array_equal(plain, moved)
    with np.load(tmp_path / 'v.npz') as vectors:
        z, z_start = vectors['z'], vectors['z_start']
    np.testing.assert_array_equal(z_start[3], np.random.RandomState(3).randn(8))
    assert 0 < np.abs(z - z_start).max() <= 20 * 0.05 + 1e-5
    assert d_scores(pkl, z).mean() > d_scores(pkl, z_start).mean()


@pytest.mark.slow
def test_generate_latent_steps_off_by_default_and_seeds_only(tmp_path):
    pkl = write_pickle(make_snapshot(), tmp_path / 'snap.pkl')
    rc, out = run_generate(f'--network={pkl}', '--seeds=4', f'--outdir={tmp_path}',
                           f'--vector-out={tmp_path / "v.npz"}')
    assert rc == 0 and 'latent steps' not in out, out
    with np.load(tmp_path / 'v.npz') as vectors:
        assert sorted(vectors.files) == ['seeds', 'w', 'z']  # the official draw, unmoved
        np.testing.assert_array_equal(vectors['z'][0], np.random.RandomState(4).randn(8))
    np.savez(tmp_path / 'w.npz', w=np.zeros([1, 6, 8], np.float32))
    rc, out = run_generate(f'--network={pkl}', f'--projected-w={tmp_path / "w.npz"}', f'--outdir={tmp_path}',
                           '--latent-steps=2')
    assert rc == 2 and '--latent-steps moves the z of --seeds' in out
