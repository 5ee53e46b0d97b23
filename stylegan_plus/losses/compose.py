"""`ComposedLoss`: one main loss plus add-on terms (`--loss=clr+advlat-qua`).

Built from training_options.json as
`{class_name: 'stylegan_plus.losses.compose.ComposedLoss', main: {class_name, ...}, addons: [{class_name, ...}]}`.
Per round: each add-on may replace the latents (`transform_fakes`), then the main loss runs, then
each add-on adds its terms (their backward passes accumulate into the same gradients).
"""

import dnnlib

from .base import LossPlugin


class ComposedLoss(LossPlugin):
    """A main loss with add-ons; every plugin hook is delegated to the parts."""

    def __init__(self, device, main, addons=(), **networks):
        super().__init__(device, **networks)
        self.main = dnnlib.util.construct_class_by_name(device=device, **networks, **main)
        self.addons = [dnnlib.util.construct_class_by_name(device=device, **networks, **kwargs) for kwargs in addons]
        parts = [self.main, *self.addons]
        for part in parts:
            if not isinstance(part, LossPlugin):
                raise TypeError(f'ComposedLoss parts must be LossPlugins, got {type(part).__name__}')
        if self.main.role != 'main' or any(addon.role != 'addon' for addon in self.addons):
            raise ValueError(f'ComposedLoss needs one main loss and add-ons, got roles {[p.role for p in parts]}')
        for addon in self.addons:
            addon.attach(self.main)
        self._owner = {}    # extra network name -> the part that declared it
        for part in parts:
            for name in part.extra_modules():
                if name in self._owner:
                    raise ValueError(f'extra network {name!r} is declared by both {type(self._owner[name]).__name__} '
                                     f'and {type(part).__name__}')
                self._owner[name] = part

    @property
    def parts(self):
        return [self.main, *self.addons]

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        for addon in self.addons:
            gen_z, gen_c = addon.transform_fakes(phase, gen_z, gen_c, sync)
        self.main.accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
        for addon in self.addons:
            addon.accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    def extra_modules(self):
        return {name: module for part in self.parts for name, module in part.extra_modules().items()}

    def set_wrapped_modules(self, wrapped):
        for name, module in wrapped.items():
            if name not in self._owner:
                raise KeyError(f'no extra network named {name!r}; have {sorted(self._owner)}')
            self._owner[name].set_wrapped_modules({name: module})

    def phases(self, default_phases, opt_kwargs):
        phases = self.main.phases(default_phases, opt_kwargs)
        for addon in self.addons:
            phases = addon.phases(phases, opt_kwargs)
        return phases

    def sample_z(self, n, device):
        return self.main.sample_z(n, device)

    def run_G(self, z, c, sync, mixing=True):
        return self.main.run_G(z, c, sync, mixing=mixing)

    def run_D(self, img, c, sync, return_features=False):
        return self.main.run_D(img, c, sync, return_features=return_features)

    def decision(self, img, c, z=None, sync=False):
        return self.main.decision(img, c, z=z, sync=sync)

    def state_dict(self):
        return {'main': self.main.state_dict(), 'addons': [addon.state_dict() for addon in self.addons]}

    def load_state_dict(self, state):
        if len(state['addons']) != len(self.addons):
            raise ValueError(f'state has {len(state["addons"])} add-on states, this loss has {len(self.addons)} add-ons')
        self.main.load_state_dict(state['main'])
        for addon, addon_state in zip(self.addons, state['addons']):
            addon.load_state_dict(addon_state)
