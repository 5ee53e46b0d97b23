"""Base classes of the loss plugins: the official `Loss` seam and the plugin contract `LossPlugin`.

The contract (docs/plugins.md) is small on purpose:
- declared, not discovered: `role`, `options` (command-line flags), `base_options` (the preset's
  loss kwargs `__init__` accepts), `state_attrs` (resume state), `real_decisions` (whether ADA
  gets real-image signs), and extra networks through one `register_network` call each;
- `PLUGIN_HOOKS`: the only methods a plugin may override (besides `__init__`); the rest of
  `LossPlugin` and of the framework classes (`LossAddon`, `StyleGAN2Loss`, `ComposedLoss`) is a
  toolkit to call, and a subclass that redefines one of its methods is refused when defined.
"""

import torch

from torch_utils import misc, training_stats

from stylegan_plus.sampling import prior as prior_lib

from . import common
# Torch-free declarations, re-exported here. BASE_OPTIONS: the preset loss kwargs (`loss_kwargs` of
# the --cfg presets) that a main loss may accept in __init__, by declaring them in `base_options`.
from .declarations import BASE_OPTIONS, LOSS_ROLES, LossOption  # noqa: F401

# The methods a plugin may override; see docs/plugins.md for each one's job.
# `sample_z` is not among them: the prior is the run's `--z-dist` (`self.z_dist`, set by the loop), so a
# plugin states its paper's prior as a default in `adjust_training_options` instead of drawing its own.
PLUGIN_HOOKS = ('accumulate_gradients', 'phases', 'decision', 'load_state_dict',
                'transform_fakes', 'adjust_training_options')

# The official statistic ADA adapts from (docs/compat.md section 6).
REAL_SIGNS_STAT = 'Loss/signs/real'

# Keys of the official snapshot dict (and network keywords of the loop): an extra network may
# not take one of these names, because it is saved under its name beside them.
RESERVED_NETWORK_NAMES = ('G', 'D', 'G_ema', 'G_mapping', 'G_synthesis', 'augment_pipe', 'training_set_kwargs')


class Loss:
    """The official plugin seam: one method computing a phase's loss and its gradients."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        """Compute the loss of one accumulation round of `phase` and call `.backward()` on it.

        phase: a `Phase` (== its official string, e.g. 'Gmain') or a plugin's own phase name;
        real_img: [N, C, H, W] float32 in [-1, 1] (or [N, 2] points); real_c, gen_c: [N, c_dim]
        float32; gen_z: [N, z_dim]; sync: True on the last round (informational in this loop,
        which wraps nothing in DDP); gain: the phase interval, multiplied into the loss before
        `.backward()`. Returns nothing.
        """
        raise NotImplementedError()


def unwrap_module(module):
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return module.module
    return module

#----------------------------------------------------------------------------
# Checking the declarations when a plugin class is defined.

def _check_declarations(cls):
    if cls.role not in LOSS_ROLES:
        raise TypeError(f'{cls.__qualname__}.role = {cls.role!r}; accepted: {", ".join(LOSS_ROLES)}')
    unknown = [name for name in cls.base_options if name not in BASE_OPTIONS]
    if not isinstance(cls.base_options, tuple) or unknown:
        raise TypeError(f'{cls.__qualname__}.base_options = {cls.base_options!r}: a tuple drawn from '
                        f'{", ".join(BASE_OPTIONS)}')
    if cls.role == 'addon' and cls.base_options:
        raise TypeError(f'{cls.__qualname__} is an add-on: add-ons get no preset kwargs (base_options must be ())')
    if not all(isinstance(opt, LossOption) for opt in cls.options):
        raise TypeError(f'{cls.__qualname__}.options must be LossOption objects')
    if not all(isinstance(name, str) and name.isidentifier() for name in cls.state_attrs):
        raise TypeError(f'{cls.__qualname__}.state_attrs must be attribute names, got {cls.state_attrs!r}')
    _check_presets(cls)


def _check_presets(cls):
    # A typo in a preset would silently set nothing; refuse it when the class is defined.
    own_keys = {opt.key for opt in cls.options}
    for cfg, preset in cls.presets.items():
        where = f'{cls.__qualname__}.presets[{cfg!r}]'
        if not isinstance(preset, dict) or not set(preset) <= {'loss', 'loop'}:
            raise TypeError(f'{where} = {preset!r}: a dict with the keys \'loss\' and/or \'loop\'')
        unknown = sorted(set(preset.get('loss', {})) - own_keys)
        if unknown:
            raise TypeError(f'{where}[\'loss\'] names {", ".join(unknown)}, not among the plugin\'s options '
                            f'({", ".join(sorted(own_keys)) or "none"})')


def _is_method(value):
    return callable(value) or isinstance(value, (property, classmethod, staticmethod))


def _check_overrides(cls):
    """Refuse a plugin class that redefines a framework method other than a hook."""
    for name, value in vars(cls).items():
        if name in PLUGIN_HOOKS or (name.startswith('__') and name.endswith('__')) or not _is_method(value):
            continue
        owner = next((base for base in cls.__mro__[1:] if base.__dict__.get('_framework_class') is base
                      and name in base.__dict__), None)
        if owner is not None:
            raise TypeError(f'{cls.__qualname__}.{name} overrides {owner.__qualname__}.{name}, which is not a plugin '
                            f'hook; a plugin may override {", ".join(PLUGIN_HOOKS)} (docs/plugins.md)')

#----------------------------------------------------------------------------

class LossPlugin(Loss):
    """A loss method as a plugin: networks, prior, phases and resume state beside the loss itself.

    Keywords: `device`; `G_mapping` and `G_synthesis` (a generator with a mapping/synthesis split)
    or `G` (one without); `D`; `augment_pipe` (or None). Subclasses add their `options` keys and,
    for main losses, the `base_options` they declare. Subclassing with `framework=True` marks a
    class of the framework itself, whose methods are then final for the plugins built on it.
    """
    role = 'main'           # 'main' or 'addon'; one main loss per run
    options = ()            # LossOption tuple: the plugin's command-line options
    base_options = ()       # names from BASE_OPTIONS that __init__ accepts (the loop passes only these)
    state_attrs = ()        # names of tensor attributes saved by state_dict() for resume
    real_decisions = True   # D scores real images (report_scores('real', ...)), so ADA can adapt
    # Per-`--cfg` defaults of the paper's settings: {cfg: {'loss': {own option key: value},
    # 'loop': {training option: value}}}, applied by `adjust_training_options` unless given.
    presets = {}

    def __init_subclass__(cls, framework=False, **kwargs):
        super().__init_subclass__(**kwargs)
        _check_declarations(cls)
        if framework:
            cls._framework_class = cls
        else:
            _check_overrides(cls)

    def __init__(self, device, G_mapping=None, G_synthesis=None, D=None, augment_pipe=None, G=None):
        super().__init__()
        if (G_mapping is None) != (G_synthesis is None):
            raise ValueError('G_mapping and G_synthesis must be given together')
        if G_mapping is None and G is None:
            raise ValueError('a loss needs the generator: G_mapping and G_synthesis, or G')
        self.device = torch.device(device)
        self.G_mapping = G_mapping
        self.G_synthesis = G_synthesis
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.run_dir = None             # the run folder; set by the loop after construction
        self.z_dist = prior_lib.DEFAULT_Z_DIST  # the run's latent prior (--z-dist); set by the loop likewise
        self.style_mixing_prob = 0      # run_G mixes styles with this probability (StyleGAN2Loss sets it)
        self._networks = {}             # name -> extra module, in declaration order
        self._real_signs = _SignTally()

    # --- Hooks: a plugin may override these (and accumulate_gradients) ---------------------------

    def phases(self, default_phases, opt_kwargs):
        """The phase list (PhaseSpec) the loop runs, given the official one.

        opt_kwargs: EasyDict(G=..., D=...) with the configured (not lazily adjusted) optimizer
        kwargs, for the plugin's own phases (see `common.extra_opt_kwargs`).
        """
        del opt_kwargs
        return list(default_phases)

    def decision(self, img, c, z=None, sync=False):
        """The real/fake logit this method's D trains on: img [N, ...], c [N, c_dim], z [N, z_dim] -> [N, 1].

        The baseline's losses and latent mining (AdvLatGAN-qua) use it. Default: `run_D` (augment
        pipe, then D). RFGAN fuses an encoder's features into it; LOGAN-B's joint D(x, z) needs z.
        """
        del z
        return self.run_D(img, c, sync)

    def load_state_dict(self, state):
        """Restore what `state_dict()` returned (missing names are an error, extra ones too).

        Override to migrate an older state or to react to the restored values; call super().
        """
        if set(state) != set(self.state_attrs):
            raise KeyError(f'{type(self).__name__} state has keys {sorted(state)}, expected {sorted(self.state_attrs)}')
        for name in self.state_attrs:
            getattr(self, name).copy_(torch.as_tensor(state[name]).to(self.device))

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        """Edit the training options before they are written (default: apply `presets[cfg]`).

        args: the options EasyDict; loss_kwargs: this plugin's own kwargs dict inside it;
        cfg: the --cfg name; given: names of the options the user set explicitly, which a
        preset never overrides. An override that adds checks calls super() for the presets.
        """
        preset = cls.presets.get(cfg, {})
        common.set_unless_given(loss_kwargs, preset.get('loss', {}), given)
        common.set_unless_given(args, preset.get('loop', {}), given)

    # --- Toolkit: networks ----------------------------------------------------------------------

    def sample_z(self, n, device):
        """n draws from the run's prior `self.z_dist` (`--z-dist`): float32 [n, z_dim] on `device`."""
        return prior_lib.draw_z(self.z_dist, n, self.z_dim, device)

    @property
    def has_mapping(self):
        """True when the generator comes as mapping + synthesis (StyleGAN2)."""
        return self.G_mapping is not None

    @property
    def z_dim(self):
        net = self.G_mapping if self.has_mapping else self.G
        return unwrap_module(net).z_dim

    @property
    def c_dim(self):
        net = self.G_mapping if self.has_mapping else self.G
        return unwrap_module(net).c_dim

    @property
    def D_unwrapped(self):
        return unwrap_module(self.D)

    def register_network(self, name, module):
        """Declare an extra network: saved in snapshots under `name`, resumed, gradient-averaged when trained.

        Also sets `self.<name>`; returns `module`.
        """
        if name in RESERVED_NETWORK_NAMES or not name.isidentifier():
            raise ValueError(f'extra network name {name!r} is reserved or not an identifier')
        if name in self._networks:
            raise ValueError(f'extra network {name!r} is registered twice')
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f'extra network {name!r} must be a torch.nn.Module, got {type(module).__name__}')
        self._networks[name] = module
        setattr(self, name, module)
        return module

    def extra_modules(self):
        """Extra networks declared with `register_network`: dict name -> module, in declaration order."""
        return dict(self._networks)

    # --- Toolkit: running the networks ----------------------------------------------------------

    def run_G(self, z, c, sync, mixing=True):
        """Generate images: z [N, z_dim], c [N, c_dim] -> (img, ws).

        img: the generator's output ([N, C, H, W] for images, [N, 2] for points); ws [N, num_ws, w_dim]
        for a split generator, else None. With `mixing` and `style_mixing_prob > 0`, the ws from a
        second random z replace the layers from a random cutoff in [1, num_ws) onward.
        """
        if not self.has_mapping:
            return common.run_module(self.G, sync, z, c), None
        with misc.ddp_sync(self.G_mapping, sync):
            ws = self.G_mapping(z, c)
            if mixing and self.style_mixing_prob > 0:
                ws = self._mix_styles(ws, z, c)
        return common.run_module(self.G_synthesis, sync, ws), ws

    def _mix_styles(self, ws, z, c):
        # Random draws in the order cutoff, coin, second z: the official random stream.
        num_ws = ws.shape[1]
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
        keep_all = torch.rand([], device=ws.device) >= self.style_mixing_prob
        cutoff = torch.where(keep_all, torch.full_like(cutoff, num_ws), cutoff)
        ws_other = self.G_mapping(prior_lib.draw_z_like(self.z_dist, z), c, skip_w_avg_update=True)
        layer = torch.arange(num_ws, device=ws.device).view(1, num_ws, 1)
        return torch.where(layer >= cutoff, ws_other, ws)

    def run_D(self, img, c, sync, return_features=False):
        """Augment (if a pipe is set) and run D: -> logits [N, 1] or (logits, features [N, F])."""
        return self.discriminate(self.augment(img), c, sync, return_features=return_features)

    def augment(self, img):
        """`img` through the augment pipe (same shape and range), or unchanged without one."""
        return img if self.augment_pipe is None else self.augment_pipe(img)

    def discriminate(self, img, c, sync, return_features=False):
        """D on images that are already augmented: logits [N, 1], or (logits, features [N, F])."""
        if return_features:
            return common.run_module(self.D, sync, img, c, return_features=True)
        return common.run_module(self.D, sync, img, c)

    # --- Toolkit: statistics, ADA, state -----------------------------------------------------------

    def report_scores(self, kind, logits):
        """Report D's logits [N, 1] on 'real' or 'fake' images (`Loss/scores/<kind>`, `Loss/signs/<kind>`).

        The signs of real-image logits are also kept for `ada_signs()`: this call is how a plugin
        hands ADA what it needs.
        """
        signs = common.report_scores(kind, logits)
        if kind == 'real':
            self._real_signs.add(signs)

    def ada_signs(self):
        """The ADA hook: (count, sum) of the real-logit signs reported since the last call, on this
        process; None when the class declares `real_decisions = False`."""
        if not self.real_decisions:
            return None
        return self._real_signs.take()

    def state_dict(self):
        """Resume state: CPU copies of the tensors named in `state_attrs`."""
        return {name: getattr(self, name).detach().cpu().clone() for name in self.state_attrs}


LossPlugin._framework_class = LossPlugin    # its methods are final for plugins (except the hooks)


class LossAddon(LossPlugin, framework=True):
    """A term added to a main loss (e.g. latent mining). `self.main` is the main loss (set by
    `ComposedLoss`); add-ons get no preset kwargs and override `transform_fakes` and/or
    `accumulate_gradients` (an extra loss term after the main loss's, in the same round)."""
    role = 'addon'
    real_decisions = False  # the main loss's D decides; ComposedLoss hands ADA the main loss's signs

    def __init__(self, device, **networks):
        super().__init__(device, **networks)
        self.main = None

    def transform_fakes(self, phase, gen_z, gen_c, sync):
        """The round's latents for the main loss: returns (gen_z, gen_c), the same objects to keep them.

        A round whose latents an add-on replaced runs without style mixing (they are no prior draws).
        """
        del phase, sync
        return gen_z, gen_c

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        """Extra loss terms, backpropagated after the main loss's in the same round (default none)."""
        del phase, real_img, real_c, gen_z, gen_c, sync, gain


class _SignTally:
    """Signs of real-image logits since the last `take()`: element count (host) and sum (device, float64)."""

    def __init__(self):
        self.count = 0
        self.total = None

    def add(self, signs):
        total = signs.sum(dtype=torch.float64)
        self.count += signs.numel()
        self.total = total if self.total is None else self.total + total

    def take(self):
        """(count, sum as a float) since the previous call; (0, 0.0) when nothing came."""
        count, total = self.count, (0.0 if self.total is None else float(self.total))
        self.count, self.total = 0, None
        return count, total

#----------------------------------------------------------------------------
# Official-style loss objects in the loop.

class _OfficialLossHooks:
    """The loop's hooks with their defaults around a loss object that has only `accumulate_gradients`.

    ADA: the official trainer adapts p from the statistic `Loss/signs/real` (docs/compat.md section
    6), which an official-style loss writes with `training_stats.report`. The adapter listens to
    the reports made during its `accumulate_gradients` calls and hands their signs to `ada_signs()`
    as a LossPlugin does. A loss that never reports them is noticed by the loop (nothing arrives).
    """
    real_decisions = True   # unknown until it reports: the loop says so once if no signs arrive

    def __init__(self, loss, z_dim, z_dist=prior_lib.DEFAULT_Z_DIST):
        self._loss = loss
        self._z_dim = z_dim
        self.z_dist = z_dist
        self._real_signs = _SignTally()

    def _listen(self, name, value):
        if name == REAL_SIGNS_STAT:
            self._real_signs.add(torch.as_tensor(value).detach())

    def accumulate_gradients(self, *args, **kwargs):
        # Scoped to the call: only what this loss reports counts, whatever else reports the name.
        training_stats._report_listeners.append(self._listen)   # pylint: disable=protected-access
        try:
            return self._loss.accumulate_gradients(*args, **kwargs)
        finally:
            training_stats._report_listeners.remove(self._listen)   # pylint: disable=protected-access

    def extra_modules(self):
        return {}

    def phases(self, default_phases, opt_kwargs):
        del opt_kwargs
        return list(default_phases)

    def sample_z(self, n, device):
        return prior_lib.draw_z(self.z_dist, n, self._z_dim, device)

    def ada_signs(self):
        """(count, sum) of the `Loss/signs/real` values the loss reported since the last call."""
        return self._real_signs.take()

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        if state:
            raise KeyError(f'{type(self._loss).__name__} keeps no state, got {sorted(state)}')


def plugin_hooks(loss, z_dim, z_dist=prior_lib.DEFAULT_Z_DIST):
    """`loss` itself when it is a LossPlugin (or a ComposedLoss), else an adapter giving the hooks
    their defaults (no extra networks, official phases, no state; ADA gets the `Loss/signs/real`
    values the loss reports, as the official trainer reads them). The loop must call the returned
    object's `accumulate_gradients` for those to be seen.

    z_dim, z_dist: the generator's latent size and the run's prior, used by the adapter's `sample_z`
    (a plugin gets `z_dist` from the loop as an attribute).
    """
    return loss if isinstance(loss, LossPlugin) else _OfficialLossHooks(loss, z_dim, z_dist)
