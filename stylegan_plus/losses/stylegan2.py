"""The baseline: StyleGAN2-ADA's loss (non-saturating logistic, R1, path length, style mixing).

Reachable as `training.loss.StyleGAN2Loss` (the official class name in option files) and as
`--loss=stylegan2`. Works with generators without a mapping/synthesis split (DCGAN, MLP): style
mixing and path-length regularisation need the split, so they are switched off there.

A framework class (docs/plugins.md): plugins built on it override only the plugin hooks and call
its steps (`backward_G_main`, `backward_G_path_length`, `backward_D_fake`, `backward_D_real`,
`backward_D_real_terms`) as building blocks. Its logits come from `decision`, so a plugin that
changes D's decision (RFGAN) gets the baseline's losses on that decision.
"""

import math

import torch
import torch.nn.functional as F

from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix

from .base import BASE_OPTIONS, LossPlugin
from .phases import Phase
from .registry import register_loss

@register_loss('stylegan2', class_name='training.loss.StyleGAN2Loss')
class StyleGAN2Loss(LossPlugin, framework=True):
    """StyleGAN2-ADA baseline: non-saturating logistic loss, lazy R1, path length, style mixing.

    The six official phases (`Phase`); statistics under the official names (`Loss/G/loss`,
    `Loss/D/reg`, ...). State: `pl_mean`, the running mean of path lengths.
    """
    base_options = BASE_OPTIONS
    state_attrs = ('pl_mean',)

    def __init__(self, device, G_mapping=None, G_synthesis=None, D=None, augment_pipe=None,
                 style_mixing_prob=0.9,     # probability of mixing two latents in run_G
                 r1_gamma=10,               # R1 weight (times 1/2); 0 = off
                 pl_batch_shrink=2,         # path length uses batch // this
                 pl_decay=0.01,             # EMA rate of pl_mean
                 pl_weight=2,               # path-length weight; 0 = off
                 G=None):                   # whole generator, for networks without mapping/synthesis
        super().__init__(device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe, G=G)
        if not self.has_mapping and (pl_weight != 0 or style_mixing_prob != 0):
            print(f'StyleGAN2Loss: the generator has no mapping/synthesis split, so path-length '
                  f'regularisation (pl_weight={pl_weight}) and style mixing '
                  f'(style_mixing_prob={style_mixing_prob}) are off.')
            pl_weight = 0
            style_mixing_prob = 0
        self.style_mixing_prob = style_mixing_prob
        self.r1_gamma = r1_gamma
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_weight = pl_weight
        self.pl_mean = torch.zeros([], device=self.device)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        step = Phase.of(phase)
        if step is None:
            raise ValueError(f'{type(self).__name__}: unknown phase {phase!r}; expected one of '
                             f'{", ".join(p.value for p in Phase)}')
        if step.network == 'G':
            with_path_length = step.is_reg and self.pl_weight != 0
            if step.is_main:
                # When path length follows in this round, it does the DDP sync instead.
                self.backward_G_main(gen_z, gen_c, sync=(sync and not with_path_length), gain=gain)
            if with_path_length:
                self.backward_G_path_length(gen_z, gen_c, sync=sync, gain=gain)
            return
        with_r1 = step.is_reg and self.r1_gamma != 0
        loss_fake = self.backward_D_fake(gen_z, gen_c, gain=gain) if step.is_main else None
        if step.is_main or with_r1:     # one real pass serves the loss and R1 (Dboth)
            self.backward_D_real(real_img, real_c, sync=sync, gain=gain, loss_fake=loss_fake, with_r1=with_r1)

    def backward_G_main(self, gen_z, gen_c, sync, gain):
        """Non-saturating G loss softplus(-D(G(z))); returns the per-sample loss [N, 1] (detached)."""
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync)
        return self.backward_G_logits(self.decision(gen_img, gen_c, z=gen_z), gain)

    def backward_G_logits(self, gen_logits, gain):
        """The non-saturating G loss on D's logits [N, 1] for fakes: reported, backpropagated, returned (detached)."""
        self.report_scores('fake', gen_logits)
        loss = F.softplus(-gen_logits)
        training_stats.report('Loss/G/loss', loss)
        loss.mean().mul(gain).backward()
        return loss.detach()

    def backward_G_path_length(self, gen_z, gen_c, sync, gain):
        """Path-length penalty on batch N // pl_batch_shrink; updates `pl_mean`."""
        n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        gen_img, gen_ws = self.run_G(gen_z[:n], gen_c[:n], sync=sync)
        # Random image-space direction, scaled so the expected length does not depend on resolution.
        pl_noise = torch.randn_like(gen_img) / math.sqrt(gen_img.shape[2] * gen_img.shape[3])
        with conv2d_gradfix.no_weight_gradients():
            pl_grads = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True)[0]
        pl_lengths = pl_grads.square().sum(dim=2).mean(dim=1).sqrt()
        # The penalty uses the freshly updated mean, still attached to this batch's lengths.
        pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        pl_penalty = (pl_lengths - pl_mean).square()
        training_stats.report('Loss/pl_penalty', pl_penalty)
        loss = pl_penalty * self.pl_weight
        training_stats.report('Loss/G/reg', loss)
        # The zero-weighted image term keeps every synthesis output in the graph (DDP needs it).
        (gen_img[:, 0, 0, 0] * 0 + loss).mean().mul(gain).backward()

    def backward_D_fake(self, gen_z, gen_c, gain):
        """D loss on fakes softplus(D(G(z))); returns the per-sample loss [N, 1] (detached)."""
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
        gen_logits = self.decision(gen_img, gen_c, z=gen_z)
        self.report_scores('fake', gen_logits)
        loss = F.softplus(gen_logits)
        loss.mean().mul(gain).backward()
        return loss.detach()

    def backward_D_real(self, real_img, real_c, sync, gain, loss_fake=None, with_r1=False):
        """D loss on reals softplus(-D(x)) (when `loss_fake` is given) and/or the R1 penalty.

        One D pass serves both; R1 = r1_gamma/2 * sum of squared grads of D(x).sum() w.r.t. x.
        """
        real = real_img.detach().requires_grad_(with_r1)
        real_logits = self.decision(real, real_c, sync=sync)
        self.backward_D_real_terms(real, real_logits, gain, loss_fake=loss_fake, with_r1=with_r1)

    def backward_D_real_terms(self, real, real_logits, gain, loss_fake=None, with_r1=False):
        """The real-image terms given D's logits [N, 1] on `real` (which requires grad for R1).

        For plugins whose real pass differs (LOGAN-B's D(x, E(x))): compute the logits, then call this.
        """
        self.report_scores('real', real_logits)
        total = real_logits * 0
        if loss_fake is not None:
            loss_real = F.softplus(-real_logits)
            training_stats.report('Loss/D/loss', loss_fake + loss_real)
            total = total + loss_real
        if with_r1:
            with conv2d_gradfix.no_weight_gradients():
                r1_grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real], create_graph=True)[0]
            r1_penalty = r1_grads.square().flatten(1).sum(dim=1, keepdim=True)
            training_stats.report('Loss/r1_penalty', r1_penalty)
            loss_r1 = r1_penalty * (self.r1_gamma / 2)
            training_stats.report('Loss/D/reg', loss_r1)
            total = total + loss_r1
        total.mean().mul(gain).backward()

