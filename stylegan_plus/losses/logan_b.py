"""LOGAN-B (`--loss=logan-b`): a BiGAN (encoder E, joint D(x, z)) plus a surrogate reconstruction step.

Reading (shared/METHODS.md, paper 004):

- E: D's architecture, unconditional, output `z_dim` (`stylegan_plus.networks.encoders`); with the
  uniform prior its output goes through tanh, so E(x) lies in the prior's support [-1, 1].
- Joint discriminator D(x, z), the extra network `Dz`, trained with D by D's optimizer
  (`--loganb-fuse`):
  - `add` (auto on convolutional D's, as the authors' DCGAN) / `concat`: D's penultimate
    features h(x) (x through the augment pipe, as every D input) fused with an embedding of z
    (dense layer + leaky ReLU), then `--loganb-joint-layers` (default 1) dense + leaky ReLU
    layers, then one dense layer to the logit (plus label projection). Without the hidden layer
    the logit is f(x) + g(z), which scores every pairing of x and z alike.
  - `input` (auto on MLPs): D's MLP architecture on the concatenation [x, z], the paper's 2-D
    discriminator ((2+5)-10-10-1 in Q1).
  D itself is not used for the decision (kept in the graph with weight 0, for DDP).
- D step (Dmain/Dboth): `softplus(-D(x, E(x))) + softplus(D(G(z), z))`, i.e.
  `-log D(x, E(x)) - log(1 - D(G(z), z))`; E(x) fixed. R1 (Dreg/Dboth) is taken on D(x, E(x))
  with respect to x, E(x) fixed.
- G step (Gmain/Gboth): non-saturating `softplus(-D(G(z), z))`; with style mixing the pair's
  latent is the first z. Path length (Greg) as in the baseline.
- E step (phase `Emain`, E only, its own Adam with G's settings): `--loganb-e-loss=bigan`
  (default, the paper's sign: E makes D(x, E(x)) look fake, non-saturating form
  `softplus(D(x, E(x))) = -log(1 - D(x, E(x)))`) or `cooperative` (the authors' code: toward real,
  `softplus(-D(x, E(x)))`).
- Surrogate step (phase `Smain`, after the adversarial steps; E and G, their own Adam with G's
  settings): `L_S = ||x - G(E(x))||_1` (per-sample sum, batch mean), x un-augmented.
- Prior: `--loganb-prior=gaussian` (the project's prior) or `uniform` in [-1, 1] (the paper's 2-D
  benchmark; the default with `--cfg=toy`).
- Order per iteration: D phases, G phases, Emain, Smain.

Statistics: `Loss/logan-b/E` (E's loss per sample), `Loss/logan-b/rec` (L_S per sample), plus the
baseline's `Loss/G/loss`, `Loss/D/loss`, `Loss/r1_penalty`, `Loss/D/reg`, `Loss/scores/*`,
`Loss/signs/*` (ADA reads `Loss/signs/real`), computed with the joint D.
"""

import dataclasses

import click

import torch
import torch.nn.functional as F

from torch_utils import misc
from torch_utils import training_stats

from stylegan_plus.networks.encoders import (build_encoder, build_fusion_head, build_joint_input_discriminator,
                                             has_conv_layers)
from stylegan_plus.sampling.latent_steps import plugin_generator

from .base import LossOption
from .dist import extra_opt_kwargs, run_encoder
from .phases import PhaseSpec
from .registry import register_loss
from .stylegan2 import StyleGAN2Loss, _report_scores

E_LOSSES = ('bigan', 'cooperative')
PRIORS = ('gaussian', 'uniform')
FUSE_CHOICES = ('auto', 'add', 'concat', 'input')
ENCODER_SEED = 0    # own init seeds: building the extra networks leaves the run's random stream alone
HEAD_SEED = 1

#----------------------------------------------------------------------------
# Loss terms as functions of logits (hand-checked in tests/test_loss_loganb.py).

def e_loss(real_logits, kind):
    """E's loss on D(x, E(x)) logits [N, 1]: 'bigan' -log(1 - D), 'cooperative' -log D."""
    if kind not in E_LOSSES:
        raise ValueError(f'unknown LOGAN-B encoder loss {kind!r}; expected one of {", ".join(E_LOSSES)}')
    return F.softplus(real_logits) if kind == 'bigan' else F.softplus(-real_logits)


def l1_reconstruction(x, rec):
    """Per-sample sum of |x - rec| over all elements: [N] float32."""
    return (x.to(torch.float32) - rec.to(torch.float32)).abs().flatten(1).sum(dim=1)

#----------------------------------------------------------------------------

@register_loss('logan-b')
class LOGANBLoss(StyleGAN2Loss):
    """LOGAN-B: BiGAN encoder and joint D(x, z), plus an L1 surrogate reconstruction step for E and G.

    See the module docstring for the exact reading. Extra networks: `E` (encoder), `Dz` (the
    joint head). Phases: D's, G's, Emain, Smain.
    """
    options = (
        LossOption('--loganb-e-loss', 'bigan', choices=E_LOSSES,
                   help='LOGAN-B encoder loss: bigan = make D(x, E(x)) look fake (paper), '
                        'cooperative = toward real (authors\' code)'),
        LossOption('--loganb-prior', 'gaussian', choices=PRIORS,
                   help='LOGAN-B latent prior; uniform = U[-1, 1] with tanh on E (the paper\'s 2-D setting; '
                        'the default with --cfg=toy)'),
        LossOption('--loganb-fuse', 'auto', choices=FUSE_CHOICES,
                   help='LOGAN-B joint D: how z meets x (auto = add on conv nets, input on MLPs; add/concat: '
                        'z embedded and fused with D\'s features; input: an MLP D on [x, z], the paper\'s 2-D D)'),
        LossOption('--loganb-joint-layers', 1, type=click.IntRange(min=0),
                   help='LOGAN-B joint D: hidden dense layers after fusing x-features and z (>= 1: with 0, '
                        'D(x, z) = f(x) + g(z) cannot tell matched pairs from unmatched ones)'),
    )

    def __init__(self, device,
                 loganb_e_loss='bigan',     # 'bigan' or 'cooperative'
                 loganb_prior='gaussian',   # 'gaussian' or 'uniform' (with tanh on E)
                 loganb_fuse='auto',        # 'auto', 'add', 'concat' or 'input'
                 loganb_joint_layers=1,     # hidden layers of the joint head (0 = separable, as before)
                 **kwargs):                 # networks and baseline options
        super().__init__(device, **kwargs)
        for name, value, choices in [('loganb_e_loss', loganb_e_loss, E_LOSSES), ('loganb_prior', loganb_prior, PRIORS),
                                     ('loganb_fuse', loganb_fuse, FUSE_CHOICES)]:
            if value not in choices:
                raise ValueError(f'{name}={value!r} is not supported; expected one of {", ".join(choices)}')
        if not isinstance(loganb_joint_layers, int) or loganb_joint_layers < 0:
            raise ValueError(f'loganb_joint_layers={loganb_joint_layers!r} is not supported; expected an integer >= 0')
        self.loganb_e_loss = loganb_e_loss
        self.loganb_prior = loganb_prior
        D = self.D_unwrapped
        if loganb_fuse == 'auto':
            loganb_fuse = 'add' if has_conv_layers(D) else 'input'
        self.loganb_fuse = loganb_fuse
        self.register_network('E', build_encoder(D, self.z_dim, seed=ENCODER_SEED).to(self.device))
        if loganb_fuse == 'input':
            head = build_joint_input_discriminator(D, self.z_dim, seed=HEAD_SEED)
        else:
            head = build_fusion_head(D, self.z_dim, fuse=loganb_fuse, embed_side=True, seed=HEAD_SEED,
                                     joint_layers=loganb_joint_layers)
        self.register_network('Dz', head.to(self.device))

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        if cfg == 'toy' and 'loganb_prior' not in given:
            loss_kwargs['loganb_prior'] = 'uniform'

    def sample_z(self, n, device):
        if self.loganb_prior == 'uniform':
            return torch.rand([n, self.z_dim], device=device) * 2 - 1
        return super().sample_z(n, device)

    def phases(self, default_phases, opt_kwargs):
        """D phases (with Dz), G phases, Emain (E), Smain (E and G); E and S have G's Adam settings."""
        d_phases = [dataclasses.replace(spec, modules=(*spec.modules, 'Dz')) for spec in default_phases
                    if 'D' in spec.modules]
        g_phases = [spec for spec in default_phases if 'D' not in spec.modules]
        e_phase = PhaseSpec('Emain', modules=('E',), opt='E', opt_kwargs=extra_opt_kwargs(opt_kwargs.G))
        s_phase = PhaseSpec('Smain', modules=('G', 'E'), opt='S', opt_kwargs=extra_opt_kwargs(opt_kwargs.G))
        return d_phases + g_phases + [e_phase, s_phase]

    # --- Networks ---------------------------------------------------------------------------------

    def encode(self, img, sync):
        """E(x) [N, z_dim]; tanh-squashed into [-1, 1] with the uniform prior."""
        z = run_encoder(self, img, sync=sync)
        return torch.tanh(z) if self.loganb_prior == 'uniform' else z

    def joint_logits(self, img, c, z, sync):
        """D(x, z) logits [N, 1]: x through the augment pipe, then Dz on [x, z] ('input') or on D's features and z."""
        img = self.augment(img)
        if self.loganb_fuse == 'input':
            logits = self.discriminate(img, c, sync)
            dz_inputs = (torch.cat([img.to(torch.float32).flatten(1), z.to(torch.float32)], dim=1),)
        else:
            logits, features = self.discriminate(img, c, sync, return_features=True)
            dz_inputs = (features, z)
        with misc.ddp_sync(self.Dz, sync):
            joint = self.Dz(*dz_inputs, c)
        return joint + logits * 0

    # --- Steps ------------------------------------------------------------------------------------

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase in ('Dmain', 'Dreg', 'Dboth'):
            self.backward_D_joint(phase, real_img, real_c, gen_z, gen_c, sync=sync, gain=gain)
        elif phase in ('Gmain', 'Gboth'):
            do_pl = phase == 'Gboth' and self.pl_weight != 0
            self.backward_G_joint(gen_z, gen_c, sync=(sync and not do_pl), gain=gain)
            if do_pl:
                self.backward_G_path_length(gen_z, gen_c, sync=sync, gain=gain)
        elif phase == 'Emain':
            self.backward_E(real_img, real_c, sync=sync, gain=gain)
        elif phase == 'Smain':
            self.backward_surrogate(real_img, real_c, sync=sync, gain=gain)
        else:
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    def backward_G_joint(self, gen_z, gen_c, sync, gain):
        """softplus(-D(G(z), z)) into G."""
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync)
        self.backward_G_logits(self.joint_logits(gen_img, gen_c, gen_z, sync=False), gain)

    def backward_D_joint(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        """Fake pairs (G(z), z) and real pairs (x, E(x)); R1 on the real pairs w.r.t. x in Dreg/Dboth."""
        do_main = phase in ('Dmain', 'Dboth')
        do_r1 = phase in ('Dreg', 'Dboth') and self.r1_gamma != 0
        loss_fake = None
        if do_main:
            with torch.no_grad():
                gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
            gen_logits = self.joint_logits(gen_img, gen_c, gen_z, sync=False)
            _report_scores('fake', gen_logits)
            loss_fake = F.softplus(gen_logits)
            loss_fake.mean().mul(gain).backward()
            loss_fake = loss_fake.detach()
        if not (do_main or do_r1):
            return
        with torch.no_grad():
            z_enc = self.encode(real_img, sync=False)
        real = real_img.detach().requires_grad_(do_r1)
        real_logits = self.joint_logits(real, real_c, z_enc, sync=sync)
        self.backward_D_real_terms(real, real_logits, gain, loss_fake=loss_fake, with_r1=do_r1)

    def backward_E(self, real_img, real_c, sync, gain):
        """E's adversarial loss on D(x, E(x)) (D, Dz frozen), sign by --loganb-e-loss."""
        z_enc = self.encode(real_img, sync=sync)
        loss = e_loss(self.joint_logits(real_img.detach(), real_c, z_enc, sync=False), self.loganb_e_loss)
        training_stats.report('Loss/logan-b/E', loss)
        loss.mean().mul(gain).backward()

    def backward_surrogate(self, real_img, real_c, sync, gain):
        """||x - G(E(x))||_1 per sample (x un-augmented), into E and G."""
        rec = plugin_generator(self, sync=sync)(self.encode(real_img, sync=sync), real_c)
        loss = l1_reconstruction(real_img.detach(), rec)
        training_stats.report('Loss/logan-b/rec', loss)
        loss.mean().mul(gain).backward()

#----------------------------------------------------------------------------
