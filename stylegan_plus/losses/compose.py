"""`ComposedLoss`: one main loss plus add-on terms (`--loss=clr+advlat-qua`).

Built from training_options.json as
`{class_name: 'stylegan_plus.losses.compose.ComposedLoss', main: {class_name, ...}, addons: [{class_name, ...}]}`.
Per round: each add-on may replace the latents (`transform_fakes`), then the main loss runs (without
style mixing if the latents were replaced: they are no prior draws), then each add-on adds its
terms (their backward passes accumulate into the same gradients).
"""

import contextlib

import dnnlib

from .base import LossAddon, LossPlugin


class ComposedLoss(LossPlugin, framework=True):
    """A main loss with add-ons; every loop hook is delegated to the parts."""

    def __init__(self, device, main, addons=(), **networks):
        super().__init__(device, **networks)
        self.main = dnnlib.util.construct_class_by_name(device=device, **networks, **main)
        self.addons = [dnnlib.util.construct_class_by_name(device=device, **networks, **kwargs) for kwargs in addons]
        parts = [self.main, *self.addons]
        for part in parts:
            if not isinstance(part, LossPlugin) or isinstance(part, ComposedLoss):
                raise TypeError(f'ComposedLoss parts must be LossPlugins, got {type(part).__name__}')
        if self.main.role != 'main' or any(not isinstance(addon, LossAddon) for addon in self.addons):
            raise ValueError(f'ComposedLoss needs one main loss and add-ons, got roles {[p.role for p in parts]}')
        for addon in self.addons:
            addon.main = self.main
        owners = {}     # extra network name -> the part that declared it
        for part in parts:
            for name in part.extra_modules():
                if name in owners:
                    raise ValueError(f'extra network {name!r} is declared by both {type(owners[name]).__name__} '
                                     f'and {type(part).__name__}')
                owners[name] = part

    @property
    def parts(self):
        return [self.main, *self.addons]

    @property
    def real_decisions(self):
        return self.main.real_decisions

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        drawn = gen_z
        for addon in self.addons:
            gen_z, gen_c = addon.transform_fakes(phase, gen_z, gen_c, sync)
        with _without_mixing(self.main) if gen_z is not drawn else contextlib.nullcontext():
            self.main.accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
        for addon in self.addons:
            addon.accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    def extra_modules(self):
        return {name: module for part in self.parts for name, module in part.extra_modules().items()}

    def phases(self, default_phases, opt_kwargs):
        phases = self.main.phases(default_phases, opt_kwargs)
        for addon in self.addons:
            phases = addon.phases(phases, opt_kwargs)
        return phases

    def sample_z(self, n, device):
        return self.main.sample_z(n, device)

    def decision(self, img, c, z=None, sync=False):
        return self.main.decision(img, c, z=z, sync=sync)

    def ada_signs(self):
        return self.main.ada_signs()

    def state_dict(self):
        return {'main': self.main.state_dict(), 'addons': [addon.state_dict() for addon in self.addons]}

    def load_state_dict(self, state):
        if len(state['addons']) != len(self.addons):
            raise ValueError(f'state has {len(state["addons"])} add-on states, '
                             f'this loss has {len(self.addons)} add-ons')
        self.main.load_state_dict(state['main'])
        for addon, addon_state in zip(self.addons, state['addons']):
            addon.load_state_dict(addon_state)


@contextlib.contextmanager
def _without_mixing(loss):
    """Run the block with `loss.style_mixing_prob` at 0 (restored afterwards, also on errors)."""
    saved = loss.style_mixing_prob
    loss.style_mixing_prob = 0
    try:
        yield
    finally:
        loss.style_mixing_prob = saved
