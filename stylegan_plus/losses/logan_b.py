"""LOGAN-B (`--loss=logan-b`): a BiGAN (encoder E, joint D(x, z)) plus a surrogate reconstruction step.

Reading (docs/methods.md, paper 004 and the authors' notebooks; the paper is a short course
report, so where it is silent the notebooks decide):

- E: D's architecture, unconditional, output `z_dim` (`stylegan_plus.networks.encoders`); with the
  uniform prior (`--z-dist=uniform`) its output goes through tanh, so E(x) lies in the prior's
  support [-1, 1].
- Joint discriminator D(x, z), the extra network `Dz`, trained with D by D's optimizer
  (`--loganb-fuse`):
  - `add` (auto on convolutional D's, as the authors' DCGAN) / `concat`: D's penultimate
    features h(x) (x through the augment pipe, as every D input) fused with an embedding of z
    (dense layer + leaky ReLU), then `--loganb-joint-layers` (default 1) dense + leaky ReLU
    layers, then one dense layer to the logit (plus label projection). Without the hidden layer
    the logit is f(x) + g(z), which scores every pairing of x and z alike.
  - `input` (auto on MLPs): D's MLP architecture on the concatenation [x, z], the paper's 2-D
    discriminator ((2+5)-10-10-1 in Q1).
  D's own output layer is not used for the decision (kept in the graph with weight 0, for DDP);
  `decision(img, c, z)` is the joint logit, and latent mining (`+advlat-qua`) steers by it.
- D step (Dmain/Dboth): `softplus(-D(x, E(x))) + softplus(D(G(z), z))`, i.e.
  `-log D(x, E(x)) - log(1 - D(G(z), z))`; E(x) fixed. R1 (Dreg/Dboth) is taken on D(x, E(x))
  with respect to x, E(x) fixed.
- G step (Gmain/Gboth), `--loganb-saturating`: on, the paper's Eq. 5 and the 2-D notebook,
  G minimises `log(1 - D(G(z), z)) = -softplus(D(G(z), z))`; off, the non-saturating
  `softplus(-D(G(z), z))` of the authors' image notebooks. Default off, on with `--cfg=toy`.
  With style mixing the pair's latent is the first z. Path length (Greg) as in the baseline.
- E step (phase `Emain`): `--loganb-e-loss=bigan` (default, the paper's sign: E makes D(x, E(x))
  look fake; `softplus(D(x, E(x))) = -log(1 - D)`, or with `--loganb-saturating` Eq. 6's
  `log D(x, E(x)) = -softplus(-D(x, E(x)))`) or `cooperative` (the authors' code: toward real,
  `softplus(-D(x, E(x)))` in both settings, as the notebooks' BCE with target 1).
- Surrogate step (phase `Smain`, after the adversarial steps, E and G): the L1 distance between
  x (un-augmented) and G(E(x)), through `plugin_generator` (no style mixing, BatchNorm running
  statistics and w_avg untouched: E(x) is not a prior draw).
  - `--loganb-surrogate-reduce=sum` (default, both notebooks: `L1Loss(reduction='sum')` over the
    batch) or `mean` (per-sample sum, batch mean: the paper's expectation E_x).
  - `--loganb-surrogate-opt=shared` (default, the notebooks: the surrogate is stepped by the same
    Adam moments as G's and E's adversarial losses; with the batch sum its gradients dominate
    them, so G and E train largely as an autoencoder, which is what produced the paper's numbers)
    or `own` (a separate Adam `S` with G's settings, the earlier reading). Shared is implemented
    as one optimizer over G and E, key `G`, used by every G phase, Emain and Smain: Adam keeps
    per-parameter moments and skips parameters without a gradient, so this equals the notebooks'
    two optimizers stepped in turn.
  - `--loganb-surrogate-skip=N`: leave the step out on every N-th iteration (the 2-D notebook's
    `idx % 5 != 0`, i.e. 4 of 5 batches: N = 5, the default with `--cfg=toy`; 0 = every
    iteration, the image notebooks).
- Prior: the loop's `--z-dist`; this plugin sets `uniform` (U[-1, 1], the paper's) on `--cfg=toy`
  unless `--z-dist` is given, and leaves the loop's `normal` elsewhere.
- Order per iteration: D phases, G phases, Emain, Smain (the notebooks' D, G, E, surrogate).

Deviations kept, and why:
- The prior is N(0, I) on images, as the official presets the other losses are compared with;
  `--z-dist=uniform` gives the paper's (every snapshot records it, and generate.py and the
  metrics draw from it).
- The batch sum is over one accumulation round (`--batch-gpu` samples, the whole batch when there
  is one round, as in every benchmark); the loop averages rounds.
- The skip counter runs over the whole run; the notebook restarts it every epoch (79 batches).
- In the shared mode on StyleGAN2 configs E uses G's lazily adjusted Adam settings (lr and betas
  scaled by 4/5 for path-length phases); the notebooks use one setting for all.
- The joint D on images fuses z with D's penultimate feature vector rather than the 4x4 maps.

Resume: training states written before the surrogate options existed have optimizers `G` (G
only), `E` and `S`; with `--loganb-surrogate-opt=shared` they no longer fit and start fresh (the
loop says so). `--loganb-surrogate-opt=own --loganb-surrogate-reduce=mean --loganb-surrogate-skip=0
--loganb-saturating=0` is the earlier behaviour and resumes them exactly. Their `loganb_prior`
kwarg is moved to `z_dist` when the options are read (one notice).

Statistics: `Loss/logan-b/E` (E's loss per sample), `Loss/logan-b/rec` (the L1 sum per sample, empty
on skipped iterations), plus the baseline's `Loss/G/loss` (the loss G minimises, per sample),
`Loss/D/loss`, `Loss/r1_penalty`, `Loss/D/reg`, `Loss/scores/*`, `Loss/signs/*` (ADA gets the
signs of D(x, E(x))), computed with the joint D.
"""

import dataclasses

import torch
import torch.nn.functional as F

from torch_utils import misc
from torch_utils import training_stats

from stylegan_plus.networks.encoders import (build_encoder, build_fusion_head, build_joint_input_discriminator,
                                             has_conv_layers)
from stylegan_plus.sampling.decisions import joint_pair_logits
from stylegan_plus.sampling.latent_steps import plugin_generator

from .base import LossOption
from .common import extra_opt_kwargs, run_module, sample_distance
from .phases import Phase, PhaseSpec
from .registry import register_loss
from .stylegan2 import StyleGAN2Loss

E_LOSSES = ('bigan', 'cooperative')
FUSE_CHOICES = ('auto', 'add', 'concat', 'input')
SURROGATE_OPTS = ('shared', 'own')
REDUCTIONS = ('sum', 'mean')
TOY_DEFAULTS = dict(loganb_saturating=True, loganb_surrogate_skip=5)  # the 2-D notebook
TOY_LOOP_DEFAULTS = dict(z_dist='uniform')  # ... and its prior (a loop option)
ENCODER_SEED = 0    # own init seeds: building the extra networks leaves the run's random stream alone
HEAD_SEED = 1
E_PHASE = 'Emain'   # this plugin's own phases: the encoder's adversarial step and the surrogate step
S_PHASE = 'Smain'

#----------------------------------------------------------------------------
# Loss terms as functions of logits (hand-checked in tests/stylegan_plus/losses/test_loss_loganb.py).

def e_loss(real_logits, kind, saturating=False):
    """E's loss on D(x, E(x)) logits [N, 1].

    'bigan': -log(1 - D), or log D with `saturating` (Eq. 6); 'cooperative': -log D (the notebooks).
    """
    if kind not in E_LOSSES:
        raise ValueError(f'unknown LOGAN-B encoder loss {kind!r}; expected one of {", ".join(E_LOSSES)}')
    if kind == 'cooperative':
        return F.softplus(-real_logits)
    return -F.softplus(-real_logits) if saturating else F.softplus(real_logits)


def g_loss(fake_logits, saturating):
    """G's loss on D(G(z), z) logits [N, 1]: log(1 - D) (saturating, Eq. 5) or -log D."""
    return -F.softplus(fake_logits) if saturating else F.softplus(-fake_logits)


def surrogate_due(done, skip):
    """Whether the surrogate step runs after `done` earlier iterations: not on every `skip`-th (0: always)."""
    return skip == 0 or done % skip != 0

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
        LossOption('--loganb-fuse', 'auto', choices=FUSE_CHOICES,
                   help='LOGAN-B joint D: how z meets x (auto = add on conv nets, input on MLPs; add/concat: '
                        'z embedded and fused with D\'s features; input: an MLP D on [x, z], the paper\'s 2-D D)'),
        LossOption('--loganb-joint-layers', 1, type=int, min=0,
                   help='LOGAN-B joint D: hidden dense layers after fusing x-features and z (>= 1: with 0, '
                        'D(x, z) = f(x) + g(z) cannot tell matched pairs from unmatched ones)'),
        LossOption('--loganb-saturating', False, type=bool, metavar='BOOL',
                   help='LOGAN-B: saturating losses, G minimises log(1 - D(G(z), z)) (Eq. 5, 2-D notebook) and a '
                        'bigan E log D(x, E(x)) (Eq. 6); off = non-saturating (image notebooks) (--cfg=toy: on)'),
        LossOption('--loganb-surrogate-opt', 'shared', choices=SURROGATE_OPTS,
                   help='LOGAN-B surrogate step optimizer: shared = G\'s and E\'s own Adam (the notebooks), '
                        'own = a separate Adam'),
        LossOption('--loganb-surrogate-reduce', 'sum', choices=REDUCTIONS,
                   help='LOGAN-B surrogate L1: sum over the batch (the notebooks) or per-sample sum, batch mean '
                        '(the paper\'s expectation)'),
        LossOption('--loganb-surrogate-skip', 0, type=int, min=0, metavar='INT',
                   help='LOGAN-B: leave the surrogate step out on every N-th iteration (2-D notebook: 5, i.e. '
                        '4 of 5 batches; 0 = every iteration, the image notebooks) (--cfg=toy: 5)'),
    )
    state_attrs = StyleGAN2Loss.state_attrs + ('loganb_surrogate_iters',)
    presets = {'toy': dict(loss=TOY_DEFAULTS, loop=TOY_LOOP_DEFAULTS)}

    def __init__(self, device,
                 loganb_e_loss='bigan',             # 'bigan' or 'cooperative'
                 loganb_fuse='auto',                # 'auto', 'add', 'concat' or 'input'
                 loganb_joint_layers=1,             # hidden layers of the joint head (0 = separable)
                 loganb_saturating=False,           # saturating G (and bigan E) losses
                 loganb_surrogate_opt='shared',     # 'shared' (G's and E's Adam) or 'own'
                 loganb_surrogate_reduce='sum',     # 'sum' over the batch or per-sample 'mean'
                 loganb_surrogate_skip=0,           # skip the surrogate on every N-th iteration (0 = never)
                 **kwargs):                         # networks and baseline options
        super().__init__(device, **kwargs)
        for name, value, choices in [('loganb_e_loss', loganb_e_loss, E_LOSSES),
                                     ('loganb_fuse', loganb_fuse, FUSE_CHOICES),
                                     ('loganb_surrogate_opt', loganb_surrogate_opt, SURROGATE_OPTS),
                                     ('loganb_surrogate_reduce', loganb_surrogate_reduce, REDUCTIONS)]:
            if value not in choices:
                raise ValueError(f'{name}={value!r} is not supported; expected one of {", ".join(choices)}')
        for name, value in [('loganb_joint_layers', loganb_joint_layers),
                            ('loganb_surrogate_skip', loganb_surrogate_skip)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f'{name}={value!r} is not supported; expected an integer >= 0')
        self.loganb_e_loss = loganb_e_loss
        self.loganb_saturating = bool(loganb_saturating)
        self.loganb_surrogate_opt = loganb_surrogate_opt
        self.loganb_surrogate_reduce = loganb_surrogate_reduce
        self.loganb_surrogate_skip = loganb_surrogate_skip
        self.loganb_surrogate_iters = torch.zeros([], dtype=torch.int64, device=self.device)  # Smain executions
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

    def phases(self, default_phases, opt_kwargs):
        """D phases (with Dz), G phases, Emain (E), Smain (E and G).

        shared: G's optimizer (key `G`, G's phase settings) covers G and E and serves every G
        phase, Emain and Smain. own: Emain and Smain have their own Adams `E` and `S` with G's settings.
        """
        d_phases = [dataclasses.replace(spec, modules=(*spec.modules, 'Dz')) for spec in default_phases
                    if 'D' in spec.modules]
        g_phases = [spec for spec in default_phases if 'D' not in spec.modules]
        if self.loganb_surrogate_opt == 'own':
            e_phase = PhaseSpec(E_PHASE, modules=('E',), opt='E', opt_kwargs=extra_opt_kwargs(opt_kwargs.G))
            s_phase = PhaseSpec(S_PHASE, modules=('G', 'E'), opt='S', opt_kwargs=extra_opt_kwargs(opt_kwargs.G))
            return d_phases + g_phases + [e_phase, s_phase]
        shared = ('G', 'E')
        g_phases = [dataclasses.replace(spec, modules=shared) for spec in g_phases]
        kwargs = g_phases[0].opt_kwargs
        return d_phases + g_phases + [PhaseSpec(E_PHASE, modules=shared, opt=g_phases[0].opt, opt_kwargs=kwargs),
                                      PhaseSpec(S_PHASE, modules=shared, opt=g_phases[0].opt, opt_kwargs=kwargs)]

    def load_state_dict(self, state):
        # States saved before the surrogate schedule existed lack its counter: start it at 0.
        state = dict(state)
        state.setdefault('loganb_surrogate_iters', torch.zeros([], dtype=torch.int64))
        super().load_state_dict(state)

    # --- Networks ---------------------------------------------------------------------------------

    def encode(self, img, sync):
        """E(x) [N, z_dim]; tanh-squashed into [-1, 1] with the uniform prior (the run's `z_dist`)."""
        z = run_module(self.E, sync, img)
        return torch.tanh(z) if self.z_dist == 'uniform' else z

    def decision(self, img, c, z=None, sync=False):
        """The joint logit D(x, z) [N, 1]: what D trains on, so what latent mining raises. z is required.

        x goes through the augment pipe, then Dz judges [x, z] ('input') or D's features and z; D's
        own output stays in the graph at weight 0.
        """
        if z is None:
            raise ValueError('LOGAN-B\'s D judges pairs (x, z): its decision needs the latent z paired with img')
        img = self.augment(img)
        with misc.ddp_sync(self.D, sync), misc.ddp_sync(self.Dz, sync):
            joint, d_logits = joint_pair_logits(self.D, self.Dz, img, c, z, on_features=(self.loganb_fuse != 'input'))
        return joint + d_logits * 0

    # --- Steps ------------------------------------------------------------------------------------

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        step = Phase.of(phase)
        if phase == E_PHASE:
            self.backward_E(real_img, real_c, sync=sync, gain=gain)
        elif phase == S_PHASE:
            self.backward_surrogate(real_img, real_c, sync=sync, gain=gain)
        elif step is not None and step.network == 'D':
            self.backward_D_joint(step, real_img, real_c, gen_z, gen_c, sync=sync, gain=gain)
        elif step is not None and step.is_main:
            do_pl = step.is_reg and self.pl_weight != 0
            self.backward_G_joint(gen_z, gen_c, sync=(sync and not do_pl), gain=gain)
            if do_pl:
                self.backward_G_path_length(gen_z, gen_c, sync=sync, gain=gain)
        else:   # Greg (path length) and unknown names (refused there): the baseline
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    def backward_G_joint(self, gen_z, gen_c, sync, gain):
        """G's adversarial loss on D(G(z), z) (`g_loss`, saturating by --loganb-saturating) into G."""
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync)
        gen_logits = self.decision(gen_img, gen_c, z=gen_z)
        self.report_scores('fake', gen_logits)
        loss = g_loss(gen_logits, self.loganb_saturating)
        training_stats.report('Loss/G/loss', loss)
        loss.mean().mul(gain).backward()

    def backward_D_joint(self, step, real_img, real_c, gen_z, gen_c, sync, gain):
        """Fake pairs (G(z), z) and real pairs (x, E(x)); R1 on the real pairs w.r.t. x in Dreg/Dboth.

        step: the D `Phase`.
        """
        do_main = step.is_main
        do_r1 = step.is_reg and self.r1_gamma != 0
        loss_fake = None
        if do_main:
            with torch.no_grad():
                gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
            gen_logits = self.decision(gen_img, gen_c, z=gen_z)
            self.report_scores('fake', gen_logits)
            loss_fake = F.softplus(gen_logits)
            loss_fake.mean().mul(gain).backward()
            loss_fake = loss_fake.detach()
        if not (do_main or do_r1):
            return
        with torch.no_grad():
            z_enc = self.encode(real_img, sync=False)
        real = real_img.detach().requires_grad_(do_r1)
        real_logits = self.decision(real, real_c, z=z_enc, sync=sync)
        self.backward_D_real_terms(real, real_logits, gain, loss_fake=loss_fake, with_r1=do_r1)

    def backward_E(self, real_img, real_c, sync, gain):
        """E's adversarial loss on D(x, E(x)) (D, Dz frozen), sign by --loganb-e-loss."""
        z_enc = self.encode(real_img, sync=sync)
        loss = e_loss(self.decision(real_img.detach(), real_c, z=z_enc), self.loganb_e_loss,
                      saturating=self.loganb_saturating)
        training_stats.report('Loss/logan-b/E', loss)
        loss.mean().mul(gain).backward()

    def backward_surrogate(self, real_img, real_c, sync, gain):
        """||x - G(E(x))||_1 (x un-augmented) into E and G, summed or averaged over the round; may be skipped."""
        due = surrogate_due(int(self.loganb_surrogate_iters), self.loganb_surrogate_skip)
        if sync:    # the last round of this execution: the next one is a new iteration
            self.loganb_surrogate_iters += 1
        if not due:
            training_stats.report('Loss/logan-b/rec', [])
            return
        rec = plugin_generator(self, sync=sync)(self.encode(real_img, sync=sync), real_c)
        loss = sample_distance(real_img.detach(), rec, 'l1')
        training_stats.report('Loss/logan-b/rec', loss)
        total = loss.sum() if self.loganb_surrogate_reduce == 'sum' else loss.mean()
        total.mul(gain).backward()

#----------------------------------------------------------------------------
