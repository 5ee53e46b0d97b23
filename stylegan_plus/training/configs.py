"""`--cfg` presets: network, optimizer, loss and schedule settings by name.

The official presets (auto, stylegan2, paper256, paper512, paper1024, cifar) produce exactly the
options of the official train.py (docs/compat.md section 1.1), in the same key order, so
training_options.json matches (once `official_names.to_official` gives the classes their official
names). `dcgan` and `toy` add the low-resolution DCGAN and the 2-D MLP
families. A preset is a function `(resolution, num_gpus) -> Preset` registered with
`@register_config(name, description, ...)`.
"""

import dataclasses
import functools
from typing import Callable, Optional

import dnnlib
from stylegan_plus.losses.declarations import unknown_name_message

# Classes are named where they live; training_options.json gets the official `training.*` names
# from the compat table (official_names.py).
BASELINE_LOSS = 'stylegan_plus.losses.stylegan2.StyleGAN2Loss'
IMAGE_DATASET = 'stylegan_plus.data.dataset.ImageFolderDataset'
POINT_DATASET = 'stylegan_plus.data.dataset.PointCloudDataset'
STYLEGAN2_G = 'stylegan_plus.networks.stylegan2.Generator'
STYLEGAN2_D = 'stylegan_plus.networks.stylegan2.Discriminator'


class ConfigError(ValueError):
    """A `--cfg` name or a dataset the preset cannot serve; the message says what is accepted."""


@dataclasses.dataclass
class Preset:
    """What a preset produces. `args` holds, in this order, G_kwargs, D_kwargs, G_opt_kwargs,
    D_opt_kwargs, loss_kwargs, total_kimg, batch_size, batch_gpu, ema_kimg, ema_rampup (plus
    loop options the preset changes, e.g. G_reg_interval); `desc` is the run-name part."""
    desc: str
    args: dnnlib.EasyDict
    spec: Optional[object] = None   # the table row it came from, if any


@dataclasses.dataclass(frozen=True)
class ConfigEntry:
    name: str
    description: str
    build: Callable                 # (resolution, num_gpus) -> Preset
    family: str = 'stylegan2'       # network family: 'stylegan2', 'dcgan' or 'mlp'
    data_kind: str = 'image'        # 'image' (uint8 images) or 'points' (float32 [N, 2])
    dataset_class_name: str = IMAGE_DATASET


_configs = {}


def register_config(name, description, family='stylegan2', data_kind='image', dataset_class_name=IMAGE_DATASET):
    """Decorator: register `fn(resolution, num_gpus) -> Preset` as `--cfg=name`."""
    def decorator(fn):
        if name in _configs:
            raise ValueError(f'--cfg preset {name!r} is registered twice')
        _configs[name] = ConfigEntry(name, description, fn, family, data_kind, dataset_class_name)
        return fn
    return decorator


def list_configs():
    """dict name -> one-line description, in registration order (official presets first)."""
    return {name: entry.description for name, entry in _configs.items()}


def get_config(name):
    """The ConfigEntry of `name`; ConfigError with the choices (and a did-you-mean) otherwise."""
    if name not in _configs:
        raise ConfigError(unknown_name_message('--cfg preset', name, list(_configs)))
    return _configs[name]


def build_config(name, resolution, num_gpus=1):
    """Settings of preset `name` for a dataset of `resolution` px and `num_gpus` GPUs -> Preset."""
    entry = get_config(name)
    if num_gpus < 1 or num_gpus & (num_gpus - 1):
        raise ConfigError(f'number of GPUs must be a power of two, got {num_gpus}')
    return entry.build(resolution, num_gpus)

# ---------------------------------------------------------------------------------------------------
# Official presets.


@dataclasses.dataclass(frozen=True)
class StyleGAN2Spec:
    """One row of the official preset table."""
    ref_gpus: int           # GPUs the batch was tuned for: batch_gpu = mb // ref_gpus
    kimg: int               # training length
    mb: int                 # total batch
    mbstd: int              # minibatch-stddev group size
    fmaps: float            # channel_base = int(fmaps * 32768)
    lrate: float            # Adam learning rate of G and D
    gamma: float            # R1 weight
    ema: float              # G_ema half-life in kimg
    ramp: Optional[float]   # EMA ramp-up (None = off)
    map: int                # mapping network depth


PAPER_SPECS = {
    'stylegan2': StyleGAN2Spec(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10, ramp=None, map=8),
    'paper256': StyleGAN2Spec(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8),
    'paper512': StyleGAN2Spec(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8),
    'paper1024': StyleGAN2Spec(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None, map=8),
    'cifar': StyleGAN2Spec(ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2),
}

_PAPER_DESCRIPTIONS = {
    'stylegan2': 'StyleGAN2 config F settings (tuned for 1024 px on 8 GPUs)',
    'paper256': 'ADA paper settings for 256 px datasets',
    'paper512': 'ADA paper settings for 512 px datasets',
    'paper1024': 'ADA paper settings for 1024 px datasets',
    'cifar': 'ADA paper settings for CIFAR-10 (32 px, 2-layer mapping, no path length, orig D)',
}


def auto_spec(resolution, num_gpus):
    """The `auto` row, derived from the dataset resolution and the GPU count."""
    mb = max(min(num_gpus * min(4096 // resolution, 32), 64), num_gpus)
    return StyleGAN2Spec(ref_gpus=num_gpus, kimg=25000, mb=mb, mbstd=min(mb // num_gpus, 4),
                         fmaps=1 if resolution >= 512 else 0.5, lrate=0.002 if resolution >= 1024 else 0.0025,
                         gamma=0.0002 * (resolution ** 2) / mb, ema=mb * 10 / 32, ramp=0.05, map=2)


def stylegan2_args(spec, cifar=False):
    """Training options of a StyleGAN2 table row, as the official train.py builds them."""
    G_kwargs = dnnlib.EasyDict(class_name=STYLEGAN2_G, z_dim=512, w_dim=512,
                               mapping_kwargs=dnnlib.EasyDict(), synthesis_kwargs=dnnlib.EasyDict())
    D_kwargs = dnnlib.EasyDict(class_name=STYLEGAN2_D, block_kwargs=dnnlib.EasyDict(),
                               mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    for kwargs in (G_kwargs.synthesis_kwargs, D_kwargs):
        kwargs.channel_base = int(spec.fmaps * 32768)
        kwargs.channel_max = 512
    G_kwargs.mapping_kwargs.num_layers = spec.map
    for kwargs in (G_kwargs.synthesis_kwargs, D_kwargs):
        kwargs.num_fp16_res = 4     # mixed precision on by default (--fp32 turns it off)
        kwargs.conv_clamp = 256
    D_kwargs.epilogue_kwargs.mbstd_group_size = spec.mbstd
    opt_kwargs = dict(class_name='torch.optim.Adam', lr=spec.lrate, betas=[0, 0.99], eps=1e-8)
    args = dnnlib.EasyDict(G_kwargs=G_kwargs, D_kwargs=D_kwargs, G_opt_kwargs=dnnlib.EasyDict(opt_kwargs),
                           D_opt_kwargs=dnnlib.EasyDict(opt_kwargs),
                           loss_kwargs=dnnlib.EasyDict(class_name=BASELINE_LOSS, r1_gamma=spec.gamma))
    args.update(total_kimg=spec.kimg, batch_size=spec.mb, batch_gpu=spec.mb // spec.ref_gpus,
                ema_kimg=spec.ema, ema_rampup=spec.ramp)
    if cifar:
        args.loss_kwargs.pl_weight = 0
        args.loss_kwargs.style_mixing_prob = 0
        args.D_kwargs.architecture = 'orig'
    return args


@register_config('auto', 'automatic settings from the dataset resolution and the GPU count (default)')
def _auto_preset(resolution, num_gpus):
    spec = auto_spec(resolution, num_gpus)
    return Preset(desc=f'auto{num_gpus}', args=stylegan2_args(spec), spec=spec)


def _paper_preset(name, resolution, num_gpus):
    del resolution, num_gpus    # fixed settings
    spec = PAPER_SPECS[name]
    return Preset(desc=name, args=stylegan2_args(spec, cifar=(name == 'cifar')), spec=spec)


for _name, _description in _PAPER_DESCRIPTIONS.items():
    register_config(_name, _description)(functools.partial(_paper_preset, _name))
del _name, _description

# ---------------------------------------------------------------------------------------------------
# Low-resolution families.

DCGAN_RESOLUTIONS = (16, 32, 64)


def _adam(lr, beta1, beta2):
    return dnnlib.EasyDict(class_name='torch.optim.Adam', lr=lr, betas=[beta1, beta2], eps=1e-8)


def _small_net_args(G_kwargs, D_kwargs, opt_kwargs, loss_kwargs, kimg, batch, num_gpus):
    # EMA as the auto rule (10 kimg per 32 images of batch, ramped); no path length, so no Greg phase.
    return dnnlib.EasyDict(G_kwargs=G_kwargs, D_kwargs=D_kwargs, G_opt_kwargs=dnnlib.EasyDict(opt_kwargs),
                           D_opt_kwargs=dnnlib.EasyDict(opt_kwargs), loss_kwargs=loss_kwargs, total_kimg=kimg,
                           batch_size=batch, batch_gpu=max(batch // num_gpus, 1), ema_kimg=batch * 10 / 32,
                           ema_rampup=0.05, G_reg_interval=None)


@register_config('dcgan', 'DCGAN networks for 16, 32 or 64 px (BatchNorm G, strided-conv D, Adam 2e-4/0.5)',
                 family='dcgan')
def _dcgan_preset(resolution, num_gpus):
    if resolution not in DCGAN_RESOLUTIONS:
        raise ConfigError(f'--cfg=dcgan supports resolutions {", ".join(map(str, DCGAN_RESOLUTIONS))}; '
                          f'the dataset has {resolution} px (use --cfg=auto for larger images)')
    batch = 64
    channels = dict(channel_base=2048, channel_max=512)
    G_kwargs = dnnlib.EasyDict(class_name='stylegan_plus.networks.dcgan.Generator', z_dim=100, **channels)
    D_kwargs = dnnlib.EasyDict(class_name='stylegan_plus.networks.dcgan.Discriminator', **channels)
    # R1 weight from the auto rule; style mixing and path length need a mapping network.
    loss_kwargs = dnnlib.EasyDict(class_name=BASELINE_LOSS, r1_gamma=0.0002 * (resolution ** 2) / batch,
                                  pl_weight=0, style_mixing_prob=0)
    args = _small_net_args(G_kwargs, D_kwargs, _adam(0.0002, 0.5, 0.999), loss_kwargs, kimg=5000, batch=batch,
                           num_gpus=num_gpus)
    return Preset(desc='dcgan', args=args)


@register_config('toy', 'MLP networks for 2-D point data (.npy/.npz), plain GAN loss, Adam 1e-3/0.5',
                 family='mlp', data_kind='points', dataset_class_name=POINT_DATASET)
def _toy_preset(resolution, num_gpus):
    del resolution  # points: the dataset reports 1
    batch = 128
    widths = [128, 128, 128]
    G_kwargs = dnnlib.EasyDict(class_name='stylegan_plus.networks.mlp.Generator', z_dim=2, hidden_features=list(widths))
    D_kwargs = dnnlib.EasyDict(class_name='stylegan_plus.networks.mlp.Discriminator', hidden_features=list(widths))
    loss_kwargs = dnnlib.EasyDict(class_name=BASELINE_LOSS, r1_gamma=0, pl_weight=0, style_mixing_prob=0)
    args = _small_net_args(G_kwargs, D_kwargs, _adam(0.001, 0.5, 0.999), loss_kwargs, kimg=500, batch=batch,
                           num_gpus=num_gpus)
    args.D_reg_interval = None  # no R1 by default, so no lazy-regularisation phase either
    return Preset(desc='toy', args=args)
