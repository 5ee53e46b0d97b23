"""Plugins that exercise the loss-plugin interface in tests (not part of the package).

`ExtraNetLoss` adds what real methods need beyond the official seam: an extra network `H` with
its own optimizer and phase, a choice of prior, options, resume state and a training-option
adjustment. `TracingAddon` is an add-on that moves the D step's latents and adds a G-step term.
Use them by class path, e.g. `--loss=tests.plugins_for_tests.ExtraNetLoss`.
"""

import torch

from stylegan_plus.losses import LossAddon, LossOption, PhaseSpec, StyleGAN2Loss
from stylegan_plus.losses.phases import Phase
from torch_utils import training_stats

H_PHASE = 'Hmain'


class ExtraNetLoss(StyleGAN2Loss):
    """Baseline loss plus a latent regressor H trained on fakes in its own phase (test plugin).

    Phase `Hmain` (between the G and D phases): `weight * mean((H(G(z)) - z)^2)`, G frozen.
    State: `h_calls` (accumulation rounds of Hmain so far) and `h_loss_avg` (running mean).
    """
    options = (
        LossOption('--testx-weight', 1.0, help='weight of the regression loss'),
        LossOption('--testx-lr', 0.01, help='learning rate of H'),
        LossOption('--testx-prior', 'normal', choices=('normal', 'uniform'), help='latent prior (sets --z-dist)'),
    )
    state_attrs = StyleGAN2Loss.state_attrs + ('h_calls', 'h_loss_avg')

    def __init__(self, device, testx_weight=1.0, testx_lr=0.01, testx_prior='normal', **kwargs):
        super().__init__(device, **kwargs)
        self.testx_weight = testx_weight
        self.testx_lr = testx_lr
        self.testx_prior = testx_prior
        in_features = _flat_size(self.D_unwrapped)
        self.register_network('H', torch.nn.Linear(in_features, self.z_dim).to(self.device))
        self.h_calls = torch.zeros([], dtype=torch.int64, device=self.device)
        self.h_loss_avg = torch.zeros([], device=self.device)

    def phases(self, default_phases, opt_kwargs):
        h_phase = PhaseSpec(H_PHASE, modules=('H',), opt='H',
                            opt_kwargs=dict(class_name='torch.optim.Adam', lr=self.testx_lr, betas=[0.5, 0.99]))
        g_phases = [spec for spec in default_phases if 'G' in spec.modules]
        other = [spec for spec in default_phases if 'G' not in spec.modules]
        return g_phases + [h_phase] + other

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        if cfg == 'dcgan' and 'g_steps' not in given:
            args.g_steps = 2
        # The plugin's prior is a default of the loop's --z-dist (plugins draw no prior of their own).
        if 'z_dist' not in given and loss_kwargs.get('testx_prior', 'normal') != 'normal':
            args.z_dist = loss_kwargs['testx_prior']

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase != H_PHASE:
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
            return
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
        pred = self.H(gen_img.detach().flatten(1))
        loss = (pred - gen_z).square().mean(dim=1) * self.testx_weight
        training_stats.report('Loss/testx/latent', loss)
        loss.mean().mul(gain).backward()
        self.h_calls += 1
        self.h_loss_avg.lerp_(loss.detach().mean(), 0.5)


class TracingAddon(LossAddon):
    """Test add-on: negates the latents of D phases and adds `scale * mean(G(z))^2` to G phases."""
    options = (LossOption('--trace-scale', 0.5, help='weight of the extra G term'),)
    state_attrs = ('calls',)

    def __init__(self, device, trace_scale=0.5, **networks):
        super().__init__(device, **networks)
        self.trace_scale = trace_scale
        self.calls = torch.zeros([], dtype=torch.int64, device=self.device)
        self.seen = []  # (hook, phase) in call order

    def transform_fakes(self, phase, gen_z, gen_c, sync):
        self.seen.append(('transform', phase))
        if phase in Phase.mains('D'):
            return -gen_z, gen_c
        return gen_z, gen_c

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        self.seen.append(('accumulate', phase))
        self.calls += 1
        if phase in Phase.mains('G'):
            img, _ws = self.main.run_G(gen_z, gen_c, sync=sync, mixing=False)
            term = img.mean().square() * self.trace_scale
            training_stats.report('Loss/trace/term', term)
            term.mul(gain).backward()


def _flat_size(D):
    return D.img_channels * D.img_resolution ** 2
