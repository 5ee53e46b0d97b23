"""StyleGAN2 (config F) generator and discriminator, drop-in for StyleGAN2-ADA's `training.networks`.

What is fixed by compatibility and kept: class and function names, constructor and forward
signatures, parameter/buffer names and their registration order (so `state_dict()` order), the
order of random draws at construction (same torch seed -> same weights), and the arithmetic of
every forward pass (same `conv2d_resample` paths and bias_act order). Everything else is laid out
afresh: each stack is built from a per-resolution plan (`_resolution_plan`), and the modulated
convolution is split into small pure functions.

The one intentional numeric difference: demodulation factors are computed as
`rsqrt(styles^2 @ sum_k(weight^2)^T + 1e-8)` rather than by squaring every per-sample kernel. The
value is the same up to float rounding (images move by a few 1e-6, less than the fused and split
modconv paths differ from each other) and no [N, O, I, k, k] temporary is needed, which saves
about a tenth of a CPU training step.

Classes are `persistence.persistent_class`es, so pickles carry this file's source and re-run it on
load, possibly in an official checkout: the module may import numpy, torch and the official
`torch_utils` names only, never `stylegan_plus`.

Fork extension: `Discriminator.forward(..., return_features=True)` also returns the output of the
4x4 epilogue's fully connected layer (the input of its `out` layer).
"""

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import conv2d_resample
from torch_utils.ops import fma
from torch_utils.ops import upfirdn2d

__all__ = [
    'normalize_2nd_moment', 'modulated_conv2d',
    'FullyConnectedLayer', 'Conv2dLayer', 'MappingNetwork',
    'SynthesisLayer', 'ToRGBLayer', 'SynthesisBlock', 'SynthesisNetwork', 'Generator',
    'DiscriminatorBlock', 'MinibatchStdLayer', 'DiscriminatorEpilogue', 'Discriminator',
]

ARCHITECTURES = ('orig', 'skip', 'resnet')
NOISE_MODES = ('random', 'const', 'none')
RESIDUAL_GAIN = float(np.sqrt(0.5))  # both halves of a residual sum, so its variance stays that of one branch
DEMOD_EPS = 1e-8

#----------------------------------------------------------------------------
# Checks and the per-resolution plan.

def _choice(name, value, accepted):
    if value not in accepted:
        raise ValueError(f'{name}={value!r} is not supported; expected one of {accepted}')
    return value


def _log2_exact(img_resolution):
    if not isinstance(img_resolution, (int, np.integer)) or img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f'img_resolution={img_resolution!r} is not supported; expected a power of two >= 4')
    return int(img_resolution).bit_length() - 1


def _resolution_plan(img_resolution, channel_base, channel_max, num_fp16_res):
    """[(res, channels, fp16)] for 4x4 .. img_resolution, ascending; channels = min(base // res, max).

    fp16 covers the `num_fp16_res` finest resolutions, never below 8x8.
    """
    top = _log2_exact(img_resolution)
    fp16_from = max(2 ** (top + 1 - num_fp16_res), 8)
    sizes = [2 ** k for k in range(2, top + 1)]
    return [(res, min(channel_base // res, channel_max), res >= fp16_from) for res in sizes]


def _layout(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


# fp32 blocks on the CPU run NHWC whatever the fp16 setting says: oneDNN's 3x3 convs are ~15 %
# faster there and the depthwise FIR convs of upfirdn2d ~3x (measured, 1 thread, 32 px, batch 8).
CPU_FP32_CHANNELS_LAST = True


def _block_layout(fp16_channels_last, force_fp32, dtype, nhwc_if_fp32):
    """Memory format of a block's activations: the fp16 setting, or NHWC for fp32 when `nhwc_if_fp32`
    (callers pass: on the CPU, and no slow-in-NHWC double backward expected)."""
    if fp16_channels_last and not force_fp32:
        return torch.channels_last
    return _layout(CPU_FP32_CHANNELS_LAST and nhwc_if_fp32 and dtype == torch.float32)


def _compute_dtype(use_fp16, force_fp32):
    return torch.float16 if (use_fp16 and not force_fp32) else torch.float32


def _default_gain(activation):
    return bias_act.activation_funcs[activation].def_gain


def _plain_fp32(x):
    return x.to(dtype=torch.float32, memory_format=torch.contiguous_format)


def _sum_or_first(total, term):
    return term if total is None else total + term


def _times(t, gain):
    return t if gain == 1 else t * gain


def _finish(x, bias, act, act_gain, gain, conv_clamp):
    """Bias, activation, output scale `act_gain * gain`, then a clamp that scales with `gain` too."""
    limit = None if conv_clamp is None else conv_clamp * gain
    bias = None if bias is None else bias.to(x.dtype)
    return bias_act.bias_act(x, bias, act=act, gain=act_gain * gain, clamp=limit)

#----------------------------------------------------------------------------
# Pure functions.

def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """x / sqrt(mean(x^2 along `dim`) + eps); any shape and float dtype, returned unchanged in both."""
    inv_rms = (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
    return x * inv_rms


def _fp16_prescale(weight, styles):
    """Rescale weight rows and styles to peak magnitude 1 so fp16 activations cannot overflow.

    Demodulation divides the scale out again, so the result is unchanged up to rounding.
    """
    unit = float(1 / np.sqrt(weight[0].numel()))
    row_peak = weight.abs().amax(dim=(1, 2, 3), keepdim=True)     # [O, 1, 1, 1]
    style_peak = styles.abs().amax(dim=1, keepdim=True)          # [N, 1]
    return weight * (unit / row_peak), styles / style_peak


def _demod_factors(weight, styles):
    """[N, O]: 1 / |weight[o] * styles[n]| (L2 over input channels and taps), in float32.

    sum_{i,k} (w[o,i,k] s[n,i])^2 = sum_i s[n,i]^2 sum_k w[o,i,k]^2: one small matmul instead of
    squaring an [N, O, I, kh, kw] tensor.
    """
    energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()
    return (energy + DEMOD_EPS).rsqrt()


def _grouped_conv(x, kernels, conv_args):
    """Each sample of x [N, I, H, W] convolved with its own kernels [N, O, I, kh, kw] (one grouped conv)."""
    batch, out_ch, in_ch, kh, kw = kernels.shape
    flat = x.reshape(1, batch * in_ch, *x.shape[2:])
    y = conv2d_resample.conv2d_resample(x=flat, w=kernels.reshape(batch * out_ch, in_ch, kh, kw).to(x.dtype),
                                        groups=int(batch), **conv_args)  # int(): a traced size is a tensor
    return y.reshape(batch, out_ch, *y.shape[2:])


def _shared_conv(x, weight, styles, demod, noise, conv_args):
    """Modulation on activations around one conv shared by the batch; noise fused into the demod multiply."""
    scale_in = styles.to(x.dtype).reshape(*styles.shape, 1, 1)
    y = conv2d_resample.conv2d_resample(x=x * scale_in, w=weight.to(x.dtype), **conv_args)
    if demod is None:
        return y if noise is None else y.add_(noise.to(y.dtype))
    scale_out = demod.to(y.dtype).reshape(*demod.shape, 1, 1)
    return y * scale_out if noise is None else fma.fma(y, scale_out, noise.to(y.dtype))


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True):
    """Convolution whose input channels are scaled per sample by `styles`, optionally demodulated.

    x: [N, I, H, W] float32 or float16; weight: [O, I, kh, kw] float32; styles: [N, I] float32;
    noise: None or a tensor broadcastable to the output, added after demodulation.
    Returns [N, O, H', W'] in x.dtype (H' from up/down/padding as in `conv2d_resample`).
    fused_modconv=True runs one grouped conv with per-sample kernels; False scales activations
    before and after a conv shared by the batch (same result up to rounding).
    """
    if weight.ndim != 4 or styles.shape != (x.shape[0], weight.shape[1]) or x.shape[1] != weight.shape[1]:
        raise ValueError(f'modulated_conv2d: x {list(x.shape)}, weight {list(weight.shape)} and '
                         f'styles {list(styles.shape)} do not fit together ([N,I,H,W], [O,I,kh,kw], [N,I])')
    if demodulate and x.dtype == torch.float16:
        weight, styles = _fp16_prescale(weight, styles)
    demod = _demod_factors(weight, styles) if demodulate else None
    conv_args = dict(up=up, down=down, f=resample_filter, flip_weight=flip_weight, padding=padding)
    if fused_modconv:
        # Per-sample kernels in one pass over [N, O, I, kh, kw]: fold demod into the [N, O, I] scale first.
        scale = styles.unsqueeze(1) if demod is None else styles.unsqueeze(1) * demod.unsqueeze(2)
        y = _grouped_conv(x, weight.unsqueeze(0) * scale.unsqueeze(-1).unsqueeze(-1), conv_args)
        return y if noise is None else y.add_(noise)
    return _shared_conv(x, weight, styles, demod, noise, conv_args)

#----------------------------------------------------------------------------
# Equalized-learning-rate layers.

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer, weights scaled at run time. forward: x [N, in_features] -> [N, out_features] float."""

    def __init__(self, in_features, out_features, bias=True, activation='linear', lr_multiplier=1, bias_init=0):
        super().__init__()
        # The parameter is stored divided by lr_multiplier and multiplied back in forward, which
        # scales its effective learning rate by lr_multiplier under Adam.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain, self.bias_gain = float(lr_multiplier / np.sqrt(in_features)), lr_multiplier
        self.activation = activation

    def forward(self, x):
        weight = self.weight.to(x.dtype) * self.weight_gain
        bias = None if self.bias is None else _times(self.bias.to(x.dtype), self.bias_gain)
        if self.activation == 'linear':
            return torch.nn.functional.linear(x, weight, bias)
        return bias_act.bias_act(torch.nn.functional.linear(x, weight), bias, act=self.activation)

    def extra_repr(self):
        out_features, in_features = self.weight.shape
        return f'{in_features} -> {out_features}, activation={self.activation}'


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Conv with optional FIR up/downsampling, bias, activation and clamp, weights scaled at run time.

    forward(x [N, in_channels, H, W], gain=1) -> [N, out_channels, H*up/down, W*up/down] in x.dtype.
    `gain` multiplies the activation output and the clamp. trainable=False keeps weight and bias as
    buffers (same state_dict names, invisible to optimizers): that is how Freeze-D freezes layers.
    """

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation='linear', up=1, down=1,
                 resample_filter=[1, 3, 3, 1], conv_clamp=None, channels_last=False, trainable=True):
        super().__init__()
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        kernel = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        tensors = dict(weight=kernel.to(memory_format=_layout(channels_last)),
                       bias=torch.zeros([out_channels]) if bias else None)
        for name, value in tensors.items():
            if value is None:
                setattr(self, name, None)
            elif trainable:
                setattr(self, name, torch.nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.up, self.down, self.padding = up, down, kernel_size // 2
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size ** 2))
        self.activation, self.act_gain, self.conv_clamp = activation, _default_gain(activation), conv_clamp

    def forward(self, x, gain=1):
        kernel = (self.weight * self.weight_gain).to(x.dtype)
        # A transposed conv (up > 1) wants the kernel unflipped; see conv2d_resample.
        unflipped = self.up > 1
        y = conv2d_resample.conv2d_resample(x, kernel, self.resample_filter, self.up, self.down, self.padding,
                                            flip_weight=not unflipped)
        return _finish(y, self.bias, self.activation, self.act_gain, gain, self.conv_clamp)

#----------------------------------------------------------------------------
# Mapping network.

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """Latent z (and label c) -> intermediate latent w through an MLP.

    forward: z [N, z_dim] (None if z_dim == 0), c [N, c_dim] (ignored if c_dim == 0) ->
    [N, num_ws, w_dim] float32, or [N, w_dim] when num_ws is None. In training mode the running
    mean `w_avg` is updated (EMA with w_avg_beta); truncation pulls w towards it.
    """

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                 activation='lrelu', lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        label_width = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        hidden = w_dim if layer_features is None else layer_features
        widths = [z_dim + label_width] + [hidden] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, label_width)
        for idx, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            setattr(self, f'fc{idx}', FullyConnectedLayer(fan_in, fan_out, activation=activation,
                                                          lr_multiplier=lr_multiplier))
        if None not in (num_ws, w_avg_beta):    # only a broadcasting mapping can truncate
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def _input(self, z, c):
        """[N, z_dim + embed width]: z and the embedded label, each scaled to unit RMS on its own."""
        pieces = []
        if self.z_dim:
            _require_width('z', z, self.z_dim)
            pieces.append(z.to(torch.float32))
        if self.c_dim:
            _require_width('c', c, self.c_dim)
            pieces.append(self.embed(c.to(torch.float32)))
        unit = [normalize_2nd_moment(piece) for piece in pieces]
        return unit[0] if len(unit) == 1 else torch.cat(unit, dim=1)

    def _truncate(self, w, psi, cutoff):
        if self.w_avg_beta is None:
            raise ValueError(f'truncation_psi={psi} needs w_avg, which this mapping (w_avg_beta=None) does not keep')
        if cutoff is None or self.num_ws is None:
            return self.w_avg.lerp(w, psi)
        return torch.cat([self.w_avg.lerp(w[:, :cutoff], psi), w[:, cutoff:]], dim=1)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False):
        w = self._input(z, c)
        for layer in [getattr(self, f'fc{i}') for i in range(self.num_layers)]:
            w = layer(w)
        if self.training and self.w_avg_beta is not None and not skip_w_avg_update:
            batch_mean = w.detach().mean(dim=0)
            self.w_avg.copy_(batch_mean.lerp(self.w_avg, self.w_avg_beta))
        w = w if self.num_ws is None else w.unsqueeze(1).repeat([1, self.num_ws, 1])
        return w if truncation_psi == 1 else self._truncate(w, truncation_psi, truncation_cutoff)


def _require_width(name, tensor, width):
    if tensor is None or tensor.ndim != 2 or tensor.shape[1] != width:
        got = None if tensor is None else list(tensor.shape)
        raise ValueError(f'{name} must have shape [N, {width}], got {got}')

#----------------------------------------------------------------------------
# Synthesis network.

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated, demodulated conv (3x3, optionally 2x up) + per-pixel noise + bias + activation.

    forward: x [N, in_channels, res/up, res/up], w [N, w_dim] -> [N, out_channels, res, res] in x.dtype.
    noise_mode: 'random' (fresh N(0,1) per call), 'const' (the stored `noise_const`) or 'none';
    either noise is scaled by the learned `noise_strength`.
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                 activation='lrelu', resample_filter=[1, 3, 3, 1], conv_clamp=None, channels_last=False):
        super().__init__()
        # Random draws in order: affine weight, conv weight, constant noise.
        affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        kernel = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        fixed_noise = torch.randn([resolution, resolution]) if use_noise else None
        self.weight = torch.nn.Parameter(kernel.to(memory_format=_layout(channels_last)))
        if use_noise:
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        if use_noise:
            self.register_buffer('noise_const', fixed_noise)
        self.affine = affine
        self.up, self.padding, self.resolution = up, kernel_size // 2, resolution
        self.activation, self.act_gain = activation, _default_gain(activation)
        self.use_noise, self.conv_clamp = use_noise, conv_clamp

    def _noise(self, batch, device, noise_mode):
        _choice('noise_mode', noise_mode, NOISE_MODES)
        if noise_mode == 'none' or not self.use_noise:
            return None
        if noise_mode == 'random':
            fresh = torch.randn([batch, 1, self.resolution, self.resolution], device=device)  # one map per sample
            return fresh * self.noise_strength
        return self.noise_strength * self.noise_const

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        additive = self._noise(x.shape[0], x.device, noise_mode)
        y = modulated_conv2d(x, self.weight, self.affine(w), additive, self.up, 1, self.padding, self.resample_filter,
                             flip_weight=self.up == 1, fused_modconv=fused_modconv)
        return _finish(y, self.bias, self.activation, self.act_gain, gain, self.conv_clamp)


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, linear output.

    forward: x [N, in_channels, H, W], w [N, w_dim] -> [N, out_channels, H, W] in x.dtype.
    """

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        kernel = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(kernel.to(memory_format=_layout(channels_last)))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.affine = affine
        self.conv_clamp, self.weight_gain = conv_clamp, float(1 / np.sqrt(in_channels * kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        # Nothing normalises the kernel here, so the equalized-lr scale rides on the styles.
        y = modulated_conv2d(x, self.weight, self.weight_gain * self.affine(w), demodulate=False,
                             fused_modconv=fused_modconv)
        return _finish(y, self.bias, 'linear', 1, 1, self.conv_clamp)


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution of G: (learned const | 2x-up conv0) -> conv1 -> (torgb), skip/resnet wiring.

    forward: x [N, in_channels, res/2, res/2] or None (first block), img [N, img_channels, res/2, res/2]
    float32 or None, ws [N, num_conv + num_torgb, w_dim] -> (x [N, out_channels, res, res] in the
    block's dtype, img [N, img_channels, res, res] float32, or None when no RGB output exists yet).
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture='skip',
                 resample_filter=[1, 3, 3, 1], conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                 **layer_kwargs):
        _choice('architecture', architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16, self.channels_last = use_fp16, use_fp16 and fp16_channels_last
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1 if (is_last or architecture == 'skip') else 0
        per_layer = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp,
                         channels_last=self.channels_last, **layer_kwargs)
        if in_channels:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter, **per_layer)
        else:   # the first block starts from a learned constant
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        # conv1 keeps the default resample filter (unused at up=1) so state dicts match official ones.
        self.conv1 = SynthesisLayer(out_channels, out_channels, **per_layer)
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, 1, conv_clamp, self.channels_last)
        if architecture == 'resnet' and in_channels > 0:
            self.skip = Conv2dLayer(in_channels, out_channels, 1, up=2, bias=False,
                                    channels_last=self.channels_last, resample_filter=resample_filter)

    def _grouped_by_default(self, dtype, batch):
        if self.training:
            return False    # backward through per-sample kernels costs more than the grouped conv saves
        if dtype == torch.float32:
            return True
        with misc.suppress_tracer_warnings():   # `batch` is a traced size under torch.jit.trace
            return int(batch) == 1              # fp16 grouped convs are slow unless there is one group

    def _features(self, x, batch, per_w, layout, dtype, run):
        if not self.in_channels:
            start = self.const.to(dtype).unsqueeze(0).repeat([batch, 1, 1, 1]).to(memory_format=layout)
            return self.conv1(start, per_w[0], **run)
        x = x.to(dtype=dtype, memory_format=layout)
        if self.architecture == 'resnet':
            shortcut = self.skip(x, gain=RESIDUAL_GAIN)
            main = self.conv1(self.conv0(x, per_w[0], **run), per_w[1], gain=RESIDUAL_GAIN, **run)
            return shortcut.add_(main)
        return self.conv1(self.conv0(x, per_w[0], **run), per_w[1], **run)

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, **layer_kwargs):
        if ws.ndim != 3 or ws.shape[1:] != (self.num_conv + self.num_torgb, self.w_dim):
            raise ValueError(f'b{self.resolution}: ws must be [N, {self.num_conv + self.num_torgb}, {self.w_dim}], '
                             f'got {list(ws.shape)}')
        dtype = _compute_dtype(self.use_fp16, force_fp32)
        layout = _block_layout(self.channels_last, force_fp32, dtype, ws.device.type == 'cpu')
        grouped = self._grouped_by_default(dtype, ws.shape[0]) if fused_modconv is None else fused_modconv
        per_w = ws.unbind(dim=1)
        x = self._features(x, ws.shape[0], per_w, layout, dtype, dict(fused_modconv=grouped, **layer_kwargs))
        return x, self._rgb(x, img, per_w, grouped)

    def _rgb(self, x, img, per_w, fused_modconv):
        """Skip wiring: the coarser image, upsampled, plus this block's own RGB output (float32)."""
        coarse = None if img is None else upfirdn2d.upsample2d(img, self.resample_filter)
        if not self.num_torgb:
            return coarse
        own = _plain_fp32(self.torgb(x, per_w[self.num_conv], fused_modconv=fused_modconv))
        return own if coarse is None else coarse.add_(own)


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, img_resolution, img_resolution] float32, ~[-1, 1].

    Blocks b4 .. b{img_resolution}. A block's torgb and the next block's conv0 read the same w,
    so w indices advance by num_conv per block and only the last torgb adds one.
    """

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=0,
                 **block_kwargs):
        plan = _resolution_plan(img_resolution, channel_base, channel_max, num_fp16_res)
        super().__init__()
        self.w_dim, self.img_channels = w_dim, img_channels
        self.img_resolution, self.img_resolution_log2 = img_resolution, _log2_exact(img_resolution)
        self.block_resolutions = [res for res, _, _ in plan]
        widths_in = [0] + [channels for _, channels, _ in plan[:-1]]   # the 4x4 block starts from a constant
        for (res, channels, fp16), in_channels in zip(plan, widths_in):
            self.add_module(f'b{res}', SynthesisBlock(in_channels, channels, w_dim=w_dim, resolution=res,
                                                      img_channels=img_channels, is_last=(res == img_resolution),
                                                      use_fp16=fp16, **block_kwargs))
        self.num_ws = sum(block.num_conv for block in self._blocks()) + self._blocks()[-1].num_torgb

    def _blocks(self):
        return [getattr(self, f'b{res}') for res in self.block_resolutions]

    def forward(self, ws, **block_kwargs):
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f'ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}')
        ws = ws.float()
        features, image, offset = None, None, 0
        for block in self._blocks():
            span = block.num_conv + block.num_torgb
            features, image = block(features, image, ws[:, offset:offset + span], **block_kwargs)
            offset += block.num_conv
        return image


@persistence.persistent_class
class Generator(torch.nn.Module):
    """z [N, z_dim], c [N, c_dim] -> img [N, img_channels, img_resolution, img_resolution] float32."""

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={}):
        super().__init__()
        # Pickled state lists these plain attributes in this order (then persistence's init args).
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        # Synthesis comes first: it fixes num_ws, and its random draws precede the mapping's.
        synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.synthesis = synthesis
        self.num_ws = synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, synthesis.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        latents = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(latents, **synthesis_kwargs)

#----------------------------------------------------------------------------
# Discriminator.

@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """One resolution of D: (fromrgb) -> conv0 -> conv1 (2x down), plus a 1x1 shortcut for 'resnet'.

    forward: x [N, in_channels, res, res] or None (first block), img [N, img_channels, res, res] or None
    -> (x [N, out_channels, res/2, res/2] in the block's dtype, img downsampled for 'skip', else None).
    Layers are numbered across D in construction order; those below freeze_layers are frozen.
    """

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels, first_layer_idx,
                 architecture='resnet', activation='lrelu', resample_filter=[1, 3, 3, 1], conv_clamp=None,
                 use_fp16=False, fp16_channels_last=False, freeze_layers=0):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f'in_channels={in_channels} is not supported; expected 0 or tmp_channels={tmp_channels}')
        _choice('architecture', architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.first_layer_idx, self.architecture = first_layer_idx, architecture
        self.use_fp16, self.channels_last = use_fp16, use_fp16 and fp16_channels_last
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        # Declarative layer list in construction order; that order also numbers the layers for Freeze-D.
        conv = dict(activation=activation, conv_clamp=conv_clamp)
        halving = dict(down=2, resample_filter=resample_filter)
        specs = [('fromrgb', self._reads_image, img_channels, tmp_channels, 1, conv),
                 ('conv0', True, tmp_channels, tmp_channels, 3, conv),
                 ('conv1', True, tmp_channels, out_channels, 3, dict(conv, **halving)),
                 ('skip', architecture == 'resnet', tmp_channels, out_channels, 1, dict(bias=False, **halving))]
        specs = [spec for spec in specs if spec[1]]
        self.num_layers = len(specs)
        for idx, (name, _, fan_in, fan_out, kernel, extra) in enumerate(specs):
            trainable = first_layer_idx + idx >= freeze_layers
            self.add_module(name, Conv2dLayer(fan_in, fan_out, kernel, channels_last=self.channels_last,
                                              trainable=trainable, **extra))

    @property
    def _reads_image(self):
        return self.in_channels == 0 or self.architecture == 'skip'

    def forward(self, x, img, force_fp32=False, cpu_nhwc=True):
        """cpu_nhwc=False keeps fp32 CPU activations NCHW (the Discriminator asks so for gradient penalties)."""
        dtype = _compute_dtype(self.use_fp16, force_fp32)
        nhwc_if_fp32 = cpu_nhwc and (img if x is None else x).device.type == 'cpu'
        cast = dict(dtype=dtype, memory_format=_block_layout(self.channels_last, force_fp32, dtype, nhwc_if_fp32))
        h = None if x is None else x.to(**cast)
        if not self._reads_image:
            return self._convs(h), img
        img = img.to(**cast)
        h = _sum_or_first(h, self.fromrgb(img))
        smaller = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None
        return self._convs(h), smaller

    def _convs(self, h):
        if self.architecture == 'resnet':
            shortcut = self.skip(h, gain=RESIDUAL_GAIN)
            return shortcut.add_(self.conv1(self.conv0(h), gain=RESIDUAL_GAIN))
        return self.conv1(self.conv0(h))


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Append the std. dev. of features across sample groups. x [N, C, H, W] -> [N, C + num_channels, H, W].

    G = min(group_size, N) (N when group_size is None) must divide N; sample i is grouped with the
    samples i + k * N/G. Channels split into num_channels slices, one averaged std map per slice.
    """

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x):
        batch, channels, height, width = x.shape
        groups = batch if self.group_size is None else min(self.group_size, batch)
        slices = self.num_channels
        # [G, N/G, slices, C/slices, H, W]: statistics run over dim 0, the members of a group.
        members = x.reshape(groups, -1, slices, channels // slices, height, width)
        centred = members - members.mean(dim=0)
        spread = centred.square().mean(dim=0).add(1e-8).sqrt()     # [N/G, slices, C/slices, H, W]
        summary = spread.mean(dim=[2, 3, 4])                      # [N/G, slices]
        maps = summary.reshape(-1, slices, 1, 1).repeat(groups, 1, height, width)
        return torch.cat([x, maps], dim=1)


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 end of D, always fp32: (fromrgb) -> mbstd -> conv -> fc -> out (-> projection on cmap).

    forward: x [N, in_channels, 4, 4], img [N, img_channels, 4, 4] (used by 'skip'), cmap [N, cmap_dim]
    or None -> logits [N, 1] float32; with return_features=True -> (logits, fc output [N, in_channels]).
    """

    def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture='resnet', mbstd_group_size=4,
                 mbstd_num_channels=1, activation='lrelu', conv_clamp=None):
        _choice('architecture', architecture, ARCHITECTURES)
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation=activation)
        has_mbstd = mbstd_num_channels > 0
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if has_mbstd else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, conv_clamp=conv_clamp,
                                activation=activation)
        flat = in_channels * resolution * resolution
        self.fc = FullyConnectedLayer(flat, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, max(cmap_dim, 1))

    def forward(self, x, img, cmap, force_fp32=False, return_features=False):
        del force_fp32  # the epilogue is fp32 whatever the blocks use
        h = _plain_fp32(x)
        if self.architecture == 'skip':
            h = h + self.fromrgb(_plain_fp32(img))
        h = h if self.mbstd is None else self.mbstd(h)
        features = self.fc(self.conv(h).flatten(1))
        scores = self.out(features)
        if self.cmap_dim:
            # Projection discriminator: inner product with the label embedding, variance-preserving.
            scores = (scores * cmap).sum(dim=1, keepdim=True) * float(1 / np.sqrt(self.cmap_dim))
        return (scores, features) if return_features else scores


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """img [N, img_channels, R, R] ~[-1, 1], c [N, c_dim] -> logits [N, 1] float32.

    return_features=True returns (logits, features [N, channels at 4x4]): the epilogue's fc output.
    Blocks b{R} .. b8 (descending), the label mapping (c_dim > 0), then the epilogue b4.
    """

    def __init__(self, c_dim, img_resolution, img_channels, architecture='resnet', channel_base=32768,
                 channel_max=512, num_fp16_res=0, conv_clamp=None, cmap_dim=None, block_kwargs={},
                 mapping_kwargs={}, epilogue_kwargs={}):
        plan = _resolution_plan(img_resolution, channel_base, channel_max, num_fp16_res)
        super().__init__()
        self.c_dim, self.img_channels = c_dim, img_channels
        self.img_resolution, self.img_resolution_log2 = img_resolution, _log2_exact(img_resolution)
        widths = {res: channels for res, channels, _ in plan}
        descending = plan[:0:-1]   # img_resolution .. 8; the 4x4 stage is the epilogue
        self.block_resolutions = [res for res, _, _ in descending]
        cmap_dim = 0 if c_dim == 0 else (widths[4] if cmap_dim is None else cmap_dim)
        shared = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        numbered = 0    # Freeze-D counts layers across blocks
        for res, channels, fp16 in descending:
            # The first block reads only the image; each block halves res and takes the next width.
            in_channels = 0 if res == img_resolution else channels
            self.add_module(f'b{res}', DiscriminatorBlock(in_channels, channels, widths[res // 2], resolution=res,
                                                          first_layer_idx=numbered, use_fp16=fp16,
                                                          **block_kwargs, **shared))
            numbered += getattr(self, f'b{res}').num_layers
        if c_dim:
            # Labels only: no z, no broadcast, no running average.
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, None, w_avg_beta=None, **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(widths[4], cmap_dim, 4, **shared, **epilogue_kwargs)

    def forward(self, img, c, return_features=False, **block_kwargs):
        label_embedding = None if self.c_dim == 0 else self.mapping(None, c)
        h = None
        # A gradient w.r.t. the image while D trains means a penalty (R1) and a double backward. Torch's
        # own double backward runs slower in NHWC (copies, per-group depthwise convs): keep NCHW there
        # unless this tree's conv2d_gradfix ops, which are faster in NHWC to any order, are on.
        cheap = getattr(conv2d_gradfix, 'higher_order_is_cheap', lambda: False)()
        penalty = (not cheap and torch.is_grad_enabled() and img.requires_grad
                   and any(p.requires_grad for p in self.parameters()))
        for block in [getattr(self, f'b{res}') for res in self.block_resolutions]:
            h, img = block(h, img, cpu_nhwc=not penalty, **block_kwargs)
        return self.b4(h, img, label_embedding, return_features=return_features)
