"""AdvLatGAN add-ons: `--loss=advlat-qua` (harder fakes for D) and `--loss=advlat-div` (hard pairs for G).

Both are add-ons: alone they run on the baseline (`advlat-qua` = `stylegan2+advlat-qua`), and they
combine with a main loss (`clr+advlat-qua`). Reading (docs/methods.md):

- qua: before each D step (Dmain/Dboth) the fakes' z moves by `--advlat-steps` I-FGSM steps of size
  `--advlat-eps` on the generator loss softplus(-D(G(z))) (G and D frozen; through mapping,
  synthesis, the augment pipe and D), and the main loss trains D on G(z_moved). G trains on fresh,
  unmoved z. Style mixing is off for the moved batch (during the steps, and in that D step since
  `ComposedLoss` runs a round whose latents an add-on replaced without mixing), so the moved z is
  the only latent of those fakes. The score raised is the main loss's `decision`
  (D's logit, RFGAN's fused head, LOGAN-B's joint D(G(z), z)), the one its D step trains on.
  The step itself is the shared `stylegan_plus.sampling.latent_steps.sign_descent`, also used
  by `generate.py --latent-steps`.
- div: in each G step (Gmain/Gboth), z1 = the step's z; z2 starts at z1 + N(0, std^2) and takes
  `--advlat-div-steps` sign-descent steps of size `--advlat-div-eps` on
  `d_I(G(z1), G(z2)) / (d_z(z1, z2) + 1)` (mean absolute distances over the whole batch, as in the
  authors' code); then `lambda_ms / (d_I / d_z + 1e-5)` (MSGAN's mode-seeking term) is added to
  G's loss. z1 is the first `--advlat-div-frac` of the round's latents (default half; see
  below). The pair is generated without style mixing, with constant synthesis noise (so d_I
  measures what z changes) and as one batch (BatchNorm sees both halves alike); a generator
  without BatchNorm instead runs G(z1) once, with its graph, for both the mining (detached)
  and the term, and G(z2) alone (same values as the joint batch, about half the work).
  Why half of the batch is faithful: d_I and d_z are batch means over i.i.d. prior draws, and
  the term is one scalar whose gradient scale does not depend on the pair count, so a subset
  estimates the same ratio (with more variance); the authors' code pairs B = 32 latents, and
  with the presets' batch of 64 half the batch is those 32 pairs, at half the mining cost.
  `--advlat-div-frac=1` pairs every latent.
  `--advlat-div-dpair=1` also trains D on G(z2) of a pair mined from the D step's z, as the
  authors' code does; the paper's algorithm does not (default off).

Toy defaults: with `--cfg=toy` (2-D points, z_dim 2) `advlat-qua` defaults to `--advlat-eps=0.3
--advlat-steps=5` unless given (`presets`). The image default (one step of 0.03,
the authors' CIFAR DCGAN config) barely moves a 2-D N(0, I) latent, and trained worse than no
`-qua` on the Q3 ring and grid. The Q3 grid sweep at the paper's length with the appendix's ReLU
MLPs, the authors' linear rate decay and G batch (eps 0.1 / 0.3 x 3 / 5 steps, seeds 0-2) gave
0.3 x 5 the lowest median distance to a centre, which then held on new seeds
(docs/results_toy.md Q3).

Neither touches the mapping network's `w_avg` or G's BatchNorm running statistics while mining
(`latent_steps.plugin_generator`; only the main loss's passes update them). The main loss's D-step
pass on the moved z does update them: the moved z stay within `steps * eps` of prior draws.

Statistics: `Loss/advlat/qua_logits_start` (D logits of the fakes before the steps),
`Loss/advlat/div_ratio` (d_I / d_z of the mined pair), `Loss/advlat/div_ms` (the weighted
mode-seeking term), `Loss/advlat/div_D_pair` (D's loss on G(z2), with dpair).
"""

import torch
import torch.nn.functional as F

from torch_utils import training_stats
from stylegan_plus.sampling import latent_steps

from .base import LossAddon, LossOption
from .common import mean_abs_distance
from .phases import Phase
from .registry import register_loss

MS_EPS = 1e-5           # MSGAN: 1 / (d_I / d_z + 1e-5)
MINING_DZ_OFFSET = 1.0  # authors' pair-mining objective: d_I / (d_z + 1)
QUA_TOY_DEFAULTS = dict(advlat_eps=0.3, advlat_steps=5)   # --cfg=toy: Q3's sweep (module docstring)


def pair_mining_objective(img1, img2, z1, z2):
    """What the pair mining lowers: d_I(img1, img2) / (d_z(z1, z2) + 1), a scalar tensor."""
    return mean_abs_distance(img1, img2) / (mean_abs_distance(z1, z2) + MINING_DZ_OFFSET)


def mode_seeking_loss(img1, img2, z1, z2, weight):
    """MSGAN's term weight / (d_I / d_z + 1e-5), and the ratio d_I / d_z; both scalar tensors."""
    ratio = mean_abs_distance(img1, img2) / mean_abs_distance(z1, z2)
    return weight / (ratio + MS_EPS), ratio


@register_loss('advlat-qua')
class AdvLatQuaLoss(LossAddon):
    """AdvLatGAN-qua: D trains on fakes whose z took I-FGSM steps toward higher D scores.

    Options --advlat-eps (step size) and --advlat-steps (steps per D step); `--cfg=toy` defaults to
    0.3 and 5 (`QUA_TOY_DEFAULTS`). See the module docstring.
    """
    options = (
        LossOption('--advlat-eps', 0.03, type=float, metavar='FLOAT',
                   help='AdvLatGAN-qua: I-FGSM step size on z before each D step (--cfg=toy: 0.3)'),
        LossOption('--advlat-steps', 1, type=int, metavar='INT',
                   help='AdvLatGAN-qua: I-FGSM steps on z before each D step (--cfg=toy: 5)'),
    )
    presets = {'toy': dict(loss=QUA_TOY_DEFAULTS)}

    def __init__(self, device,
                 advlat_eps=0.03,       # I-FGSM step size
                 advlat_steps=1,        # I-FGSM steps per D step
                 **networks):
        super().__init__(device, **networks)
        if not advlat_eps >= 0 or int(advlat_steps) != advlat_steps or advlat_steps < 0:
            raise ValueError(f'advlat_eps must be >= 0 and advlat_steps an integer >= 0, '
                             f'got {advlat_eps!r} and {advlat_steps!r}')
        self.advlat_eps = float(advlat_eps)
        self.advlat_steps = int(advlat_steps)

    def move_latents(self, gen_z, gen_c):
        """gen_z [N, z_dim] after the I-FGSM steps (detached); reports Loss/advlat/qua_logits_start.

        The steps raise the main loss's own decision (`decision(img, c, z)`: LOGAN-B's joint
        D(G(z), z), RFGAN's fused head, else D), the score its D step then trains on.
        """
        seen_logits = []

        def decision(img, c, z):
            logits = self.main.decision(img, c, z=z, sync=False)
            seen_logits.append(logits.detach())
            return logits
        moved = latent_steps.mine_latents_by_decision(gen_z, gen_c, latent_steps.plugin_generator(self), decision,
                                                      eps=self.advlat_eps, steps=self.advlat_steps)
        training_stats.report('Loss/advlat/qua_logits_start', seen_logits[0] if seen_logits else [])
        return moved

    def transform_fakes(self, phase, gen_z, gen_c, sync):
        if phase not in Phase.mains('D'):
            return gen_z, gen_c
        return self.move_latents(gen_z, gen_c), gen_c


@register_loss('advlat-div')
class AdvLatDivLoss(LossAddon):
    """AdvLatGAN-div: MSGAN's mode-seeking term on hard latent pairs mined by I-FGSM.

    Options --advlat-div-lambda, --advlat-div-std, --advlat-div-eps, --advlat-div-steps,
    --advlat-div-dpair. See the module docstring.
    """
    options = (
        LossOption('--advlat-div-lambda', 1.0, type=float, metavar='FLOAT',
                   help='AdvLatGAN-div: weight lambda_ms of the mode-seeking term in the G loss'),
        LossOption('--advlat-div-std', 0.08, type=float, metavar='FLOAT',
                   help='AdvLatGAN-div: std of the Gaussian start z2 = z1 + N(0, std^2) of the pair mining'),
        LossOption('--advlat-div-eps', 0.004, type=float, metavar='FLOAT',
                   help='AdvLatGAN-div: sign-descent step size of the pair mining'),
        LossOption('--advlat-div-steps', 3, type=int, metavar='INT',
                   help='AdvLatGAN-div: sign-descent steps of the pair mining'),
        LossOption('--advlat-div-dpair', False, type=bool, metavar='BOOL',
                   help='AdvLatGAN-div: also train D on G(z2) (authors\' code); off = the paper\'s algorithm'),
        LossOption('--advlat-div-frac', 0.5, type=float, metavar='FLOAT',
                   help='AdvLatGAN-div: fraction of the G step\'s latents paired for the mode-seeking term '
                        '(0.5 = 32 pairs at batch 64, the authors\' pair count; 1 = all)'),
    )

    def __init__(self, device,
                 advlat_div_lambda=1.0,     # lambda_ms
                 advlat_div_std=0.08,       # start of z2 around z1
                 advlat_div_eps=0.004,      # mining step size
                 advlat_div_steps=3,        # mining steps
                 advlat_div_dpair=False,    # D also trains on G(z2)
                 advlat_div_frac=0.5,       # share of the G step's latents that get a partner
                 **networks):
        super().__init__(device, **networks)
        if not advlat_div_std >= 0 or not advlat_div_eps >= 0 or int(advlat_div_steps) != advlat_div_steps \
                or advlat_div_steps < 0:
            raise ValueError(f'advlat-div needs std >= 0, eps >= 0 and an integer steps >= 0, got '
                             f'{advlat_div_std!r}, {advlat_div_eps!r}, {advlat_div_steps!r}')
        self.advlat_div_lambda = float(advlat_div_lambda)
        self.advlat_div_std = float(advlat_div_std)
        self.advlat_div_eps = float(advlat_div_eps)
        self.advlat_div_steps = int(advlat_div_steps)
        self.advlat_div_dpair = bool(advlat_div_dpair)
        if not 0 < advlat_div_frac <= 1:
            raise ValueError(f'advlat-div needs 0 < frac <= 1 (the share of latents paired), got {advlat_div_frac!r}')
        self.advlat_div_frac = float(advlat_div_frac)
        self._batchnorms = latent_steps.batchnorm_layers(self.G, self.G_mapping, self.G_synthesis)

    def generate_pair(self, z1, z2, c, sync=False):
        """(G(z1), G(z2)) from one batch, without mixing, with constant noise. z1, z2: [N, z_dim]."""
        generator = latent_steps.plugin_generator(self, sync=sync, noise_mode='const')
        images = generator(torch.cat([z1, z2]), torch.cat([c, c]))
        return images[:z1.shape[0]], images[z1.shape[0]:]

    def mine_pair(self, z1, c, start=None, img1=None):
        """The hard partner z2 [N, z_dim] of z1 (detached), G frozen.

        start: z2's starting point (default z1 + N(0, std^2)); then sign descent on
        `pair_mining_objective`, moving each element by exactly eps per step. img1: G(z1) with
        constant noise if the caller has it (only used when G has no batch-dependent layer).
        """
        z1 = z1.detach()
        if start is None:
            start = z1 + self.advlat_div_std * torch.randn_like(z1)
        if self.advlat_div_steps == 0:
            return start.detach()
        if not self._separable_pair():
            def objective(z2):
                img1, img2 = self.generate_pair(z1, z2, c)
                return pair_mining_objective(img1.detach(), img2, z1, z2)
        else:
            # G(z1) does not change during the steps and no layer mixes samples: generate it once
            # and only G(z2) per step (same values as the joint batch, about half the work).
            generator = latent_steps.plugin_generator(self, noise_mode='const')
            if img1 is None:
                with torch.no_grad():
                    img1 = generator(z1, c)
            img1 = img1.detach()

            def objective(z2):
                return pair_mining_objective(img1, generator(z2, c), z1, z2)
        return latent_steps.sign_descent(start, objective, self.advlat_div_eps, self.advlat_div_steps)

    def _batch_dependent_generator(self):
        """True if G has layers whose output depends on the rest of the batch (BatchNorm in training)."""
        return any(m.training for m in self._batchnorms)

    def _separable_pair(self):
        """True if G(z1) and G(z2) may run as two passes: no batch-dependent layer, no DDP wrapper
        (which expects one forward pass per synced backward)."""
        wrapped = any(isinstance(net, torch.nn.parallel.DistributedDataParallel)
                      for net in (self.G, self.G_mapping, self.G_synthesis))
        return not wrapped and not self._batch_dependent_generator()

    def num_pairs(self, batch):
        """How many of a round's `batch` latents get a mined partner: round(frac * batch), at least 1."""
        return min(batch, max(1, int(round(self.advlat_div_frac * batch))))

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase in Phase.mains('G'):
            self.backward_mode_seeking(gen_z, gen_c, sync=sync, gain=gain)
        elif phase in Phase.mains('D') and self.advlat_div_dpair:
            self.backward_D_pair(gen_z, gen_c, sync=sync, gain=gain)

    def backward_mode_seeking(self, gen_z, gen_c, sync, gain, start=None):
        """Add lambda_ms / (d_I / d_z + 1e-5) on mined pairs to G's gradients; returns the term (detached).

        The pairs start from the first `num_pairs(N)` latents of gen_z [N, z_dim] (i.i.d. draws,
        so any subset is a random one); start: z2's starting point for those, [n, z_dim].
        """
        n = self.num_pairs(gen_z.shape[0])
        z1, c = gen_z[:n].detach(), gen_c[:n]
        if start is not None:
            start = start[:n]
        if self._separable_pair():
            # One pass of G(z1) with its graph serves both the mining (detached) and the term.
            generator = latent_steps.plugin_generator(self, sync=sync, noise_mode='const')
            img1 = generator(z1, c)
            z2 = self.mine_pair(z1, c, start=start, img1=img1)
            img2 = generator(z2, c)
        else:
            z2 = self.mine_pair(z1, c, start=start)
            img1, img2 = self.generate_pair(z1, z2, c, sync=sync)
        loss, ratio = mode_seeking_loss(img1, img2, z1, z2, self.advlat_div_lambda)
        training_stats.report('Loss/advlat/div_ratio', ratio)
        training_stats.report('Loss/advlat/div_ms', loss)
        loss.mul(gain).backward()
        return loss.detach()

    def backward_D_pair(self, gen_z, gen_c, sync, gain, start=None):
        """dpair: D's fake loss softplus(D(G(z2))) on the mined partners of the D step's z.

        D is the main loss's `decision` (RFGAN's fused head, LOGAN-B's joint D(G(z2), z2)), the
        score its own D step trains on.
        """
        z2 = self.mine_pair(gen_z, gen_c, start=start)
        with torch.no_grad():
            img2 = latent_steps.plugin_generator(self)(z2, gen_c)  # the D step's usual synthesis noise
        loss = F.softplus(self.main.decision(img2, gen_c, z=z2, sync=sync))
        training_stats.report('Loss/advlat/div_D_pair', loss)
        loss.mean().mul(gain).backward()
        return loss.detach()
