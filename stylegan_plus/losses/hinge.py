"""`--loss=hinge`: the hinge GAN loss, and the smallest complete plugin (docs/plugins.md, "Example").

D minimises `relu(1 - D(x)) + relu(1 + D(G(z)))`, G minimises `-D(G(z))` (Lim & Ye 2017, as in
SAGAN and BigGAN). No R1, path length or style mixing: the class declares no `base_options`, so
`--gamma` and the other baseline options are refused with it. Real-image logits go through
`report_scores`, so ADA adapts; `decision` is the plugin's default (augment pipe, then D).
"""

import dataclasses

import torch
import torch.nn.functional as F

from torch_utils import training_stats

from .base import LossPlugin
from .common import extra_opt_kwargs
from .phases import Phase
from .registry import register_loss


@register_loss('hinge')
class HingeLoss(LossPlugin):
    """Hinge loss (example plugin): D on relu(1 -/+ logits), G on -logits; no regularisers."""

    def phases(self, default_phases, opt_kwargs):
        """One step per network and iteration (no lazy regulariser), with the optimizer kwargs as configured."""
        steps = [spec for spec in default_phases if Phase(spec.name).is_main]
        return [dataclasses.replace(spec, opt_kwargs=extra_opt_kwargs(opt_kwargs[Phase(spec.name).network]))
                for spec in steps]

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        step = Phase.of(phase)
        if step is None or not step.is_main:
            raise ValueError(f'HingeLoss: phase {phase!r} is not one of its phases '
                             f'({", ".join(p.value for p in Phase if p.is_main)})')
        if step.network == 'G':
            self.backward_G(gen_z, gen_c, sync, gain)
        else:
            self.backward_D(real_img, real_c, gen_z, gen_c, sync, gain)

    def backward_G(self, gen_z, gen_c, sync, gain):
        """-D(G(z)) into G (D frozen by the loop)."""
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=sync)
        gen_logits = self.decision(gen_img, gen_c, z=gen_z)
        self.report_scores('fake', gen_logits)
        loss = -gen_logits
        training_stats.report('Loss/G/loss', loss)
        loss.mean().mul(gain).backward()

    def backward_D(self, real_img, real_c, gen_z, gen_c, sync, gain):
        """relu(1 - D(x)) + relu(1 + D(G(z))) into D (G frozen by the loop)."""
        with torch.no_grad():
            gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
        gen_logits = self.decision(gen_img, gen_c, z=gen_z)
        real_logits = self.decision(real_img.detach(), real_c, sync=sync)
        self.report_scores('fake', gen_logits)
        self.report_scores('real', real_logits)    # hands ADA the signs of the real logits
        loss = F.relu(1 - real_logits) + F.relu(1 + gen_logits)
        training_stats.report('Loss/D/loss', loss)
        loss.mean().mul(gain).backward()
