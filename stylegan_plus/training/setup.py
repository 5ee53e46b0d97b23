"""Building what a training run needs: device, backends, networks, augment pipe, loss and phases.

Each function does one step of the official set-up order; `loop.Trainer` calls them in sequence.
The loss plugin is driven only through its hooks (docs/plugins.md), so nothing here names a
method.
"""

import copy
import os

import torch

import dnnlib
from stylegan_plus import devices
from stylegan_plus.losses.base import LossPlugin, plugin_hooks
from stylegan_plus.losses.phases import Phase, build_optimizers, default_phases
from stylegan_plus.losses.registry import default_registry
from stylegan_plus.sampling import prior as prior_lib
from torch_utils import misc
from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix

from . import distributed


def resolve_device(device, rank):
    """The torch.device of this process from the `device` option ('cuda', 'cpu' or None = CUDA if available).

    CUDA processes use the GPU of their local rank (torchrun's LOCAL_RANK, else the rank).
    """
    if isinstance(device, torch.device):
        return device
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    return devices.resolve_device(device, local_rank)   # the project's one device choice


def configure_backends(device, cudnn_benchmark, allow_tf32):
    """Process-wide settings of a run: cuDNN/TF32 on CUDA, the gradfix ops, and on CPU the allocator
    setting that keeps freed activation buffers for reuse (`misc.keep_cpu_memory_for_reuse`)."""
    if device.type == 'cpu':
        misc.keep_cpu_memory_for_reuse()
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
    conv2d_gradfix.enabled = True
    grid_sample_gradfix.enabled = True


def cpu_precision(G_kwargs, D_kwargs, device, log=print):
    """Copies of the network kwargs, with fp16 layers turned off when training on CPU.

    torch runs fp16 convolutions on CPU, but tens of times slower than fp32, so `num_fp16_res` is
    set to 0 (one notice). `conv_clamp` is kept: it is part of the function the network computes
    (and of what a later GPU run of the same pickle computes), not of its precision.
    """
    G_kwargs, D_kwargs = copy.deepcopy(G_kwargs), copy.deepcopy(D_kwargs)
    if device.type != 'cpu':
        return G_kwargs, D_kwargs
    targets = [G_kwargs.get('synthesis_kwargs'), D_kwargs]
    changed = [t for t in targets if t is not None and (t.get('num_fp16_res') or 0) > 0]
    for target in changed:
        target['num_fp16_res'] = 0
    if changed:
        log('Note: training on CPU, so the fp16 layers are switched off (num_fp16_res=0; conv_clamp kept).')
    return G_kwargs, D_kwargs


def build_networks(G_kwargs, D_kwargs, dataset, device, with_ema=True):
    """G, D (train mode, no grads) and G_ema (eval copy of G; None without `with_ema`), on `device`."""
    common = dict(c_dim=dataset.label_dim, img_resolution=dataset.resolution, img_channels=dataset.num_channels)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval() if with_ema else None
    return G, D, G_ema


@torch.no_grad()
def print_summaries(G, D, batch_gpu, device):
    """Module tables of G and D (rank 0). Run in eval mode, so running statistics such as
    BatchNorm's or w_avg are not moved by the dummy inputs."""
    z = torch.zeros([batch_gpu, G.z_dim], device=device)
    c = torch.zeros([batch_gpu, G.c_dim], device=device)
    G.eval()
    D.eval()
    try:
        img = misc.print_module_summary(G, [z, c])
        misc.print_module_summary(D, [img, c])
    finally:
        G.train()
        D.train()


def build_augment_pipe(augment_kwargs, augment_p, ada_target, device):
    """(augment_pipe or None, True when ADA adapts its p from the loss's real-logit signs)."""
    if augment_kwargs is None or not (augment_p > 0 or ada_target is not None):
        return None, False
    pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
    pipe.p.copy_(torch.as_tensor(augment_p))
    return pipe, ada_target is not None


def build_loss(loss_kwargs, G, D, augment_pipe, device, z_dist=None):
    """(loss object, its plugin hooks, extra networks dict).

    Generators with a mapping/synthesis split get the official keywords; others get `G=`.
    z_dist: the run's latent prior (`--z-dist`; None = normal), given to the loss and each of its
    parts as `z_dist` before anything is drawn (`sample_z`, style mixing).
    """
    if hasattr(G, 'mapping') and hasattr(G, 'synthesis'):
        nets = dict(G_mapping=G.mapping, G_synthesis=G.synthesis)
    else:
        nets = dict(G=G)
    loss = dnnlib.util.construct_class_by_name(device=device, **nets, D=D, augment_pipe=augment_pipe, **loss_kwargs)
    z_dist = prior_lib.canonical_z_dist(z_dist)
    give_z_dist(loss, z_dist)
    hooks = plugin_hooks(loss, G.z_dim, z_dist)
    extras = hooks.extra_modules()
    for module in extras.values():
        module.requires_grad_(False)
    return loss, hooks, extras


def describe_loss(loss):
    """The `--loss` spelling of a loss object: its registered name(s) joined by '+', else its class path."""
    names = {entry.cls: entry.name for entry in default_registry().entries()}

    def name_of(obj):
        cls = type(obj)
        return names.get(cls, f'{cls.__module__}.{cls.__qualname__}')
    return '+'.join(name_of(part) for part in getattr(loss, 'parts', [loss]))


def give_run_dir(loss, run_dir):
    """Set `loss.run_dir` (and that of each part of a composed loss) to the run folder.

    Plugins write their own files there (e.g. RFGAN's `rf-ae.pkl`). Set after construction and
    before the first phase, on every process.
    """
    for obj in (loss, *getattr(loss, 'parts', ())):
        try:
            obj.run_dir = run_dir
        except AttributeError:
            pass    # an official-style loss with read-only attributes simply does not get one


def give_z_dist(loss, z_dist):
    """Set `z_dist` (the run's prior name) on the loss and on each part of a composed loss.

    An official-style loss object without plugin hooks gets none (the adapter of `plugin_hooks`
    draws its latents).
    """
    for obj in (loss, *getattr(loss, 'parts', ())):
        if isinstance(obj, LossPlugin):
            obj.z_dist = z_dist


def check_batch_split(batch_size, num_gpus, batch_gpu):
    """Raise ValueError unless the total batch splits into processes x whole rounds of `batch_gpu`."""
    if batch_gpu < 1 or batch_size % (num_gpus * batch_gpu) != 0:
        raise ValueError(f'batch_size={batch_size} is not divisible by num_gpus={num_gpus} x batch_gpu={batch_gpu}')


class _MeanGradientOptimizer:
    """An optimizer whose `step()` first turns the accumulated gradients into the full-batch mean.

    Each accumulation round's loss is a mean over its `batch_gpu` images, so the summed gradient of
    `rounds` rounds is divided by `rounds`; processes are averaged with one all-reduce. The step
    then equals one taken on the whole batch at once (for losses that treat images independently).
    """

    def __init__(self, optimizer, world_size, rounds):
        self.optimizer = optimizer
        self.world_size = world_size
        self.rounds = rounds
        self.params = [p for group in optimizer.param_groups for p in group['params']]

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self):
        if self.rounds > 1:
            for param in self.params:
                if param.grad is not None:
                    param.grad.div_(self.rounds)
        distributed.average_gradients(self.params, self.world_size)
        self.optimizer.step()

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)


def plan_phases(hooks, *, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval, g_steps, d_steps=1,
                g_batch_factor=1):
    """The phase list: the official phases (`g_steps` / `d_steps` executions of the G / D main
    phase per iteration, the G main one on `g_batch_factor` x the batch), edited by the plugin.
    Raises ValueError when g_batch_factor > 1 and the plugin's list has no G main phase that kept it."""
    defaults = default_phases(G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval, g_steps, d_steps,
                              g_batch_factor)
    phases = hooks.phases(defaults, dnnlib.EasyDict(G=G_opt_kwargs, D=D_opt_kwargs))
    if g_batch_factor > 1 and not any(spec.name in Phase.mains('G') and spec.batch_factor == g_batch_factor
                                      for spec in phases):
        raise ValueError(f'--g-batch-factor={g_batch_factor}: the loss\'s phases '
                         f'({", ".join(str(spec.name) for spec in phases)}) have no G main phase that takes it')
    return phases


def build_phases(hooks, modules, *, num_gpus, rounds=1, **phase_kwargs):
    """(phase list, optimizers by key): `plan_phases(hooks, **phase_kwargs)` and their optimizers.

    rounds: accumulation rounds per optimizer step (`batch_size // (num_gpus * batch_gpu)`).
    """
    phases = plan_phases(hooks, **phase_kwargs)
    optimizers = build_optimizers(phases, modules)
    if num_gpus > 1 or rounds > 1:
        optimizers = {key: _MeanGradientOptimizer(opt, num_gpus, rounds) for key, opt in optimizers.items()}
    return phases, optimizers
