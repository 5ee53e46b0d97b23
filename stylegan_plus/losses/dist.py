"""Dist-GAN (`--loss=dist`): an autoencoder (E, G) with distance constraints, reconstructions as reals.

Reading (docs/methods.md, paper 003, and the authors' code where the paper is silent or loose):

- E: D's architecture, unconditional, output `z_dim` (`stylegan_plus.networks.encoders`), trained
  with G as an autoencoder. Extra network `E` (snapshots, resume).
- Order per iteration: AE step (phase `AEmain`, E and G, its own Adam with G's settings), D step
  (the loop's `--d-steps` executions, each with fresh latents: the authors' 2-D code takes 5, the
  paper and the image code 1; default 1, 5 with `--cfg=toy`), G step. Lazy regularisation phases
  (Greg: path length, Dreg: R1) stay as in the baseline.
- AE step: `L_R + lambda_r * L_W` with
  `L_R = ||Phi(x) - Phi(G(E(x)))||^2` and
  `L_W = (M(Phi(G(E(x)))) - M(Phi(G(z))) - lambda_w * (M(E(x)) - M(z)))^2`, M the mean over the
  batch and all dimensions, `lambda_w = sqrt(d_z / d_Phi)`. `--dist-recon-mean` (default on, the
  authors' `mean((Phi(x) - Phi(G(E(x))))^2)`): L_R is the mean over the feature dimensions,
  which is what lambda_r = 1 was tuned with; off: the per-sample sum of squares the paper prints,
  which outweighs L_W by the feature width (512 on StyleGAN2's fc features). Phi is D's penultimate feature
  vector (D frozen); x and G(E(x)) go through the augment pipe with the *same* random draws, so
  their features compare the same view. For 2-D point data Phi is the identity. lambda_r = 1
  (`--dist-lambda-r`; 0.1 with `--cfg=toy`). G(E(x)) runs through `plugin_generator`: E(x) is no
  prior draw, so it must not move BatchNorm running statistics or w_avg.
- D step: the baseline terms `softplus(-D(x)) + softplus(D(G(z)))`, plus reconstructions counted
  as real, `w * softplus(-D(G(E(x))))` with w = `--dist-recon-weight` (default 0.05, the
  authors' image code; the paper implies 1, and `--cfg=toy` uses 1), plus a gradient penalty
  `lambda_p * (n(grad_xhat D(xhat)) - 1)^2` at `xhat = eps x + (1 - eps) G(z)`, eps ~ U[0, 1]
  per sample, labels of the reals (`--dist-gp`, default 1; 0.1 with `--cfg=toy`). The norm n
  (`--dist-gp-norm`): `rms` (default, the authors' code: sqrt(mean over dimensions of g^2),
  i.e. it drives the L2 norm to sqrt(d)) or `l2` (WGAN-GP's ||g||_2, which the paper cites; the
  paper prints the squared norm inside the penalty, a form neither code uses). R1 (`--gamma`) is
  kept as in the baseline; `--gamma=0` drops it.
- G step: the discriminator-score distance `|mean sigmoid(D(x)) - mean sigmoid(D(G(z)))|` replaces
  the non-saturating loss.
- Loop options this plugin sets on `--cfg=toy` unless given (`presets`), the
  authors' 2-D settings: `--z-dist=uniform` (U[-1, 1], the paper's section 4.1 and the code; the
  loop records it in every snapshot, so generate.py, the metrics and the benchmarks draw from
  it), `--d-steps=5` (each D step on a real batch of its own, as in the code), and
  `--lr-schedule=step:0.9:1429`: the code decays every learning rate by 0.9 every 10 000
  *global* steps, and its three solvers (R, 5 x D, G) all advance that one counter, 7 per
  iteration, so the rates fall by 0.9 every 10 000 / 7 = 1 429 iterations (x0.24 by epoch 50;
  the code's decay is continuous, ours a staircase of the same rate). Other configs keep the loop's defaults (normal prior, one D step,
  constant rates).

Deviations from the authors' code kept, and why:
- The prior stays N(0, I) on images: the paper's image experiments and the official presets the
  other losses are compared with use it; `--z-dist=uniform` gives the paper's.
- kimg counts iterations (the G side), as for every loss: with 5 D steps an iteration reads 6
  real batches (the first D step's is the iteration's own), as the code's epochs of 391
  iterations do.
- The decay counts loop iterations (one AE, five D and one G step each), not D's optimizer
  steps: the loop applies one schedule to every optimizer.
- The 2-D code counts reconstructions as fake with weight 0.5 and uses a sigmoid cross-entropy
  for L_R; we follow the paper (reconstructions are real) and the image code (squared error).
- The 2-D code also scales its data into [0, 1] (x -> (x / maxabs + 1) / 2) and ends G with a
  sigmoid. Both belong to the data set and the network, not to this loss: the Q2 benchmark sets
  them (`benchmarks/q2_dist_grid.py`, `mlp.Generator(output_activation='sigmoid')`), so lambda_p,
  lambda_r and the unit target of the penalty act at the authors' scale there.
- The 2-D code trains 500 epochs; the Q2 benchmark trains 50, where the paper reports all 25
  modes already covered (its Fig. 5a), to fit the CPU budget.

Resume: the state is the baseline's. Runs started before `--dist-gp-norm` and `--dist-recon-mean`
existed used l2 and the per-sample sum; give those values to resume them unchanged. Their
`dist_prior` / `dist_d_steps` kwargs are moved to `z_dist` / `d_steps` when the options are read
(`training.options.migrate_retired_options`, one notice).

Statistics: `Loss/dist/rec` (L_R per sample), `Loss/dist/latent_reg` (L_W), `Loss/dist/recon_real`
(the unweighted D term on reconstructions), `Loss/dist/gp` (penalty per sample, unweighted),
`Loss/G/loss` (the score distance), plus the baseline's `Loss/D/loss`, `Loss/scores/*`,
`Loss/signs/*` (the real signs also go to ADA, through `report_scores`).
"""

import math

import torch
import torch.nn.functional as F

from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix

from stylegan_plus.networks.encoders import build_encoder
from stylegan_plus.sampling.latent_steps import plugin_generator

from .base import LossOption
from .common import extra_opt_kwargs, is_point_data, run_module
from . import penalty_pass
from .phases import Phase, PhaseSpec
from .registry import register_loss
from .stylegan2 import StyleGAN2Loss

ENCODER_SEED = 0    # the encoder's own init seed: building it leaves the run's random stream alone
GP_NORMS = ('rms', 'l2')
AE_PHASE = 'AEmain'     # this plugin's own phase: the autoencoder step
# The paper's / authors' 2-D settings, the defaults with --cfg=toy. Recon weight 1 (Eq. 5): 0.05 left
# 2-12 of 25 modes uncovered in Q2.
TOY_DEFAULTS = dict(dist_lambda_r=0.1, dist_gp=0.1, dist_recon_weight=1.0)
# ... and the loop options of the authors' 2-D code (training-options keys).
TOY_LOOP_DEFAULTS = dict(z_dist='uniform', d_steps=5, lr_schedule='step:0.9:1429')

#----------------------------------------------------------------------------
# Loss terms as functions of tensors (hand-checked in tests/stylegan_plus/losses/test_loss_dist.py).

def ae_terms(phi_real, phi_rec, phi_fake, z_enc, z, recon_mean=True):
    """The AE step's two terms.

    phi_real, phi_rec: [N, ...] features of x and G(E(x)); phi_fake: [M, ...] features of G(z);
    z_enc [N, d_z] = E(x), z [M, d_z] the prior draws. Returns (L_R [N] = per-sample mean
    (`recon_mean`, the authors' code) or sum (the paper's norm) of squared feature differences,
    L_W scalar = (M(phi_rec) - M(phi_fake) - lambda_w (M(z_enc) - M(z)))^2 with
    lambda_w = sqrt(d_z / d_phi)), float32.
    """
    phi_real, phi_rec, phi_fake = (t.to(torch.float32).flatten(1) for t in (phi_real, phi_rec, phi_fake))
    squares = (phi_real - phi_rec).square()
    rec = squares.mean(dim=1) if recon_mean else squares.sum(dim=1)
    lambda_w = math.sqrt(z.shape[1] / phi_rec.shape[1])
    data_gap = phi_rec.mean() - phi_fake.mean()
    latent_gap = z_enc.to(torch.float32).mean() - z.to(torch.float32).mean()
    return rec, (data_gap - lambda_w * latent_gap).square()


def score_distance(real_logits, fake_logits):
    """|mean sigmoid(real_logits) - mean sigmoid(fake_logits)|: scalar float32 (the Dist-GAN G loss)."""
    return (torch.sigmoid(real_logits).mean() - torch.sigmoid(fake_logits).mean()).abs()


def gradient_penalty(grads, norm='rms'):
    """(n(g) - 1)^2 per sample: grads [N, ...] -> [N] float32.

    norm 'rms': n(g) = sqrt(mean of g^2 over the sample's elements) (the authors' code); 'l2':
    n(g) = ||g||_2 (WGAN-GP).
    """
    if norm not in GP_NORMS:
        raise ValueError(f'unknown Dist-GAN gradient-penalty norm {norm!r}; expected one of {", ".join(GP_NORMS)}')
    squares = grads.to(torch.float32).flatten(1).square()
    moment = squares.mean(dim=1) if norm == 'rms' else squares.sum(dim=1)
    return ((moment + 1e-12).sqrt() - 1).square()


def interpolate(real, fake, eps):
    """eps * real + (1 - eps) * fake, eps [N] in [0, 1] broadcast over the other dimensions."""
    eps = eps.reshape([-1] + [1] * (real.ndim - 1)).to(real.dtype)
    return real * eps + fake * (1 - eps)

def augment_pair(augment_pipe, a, b):
    """Augment a and b (same shape) with identical random draws; without a pipe, return them as is."""
    if augment_pipe is None:
        return a, b
    devices = [a.device] if a.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        a = augment_pipe(a)
    return a, augment_pipe(b)    # the draws of `a` again, then the stream moves on once

#----------------------------------------------------------------------------

@register_loss('dist')
class DistGANLoss(StyleGAN2Loss):
    """Dist-GAN: autoencoder step with latent-data distance, reconstructions as reals, GP, score-distance G loss.

    See the module docstring for the exact reading. Extra network: `E`. Phases: AEmain, then D's,
    then G's.
    """
    options = (
        LossOption('--dist-lambda-r', 1.0, type=float, metavar='FLOAT',
                   help='Dist-GAN: weight lambda_r of the latent-data distance in the AE step (--cfg=toy: 0.1)'),
        LossOption('--dist-recon-weight', 0.05, type=float, metavar='FLOAT',
                   help='Dist-GAN: weight of reconstructions G(E(x)) counted as real in the D loss '
                        '(authors\' image code: 0.05; the paper implies 1) (--cfg=toy: 1)'),
        LossOption('--dist-gp', 1.0, type=float, metavar='FLOAT',
                   help='Dist-GAN: gradient-penalty weight lambda_p at real/fake interpolates (--cfg=toy: 0.1)'),
        LossOption('--dist-gp-norm', 'rms', choices=GP_NORMS,
                   help='Dist-GAN: gradient norm the penalty drives to 1: rms = sqrt(mean g^2) (authors\' code), '
                        'l2 = ||g||_2 (WGAN-GP)'),
        LossOption('--dist-recon-mean', True, type=bool, metavar='BOOL',
                   help='Dist-GAN: L_R as the mean over feature dimensions (authors\' code); off = per-sample '
                        'sum (the paper\'s norm)'),
    )
    presets = {'toy': dict(loss=TOY_DEFAULTS, loop=TOY_LOOP_DEFAULTS)}

    def __init__(self, device,
                 dist_lambda_r=1.0,         # lambda_r: latent-data distance term of the AE step
                 dist_recon_weight=0.05,    # weight of D's "reconstruction is real" term
                 dist_gp=1.0,               # lambda_p: gradient-penalty weight
                 dist_gp_norm='rms',        # 'rms' (authors' code) or 'l2' (WGAN-GP)
                 dist_recon_mean=True,      # L_R: mean (authors' code) or sum over feature dimensions
                 **kwargs):                 # networks and baseline options
        super().__init__(device, **kwargs)
        for name, value in [('dist_lambda_r', dist_lambda_r), ('dist_recon_weight', dist_recon_weight),
                            ('dist_gp', dist_gp)]:
            if not value >= 0:
                raise ValueError(f'{name}={value!r} must be a number >= 0')
        if dist_gp_norm not in GP_NORMS:
            raise ValueError(f'dist_gp_norm={dist_gp_norm!r} is not supported; expected one of {", ".join(GP_NORMS)}')
        self.dist_lambda_r = float(dist_lambda_r)
        self.dist_recon_weight = float(dist_recon_weight)
        self.dist_gp = float(dist_gp)
        self.dist_gp_norm = dist_gp_norm
        self.dist_recon_mean = bool(dist_recon_mean)
        self.register_network('E', build_encoder(self.D_unwrapped, self.z_dim, seed=ENCODER_SEED).to(self.device))

    def phases(self, default_phases, opt_kwargs):
        """AEmain (E and G, own optimizer with G's settings), the D phases (main: `--d-steps` times), G's."""
        ae_phase = PhaseSpec(AE_PHASE, modules=('E', 'G'), opt='AE', opt_kwargs=extra_opt_kwargs(opt_kwargs.G))
        d_phases = [spec for spec in default_phases if 'D' in spec.modules]
        g_phases = [spec for spec in default_phases if 'D' not in spec.modules]
        return [ae_phase] + d_phases + g_phases

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase == AE_PHASE:
            self.backward_AE(real_img, real_c, gen_z, gen_c, sync=sync, gain=gain)
            return
        step = Phase.of(phase)
        if step is None or not step.is_main:    # unknown names (refused there) and Greg/Dreg: the baseline
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
        elif step.network == 'G':
            do_pl = step.is_reg and self.pl_weight != 0
            self.backward_G_score_distance(real_img, real_c, gen_z, gen_c, sync=(sync and not do_pl), gain=gain)
            if do_pl:
                self.backward_G_path_length(gen_z, gen_c, sync=sync, gain=gain)
        else:
            self.backward_D_dist(real_img, real_c, gen_z, gen_c, sync=sync, gain=gain,
                                 with_r1=(step.is_reg and self.r1_gamma != 0))

    # --- AE step ----------------------------------------------------------------------------------

    def features(self, img, c):
        """Phi(img) [N, F]: D's penultimate features of an (already augmented) batch; identity for points."""
        if is_point_data(img):
            return img
        _logits, features = self.discriminate(img, c, sync=False, return_features=True)
        return features

    def backward_AE(self, real_img, real_c, gen_z, gen_c, sync, gain):
        """L_R + lambda_r * L_W, gradients into E and G (D frozen)."""
        z_enc = run_module(self.E, sync, real_img)
        rec_img = plugin_generator(self, sync=False)(z_enc, real_c)
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync, mixing=False)
        real_view, rec_view = real_img.detach(), rec_img
        gen_view = gen_img
        if not is_point_data(real_img) and self.augment_pipe is not None:
            real_view, rec_view = augment_pair(self.augment_pipe, real_view, rec_view)
            gen_view = self.augment_pipe(gen_view)
        rec, latent_reg = ae_terms(self.features(real_view, real_c), self.features(rec_view, real_c),
                                   self.features(gen_view, gen_c), z_enc, gen_z, recon_mean=self.dist_recon_mean)
        training_stats.report('Loss/dist/rec', rec)
        training_stats.report('Loss/dist/latent_reg', latent_reg)
        (rec.mean() + self.dist_lambda_r * latent_reg).mul(gain).backward()

    # --- D step -----------------------------------------------------------------------------------

    def backward_D_dist(self, real_img, real_c, gen_z, gen_c, sync, gain, with_r1):
        """Fakes, reconstructions as reals, gradient penalty, then reals (+ R1 for Dboth)."""
        with torch.no_grad():
            gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
            rec_img = plugin_generator(self, sync=False)(run_module(self.E, False, real_img), real_c)
        gen_logits = self.decision(gen_img, gen_c, z=gen_z)
        self.report_scores('fake', gen_logits)
        loss_fake = F.softplus(gen_logits)
        rec_logits = self.decision(rec_img, real_c)
        loss_rec = F.softplus(-rec_logits)
        training_stats.report('Loss/dist/recon_real', loss_rec)
        total = loss_fake + self.dist_recon_weight * loss_rec
        if self.dist_gp != 0:
            penalty = self.penalty_at_interpolates(real_img, real_c, gen_img)
            training_stats.report('Loss/dist/gp', penalty)
            total = total + self.dist_gp * penalty.unsqueeze(1)
        total.mean().mul(gain).backward()
        self.backward_D_real(real_img, real_c, sync=sync, gain=gain, loss_fake=loss_fake.detach(), with_r1=with_r1)

    def penalty_at_interpolates(self, real_img, real_c, gen_img):
        """(n(grad D(xhat)) - 1)^2 per sample [N] (n by --dist-gp-norm), xhat between reals and fakes
        (through the augment pipe)."""
        eps = torch.rand([real_img.shape[0]], device=real_img.device)
        mixed = interpolate(real_img.detach(), gen_img.detach(), eps).requires_grad_(True)
        # Images: no backward on zeros through D's forward graph (penalty_pass.py). 2-D points keep
        # the plain pass: their D is a few tiny matrix products, nothing worth intercepting.
        with penalty_pass.without_zero_backward(enabled=not is_point_data(mixed)):
            logits = self.decision(mixed, real_c)
        with conv2d_gradfix.no_weight_gradients():
            grads = torch.autograd.grad(outputs=[logits.sum()], inputs=[mixed], create_graph=True)[0]
        return gradient_penalty(grads, self.dist_gp_norm)

    # --- G step -----------------------------------------------------------------------------------

    def backward_G_score_distance(self, real_img, real_c, gen_z, gen_c, sync, gain):
        """|mean sigmoid(D(x)) - mean sigmoid(D(G(z)))| into G (D frozen)."""
        with torch.no_grad():
            real_logits = self.decision(real_img, real_c)
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync)
        gen_logits = self.decision(gen_img, gen_c, z=gen_z)
        self.report_scores('fake', gen_logits)
        loss = score_distance(real_logits, gen_logits)
        training_stats.report('Loss/G/loss', loss)
        loss.mul(gain).backward()

#----------------------------------------------------------------------------
