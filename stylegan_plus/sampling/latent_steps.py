"""Latent steps: I-FGSM on z toward what the discriminator finds real (AdvLatGAN).

One implementation serves every caller, so "qua+"/"div+" numbers and training use the same step:
- training: `--loss=advlat-qua` moves the latents of D's fakes in the D main phases
  (`Phase.mains('D')`, `stylegan_plus.losses.advlat`), scored by the main loss's `decision` hook
  (for LOGAN-B the joint D(x, z), for RFGAN the fused head);
- sampling ("-z"): `generate.py --latent-steps T --latent-eps EPS`;
- metrics: `LatentStepGenerator(G_ema, D, steps, eps, D_kwargs=discriminator_kwargs(D, device))`
  stands in for G_ema wherever fakes are drawn as `G(z=..., c=..., **G_kwargs)` (the
  `--latent-steps/--latent-eps` of `calc_metrics.py`; PPL, which needs G.mapping, has no -z form).
  For snapshots whose decision is not D's logit, pass
  `decision=decisions.snapshot_decision(snapshot, D_kwargs)`.

One step is `z <- z - eps * sign(grad_z sum_i softplus(-D(G(z_i))))`: sign descent on the
non-saturating generator loss. Per sample that gradient is a positive multiple of `-grad_z D(G(z))`,
the same sign as the paper's `log(1 - D(G(z)))`, so each step raises D's logit (to first order).
Samples only interact through D layers that mix the batch (StyleGAN2's minibatch-stddev).

`plugin_generator` runs a loss plugin's generator on latents that are not prior draws (moved,
predicted, encoded): it leaves the mapping's `w_avg` and BatchNorm running statistics alone.
"""

import contextlib
import weakref

import torch
import torch.nn.functional as F

from torch_utils import misc
from torch_utils.ops import conv2d_gradfix

from stylegan_plus.sampling.defaults import DEFAULT_SAMPLING_EPS, DEFAULT_SAMPLING_STEPS  # noqa: E402


def sign_descent(z, objective, step_size, steps):
    """I-FGSM: `steps` times `z <- z - step_size * sign(grad_z objective(z).sum())`.

    z: [N, z_dim] float tensor (left unchanged); objective: callable z -> loss tensor of any
    shape (summed, so each sample's step only depends on its own loss terms); step_size >= 0;
    steps >= 0. Returns the moved latents, detached, same shape/dtype/device; each element moves
    by exactly `step_size` per step (or 0 where its gradient is exactly 0). Only z is
    differentiated: network parameters get no `.grad`, whatever their `requires_grad`. Works
    inside `torch.no_grad()`.
    """
    if steps < 0 or int(steps) != steps:
        raise ValueError(f'latent steps must be an integer >= 0, got {steps!r}')
    if not step_size >= 0:
        raise ValueError(f'latent step size must be >= 0, got {step_size!r}')
    z = z.detach()
    # Weight gradients are never used here; the custom conv op would compute them regardless.
    with torch.enable_grad(), conv2d_gradfix.no_weight_gradients():
        for _ in range(int(steps)):
            z_var = z.clone().requires_grad_(True)
            grad, = torch.autograd.grad(objective(z_var).sum(), [z_var])
            z = (z - step_size * grad.sign()).detach()
    return z


def generator_loss(logits):
    """The non-saturating generator loss softplus(-logits): logits [N, 1] -> [N, 1], >= 0."""
    return F.softplus(-logits)


def realness_objective(generator, discriminator, c):
    """objective(z) = softplus(-D(G(z, c), c)) [N, 1]: what the latent steps lower.

    generator: callable (z [N, z_dim], c [N, c_dim]) -> images; discriminator: callable
    (images, c) -> logits [N, 1]; c: [N, c_dim] labels (c_dim may be 0).
    """
    return decision_objective(generator, ignoring_latent(discriminator), c)


def decision_objective(generator, decision, c):
    """objective(z) = softplus(-decision(G(z, c), c, z)) [N, 1], for a decision that may also judge z.

    decision: callable (images, c, z) -> logits [N, 1] (`stylegan_plus.sampling.decisions`); with a
    joint D(x, z) the gradient reaches z both through G and directly.
    """
    return lambda z: generator_loss(decision(generator(z, c), c, z))


def ignoring_latent(discriminator):
    """A decision (img, c, z) -> logits from a discriminator (img, c) -> logits that does not look at z."""
    return lambda img, c, _z: discriminator(img, c)


def mine_latents(z, c, generator, discriminator, eps=DEFAULT_SAMPLING_EPS, steps=DEFAULT_SAMPLING_STEPS):
    """Move z by `steps` I-FGSM steps of size `eps` toward a higher D score; returns z' [N, z_dim].

    z: [N, z_dim] float; c: [N, c_dim]; generator/discriminator: callables as in
    `realness_objective` (wrap the networks with `network_callables`). ||z' - z||_inf <= steps * eps.
    """
    return mine_latents_by_decision(z, c, generator, ignoring_latent(discriminator), eps=eps, steps=steps)


def mine_latents_by_decision(z, c, generator, decision, eps=DEFAULT_SAMPLING_EPS, steps=DEFAULT_SAMPLING_STEPS):
    """`mine_latents` for a decision (img, c, z) -> logits [N, 1], e.g. LOGAN-B's joint D(G(z), z)."""
    return sign_descent(z, decision_objective(generator, decision, c), eps, steps)


def network_callables(G, D, augment_pipe=None, G_kwargs=None, D_kwargs=None):
    """(generator, discriminator) callables over network modules, for `mine_latents`.

    G: a whole generator, called `G(z, c, **G_kwargs)` (StyleGAN2: mapping then synthesis, so
    e.g. `truncation_psi` and `noise_mode` apply; DCGAN/MLP ignore those); D: called
    `D(img, c, **D_kwargs)`, after `augment_pipe(img)` when one is given.
    """
    G_kwargs = dict(G_kwargs or {})
    D_kwargs = dict(D_kwargs or {})

    def generator(z, c):
        return G(z, c, **G_kwargs)

    def discriminator(img, c):
        if augment_pipe is not None:
            img = augment_pipe(img)
        return D(img, c, **D_kwargs)
    return generator, discriminator


def discriminator_kwargs(D, device):
    """Keywords for calling a snapshot's D on `device`: {force_fp32: True} for fp16 blocks on CPU, else {}.

    torch runs fp16 convolutions on CPU, but very slowly; StyleGAN2's D takes `force_fp32`.
    """
    init_kwargs = getattr(D, 'init_kwargs', None) or {}
    fp16 = int(init_kwargs.get('num_fp16_res', 0) or 0) > 0
    return dict(force_fp32=True) if fp16 and torch.device(device).type == 'cpu' else {}


_batchnorm_cache = weakref.WeakKeyDictionary()  # module -> its BatchNorm layers (the structure never changes)


def batchnorm_layers(*modules):
    """The BatchNorm layers (any dimension) inside `modules` (None entries skipped), found once per module."""
    layers = []
    for module in modules:
        if module is None:
            continue
        if module not in _batchnorm_cache:
            _batchnorm_cache[module] = [m for m in module.modules()
                                        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        layers += _batchnorm_cache[module]
    return layers


@contextlib.contextmanager
def frozen_batchnorm_stats(layers):
    """Run the block without changing the running statistics of these BatchNorm layers.

    The forward pass is unchanged (a layer in training mode still normalises with the batch's
    statistics). Each layer computes on copies of its running buffers, and the originals are put
    back on exit; the copies stay alive for a backward pass run later, so autograd never sees a
    buffer it saved change under it.
    """
    saved = []
    for layer in layers:
        for name in ('running_mean', 'running_var', 'num_batches_tracked'):
            buffer = getattr(layer, name, None)
            if buffer is not None:
                saved.append((layer, name, buffer))
                setattr(layer, name, buffer.clone())
    try:
        yield
    finally:
        for layer, name, buffer in saved:
            setattr(layer, name, buffer)


def plugin_generator(loss, sync=False, noise_mode=None):
    """Callable (z, c) -> images: a loss plugin's generator for latents that are not prior draws.

    loss: a `LossPlugin` (uses its G_mapping/G_synthesis or G, possibly DDP-wrapped). Unlike the
    toolkit's `loss.run_G` there is no style mixing, the mapping's `w_avg` is not updated (moved or predicted
    latents must not shift the truncation centre) and BatchNorm running statistics are not updated
    either (they would then describe encoded or moved latents instead of the prior, and G_ema
    copies them); `noise_mode` goes to the synthesis network if given. sync: DDP gradient sync,
    for a pass whose backward reaches the weights.
    """
    synthesis_kwargs = {} if noise_mode is None else dict(noise_mode=noise_mode)
    bn_layers = batchnorm_layers(loss.G, loss.G_mapping, loss.G_synthesis)

    def generator(z, c):
        with frozen_batchnorm_stats(bn_layers):
            if not loss.has_mapping:
                with misc.ddp_sync(loss.G, sync):
                    return loss.G(z, c)
            with misc.ddp_sync(loss.G_mapping, sync):
                ws = loss.G_mapping(z, c, skip_w_avg_update=True)
            with misc.ddp_sync(loss.G_synthesis, sync):
                return loss.G_synthesis(ws, **synthesis_kwargs)
    return generator


class LatentStepGenerator(torch.nn.Module):
    """A generator whose forward moves z by I-FGSM steps against D before generating ("-z" sampling).

    Drop-in for `G_ema` in code that calls `G(z, c, **G_kwargs)` (the metrics): forward(z [N, z_dim],
    c [N, c_dim], **G_kwargs) -> G(mine_latents(z, ...), c, **G_kwargs). D is called with
    `D_kwargs` (e.g. `force_fp32=True` on CPU). decision: a callable (img, c, z) -> logits that
    replaces D's own logit (`decisions.snapshot_decision` for RFGAN / LOGAN-B snapshots).
    `steps=0` is plain G.
    """

    def __init__(self, G, D, steps=DEFAULT_SAMPLING_STEPS, eps=DEFAULT_SAMPLING_EPS, D_kwargs=None, decision=None):
        super().__init__()
        self.G = G
        self.D = D
        self.steps = int(steps)
        self.eps = float(eps)
        self.D_kwargs = dict(D_kwargs or {})
        self.decision = decision
        for name in ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels'):
            if hasattr(G, name):
                setattr(self, name, getattr(G, name))

    def move_latents(self, z, c, **G_kwargs):
        """The latents after the steps: [N, z_dim], detached."""
        generator, discriminator = network_callables(self.G, self.D, G_kwargs=G_kwargs, D_kwargs=self.D_kwargs)
        decision = self.decision if self.decision is not None else ignoring_latent(discriminator)
        return mine_latents_by_decision(z, c, generator, decision, eps=self.eps, steps=self.steps)

    def forward(self, z, c, **G_kwargs):
        return self.G(self.move_latents(z, c, **G_kwargs), c, **G_kwargs)
