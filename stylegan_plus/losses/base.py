"""Base classes of the loss plugins: the official `Loss` seam and the richer `LossPlugin`.

See docs/plugins.md for how the training loop drives these objects.
"""

import torch

from torch_utils import misc

from .declarations import LOSS_ROLES, LossOption  # noqa: F401  (torch-free; re-exported here)

# Keys of the official snapshot dict (and network keywords of the loop): an extra network may
# not take one of these names, because it is saved under its name beside them.
RESERVED_NETWORK_NAMES = ('G', 'D', 'G_ema', 'G_mapping', 'G_synthesis', 'augment_pipe', 'training_set_kwargs')


class Loss:
    """The official plugin seam: one method computing a phase's loss and its gradients."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        """Compute the loss of one accumulation round of `phase` and call `.backward()` on it.

        real_img: [N, C, H, W] float32 in [-1, 1] (or [N, 2] points); real_c, gen_c: [N, c_dim] float32;
        gen_z: [N, z_dim]; sync: True on the last round (where a DDP-wrapped module would all-reduce;
        informational in this loop, which wraps nothing); gain: the phase interval, multiplied into
        the loss before `.backward()`. Returns nothing.
        """
        raise NotImplementedError()


def unwrap_module(module):
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return module.module
    return module


class LossPlugin(Loss):
    """A loss method as a plugin: networks, prior, phases and resume state beside the loss itself.

    Keywords: `device`; `G_mapping` and `G_synthesis` (a generator with a mapping/synthesis
    split) or `G` (a generator without one); `D`; `augment_pipe` (or None). The training loop
    passes plain modules; other callers may pass DDP-wrapped ones. Subclasses add their own
    keywords (their `options` keys).
    """
    role = 'main'           # 'main' or 'addon'; one main loss per run
    options = ()            # LossOption tuple: the plugin's command-line options
    state_attrs = ()        # names of tensor attributes saved by state_dict()
    style_mixing_prob = 0   # run_G mixes styles with this probability (StyleGAN2Loss sets it)
    run_dir = None          # the run folder; set by the training loop after construction

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
        self._networks = {}     # name -> unwrapped extra module, in declaration order

    # --- Networks ------------------------------------------------------------------------------

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
        """Extra networks declared with `register_network`: dict name -> unwrapped module."""
        return dict(self._networks)

    def set_wrapped_modules(self, wrapped):
        """Use these (DDP-wrapped) modules for the named extra networks from now on."""
        for name, module in wrapped.items():
            if name not in self._networks:
                raise KeyError(f'no extra network named {name!r}; have {sorted(self._networks)}')
            setattr(self, name, module)

    # --- Phases, prior, state --------------------------------------------------------------------

    def phases(self, default_phases, opt_kwargs):
        """The phase list (PhaseSpec) the loop runs, given the official one.

        opt_kwargs: EasyDict(G=..., D=...) with the configured (not lazily adjusted) optimizer kwargs,
        for plugins that build optimizers of their own from them.
        """
        del opt_kwargs
        return list(default_phases)

    def sample_z(self, n, device):
        """The latent prior: float32 [n, z_dim] on `device` (standard normal)."""
        return torch.randn([n, self.z_dim], device=device)

    def state_dict(self):
        """Resume state: CPU copies of the tensors named in `state_attrs`."""
        return {name: getattr(self, name).detach().cpu().clone() for name in self.state_attrs}

    def load_state_dict(self, state):
        """Restore what `state_dict()` returned (missing names are an error, extra ones too)."""
        if set(state) != set(self.state_attrs):
            raise KeyError(f'{type(self).__name__} state has keys {sorted(state)}, expected {sorted(self.state_attrs)}')
        for name in self.state_attrs:
            getattr(self, name).copy_(torch.as_tensor(state[name]).to(self.device))

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        """Edit the training options before they are written (default: nothing).

        args: the options EasyDict; loss_kwargs: this plugin's own kwargs dict inside it;
        cfg: the --cfg name; given: names of the options the user set explicitly.
        """
        del args, loss_kwargs, cfg, given

    # --- Running the networks ----------------------------------------------------------------------

    def run_G(self, z, c, sync, mixing=True):
        """Generate images: z [N, z_dim], c [N, c_dim] -> (img, ws).

        img: the generator's output ([N, C, H, W] for images, [N, 2] for points); ws [N, num_ws, w_dim]
        for a split generator, else None. With `mixing` and `style_mixing_prob > 0`, the ws from a
        second random z replace the layers from a random cutoff in [1, num_ws) onward.
        """
        if not self.has_mapping:
            with misc.ddp_sync(self.G, sync):
                return self.G(z, c), None
        with misc.ddp_sync(self.G_mapping, sync):
            ws = self.G_mapping(z, c)
            if mixing and self.style_mixing_prob > 0:
                ws = self._mix_styles(ws, z, c)
        with misc.ddp_sync(self.G_synthesis, sync):
            img = self.G_synthesis(ws)
        return img, ws

    def _mix_styles(self, ws, z, c):
        # Random draws in the order cutoff, coin, second z: the official random stream.
        num_ws = ws.shape[1]
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
        keep_all = torch.rand([], device=ws.device) >= self.style_mixing_prob
        cutoff = torch.where(keep_all, torch.full_like(cutoff, num_ws), cutoff)
        ws_other = self.G_mapping(torch.randn_like(z), c, skip_w_avg_update=True)
        layer = torch.arange(num_ws, device=ws.device).view(1, num_ws, 1)
        return torch.where(layer >= cutoff, ws_other, ws)

    def run_D(self, img, c, sync, return_features=False):
        """Augment (if a pipe is set) and discriminate: -> logits [N, 1] or (logits, features [N, F])."""
        return self.discriminate(self.augment(img), c, sync, return_features=return_features)

    def decision(self, img, c, z=None, sync=False):
        """The real/fake logit this method's D trains on: img [N, ...], c [N, c_dim], z [N, z_dim] -> [N, 1].

        What latent mining (AdvLatGAN-qua) steers by. Default: `run_D` (augment pipe, then D; for
        RFGAN that is already the fused head). A method whose D also judges the latent (LOGAN-B's
        joint D(x, z)) overrides this and needs z, the latent paired with img.
        """
        del z
        return self.run_D(img, c, sync)

    def augment(self, img):
        """`img` through the augment pipe (same shape and range), or unchanged without one."""
        return img if self.augment_pipe is None else self.augment_pipe(img)

    def discriminate(self, img, c, sync, return_features=False):
        """D on images that are already augmented: logits [N, 1], or (logits, features [N, F])."""
        with misc.ddp_sync(self.D, sync):
            if return_features:
                return self.D(img, c, return_features=True)
            return self.D(img, c)


class LossAddon(LossPlugin):
    """A term added to a main loss (e.g. latent mining); `attach(main)` gives it `self.main`."""
    role = 'addon'

    def attach(self, main):
        self.main = main

    def transform_fakes(self, phase, gen_z, gen_c, sync):
        """Replace the round's latents before the main loss sees them; returns (gen_z, gen_c)."""
        del phase, sync
        return gen_z, gen_c

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        """Extra loss terms, backpropagated after the main loss's in the same round (default none)."""
        del phase, real_img, real_c, gen_z, gen_c, sync, gain


class _OfficialLossHooks:
    """Plugin hooks with their defaults around a loss object that has only `accumulate_gradients`."""

    def __init__(self, loss, z_dim):
        self._loss = loss
        self._z_dim = z_dim

    def accumulate_gradients(self, *args, **kwargs):
        return self._loss.accumulate_gradients(*args, **kwargs)

    def extra_modules(self):
        return {}

    def set_wrapped_modules(self, wrapped):
        if wrapped:
            raise KeyError(f'{type(self._loss).__name__} has no extra networks')

    def phases(self, default_phases, opt_kwargs):
        del opt_kwargs
        return list(default_phases)

    def sample_z(self, n, device):
        return torch.randn([n, self._z_dim], device=device)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        if state:
            raise KeyError(f'{type(self._loss).__name__} keeps no state, got {sorted(state)}')


def plugin_hooks(loss, z_dim):
    """`loss` itself when it is a LossPlugin, else an adapter giving the hooks their defaults.

    z_dim: the generator's latent size, used by the adapter's standard-normal `sample_z`.
    """
    return loss if isinstance(loss, LossPlugin) else _OfficialLossHooks(loss, z_dim)
