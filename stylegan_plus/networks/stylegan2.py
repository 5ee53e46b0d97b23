"""StyleGAN2 generator and discriminator (config F), interchangeable with the official networks.

Constructor signatures, defaults, attribute names, parameter/buffer names and registration order
(hence `state_dict()` order) and the order of random draws at construction follow the official
`training/networks.py` of StyleGAN2-ADA, so official weights load by name and a given torch seed
initialises the same weights. The arithmetic of every forward pass follows the same op sequence
(same `conv2d_resample` paths, bias_act order) so fp32 outputs agree to float rounding.

Every class is a `persistence.persistent_class`: pickles embed this file's source and re-execute
it on load, possibly inside an official checkout. Hence this module imports only numpy, torch and
the official `torch_utils` names; it must never import anything from `stylegan_plus`.

Fork extension: `Discriminator.forward(..., return_features=True)` also returns the output of the
b4 epilogue's fully connected layer (the input of its `out` layer).
"""

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import conv2d_resample
from torch_utils.ops import upfirdn2d
from torch_utils.ops import bias_act
from torch_utils.ops import fma

__all__ = [
    'normalize_2nd_moment', 'modulated_conv2d',
    'FullyConnectedLayer', 'Conv2dLayer', 'MappingNetwork',
    'SynthesisLayer', 'ToRGBLayer', 'SynthesisBlock', 'SynthesisNetwork', 'Generator',
    'DiscriminatorBlock', 'MinibatchStdLayer', 'DiscriminatorEpilogue', 'Discriminator',
]

_ARCHITECTURES = ('orig', 'skip', 'resnet')
_NOISE_MODES = ('random', 'const', 'none')

#----------------------------------------------------------------------------
# Small private helpers.

def _memory_format(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


def _scaled_clamp(conv_clamp, gain):
    """The clamp follows the output gain so residual branches scaled by sqrt(0.5) stay in range."""
    return None if conv_clamp is None else conv_clamp * gain


def _check_architecture(architecture):
    if architecture not in _ARCHITECTURES:
        raise ValueError(f'architecture={architecture!r} is not supported; expected one of {_ARCHITECTURES}')


def _log2_resolution(img_resolution):
    if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
        raise ValueError(f'img_resolution={img_resolution} must be a power of two >= 4')
    return int(np.log2(img_resolution))


def _channel_table(resolutions, channel_base, channel_max):
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def _first_fp16_resolution(log2_res, num_fp16_res):
    # fp16 never goes below 8x8: the 4x4 stages stay fp32.
    return max(2 ** (log2_res + 1 - num_fp16_res), 8)

#----------------------------------------------------------------------------

@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scale `x` to unit root-mean-square along `dim`: x / sqrt(mean(x^2) + eps). Same shape/dtype."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------

def _prenormalize_fp16(weight, styles):
    """Bring weight and styles to max-abs 1 before fp16 math; demodulation cancels the scale."""
    fan_in = weight[0].numel()
    weight = weight * (1 / np.sqrt(fan_in) / weight.abs().amax(dim=[1, 2, 3], keepdim=True))
    styles = styles / styles.abs().amax(dim=1, keepdim=True)
    return weight, styles


def _modconv_split(x, weight, styles, dcoefs, noise, conv_kwargs):
    """Modulate by scaling activations before the shared conv, demodulate after it."""
    n = x.shape[0]
    x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
    x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), **conv_kwargs)
    if dcoefs is not None:
        dcoefs = dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x * dcoefs if noise is None else fma.fma(x, dcoefs, noise.to(x.dtype))
    return x if noise is None else x.add_(noise.to(x.dtype))


def _modconv_grouped(x, sample_weights, noise, conv_kwargs):
    """One grouped conv over the whole batch, each sample with its own modulated kernel."""
    with misc.suppress_tracer_warnings():
        n = int(x.shape[0])
    in_channels, kh, kw = sample_weights.shape[2:]
    misc.assert_shape(x, [n, in_channels, None, None])
    x = x.reshape(1, -1, *x.shape[2:])
    w = sample_weights.reshape(-1, in_channels, kh, kw).to(x.dtype)
    x = conv2d_resample.conv2d_resample(x=x, w=w, groups=n, **conv_kwargs)
    x = x.reshape(n, -1, *x.shape[2:])
    return x if noise is None else x.add_(noise)


@misc.profiled_function
def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True):
    """Style-modulated 2-D convolution with optional demodulation and additive noise.

    x: [N, I, H, W] float32/float16; weight: [O, I, kh, kw]; styles: [N, I] float32;
    noise: broadcastable to the output [N, O, H', W'] or None. Returns [N, O, H', W'] in x.dtype.
    `fused_modconv` selects a grouped conv with per-sample kernels instead of activation scaling.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [n, in_channels, None, None])
    misc.assert_shape(styles, [n, in_channels])
    if x.dtype == torch.float16 and demodulate:
        weight, styles = _prenormalize_fp16(weight, styles)

    sample_weights = None   # [N, O, I, kh, kw]
    dcoefs = None           # [N, O]
    if demodulate or fused_modconv:
        sample_weights = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (sample_weights.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()

    conv_kwargs = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
    if not fused_modconv:
        return _modconv_split(x, weight, styles, dcoefs, noise, conv_kwargs)
    if demodulate:
        sample_weights = sample_weights * dcoefs.reshape(n, -1, 1, 1, 1)
    return _modconv_grouped(x, sample_weights, noise, conv_kwargs)

#----------------------------------------------------------------------------

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate. forward: x [N, in_features] -> [N, out_features]."""

    def __init__(self, in_features, out_features, bias=True, activation='linear', lr_multiplier=1, bias_init=0):
        super().__init__()
        self.activation = activation
        # Stored divided by lr_multiplier and rescaled at run time, so the optimizer's step is
        # effectively multiplied by lr_multiplier.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self):
        return f'in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, activation={self.activation}'

#----------------------------------------------------------------------------

@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Equalized-lr conv with optional up/down FIR resampling, bias, activation and clamp.

    forward: x [N, in_channels, H, W] -> [N, out_channels, H*up/down, W*up/down]; `gain` scales
    both the activation output and the clamp. With `trainable=False` weight/bias are buffers.
    """

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation='linear', up=1, down=1,
                 resample_filter=[1, 3, 3, 1], conv_clamp=None, channels_last=False, trainable=True):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        weight = weight.to(memory_format=_memory_format(channels_last))
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:
            # Frozen (Freeze-D): buffers keep the state_dict names but leave the optimizer.
            self.register_buffer('weight', weight)
            if bias is not None:
                self.register_buffer('bias', bias)
            else:
                self.bias = None

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        # Transposed convs (up > 1) are cheaper with an unflipped kernel.
        x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=self.resample_filter, up=self.up,
                                            down=self.down, padding=self.padding, flip_weight=(self.up == 1))
        return bias_act.bias_act(x, b, act=self.activation, gain=self.act_gain * gain,
                                 clamp=_scaled_clamp(self.conv_clamp, gain))

#----------------------------------------------------------------------------

@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """z (and label c) -> intermediate latent w.

    forward: z [N, z_dim], c [N, c_dim] (either may be absent when its dim is 0) ->
    ws [N, num_ws, w_dim] float32, or [N, w_dim] when num_ws is None.
    """

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                 activation='lrelu', lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        widths = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(widths[idx], widths[idx + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f'fc{idx}', layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def _embed_inputs(self, z, c):
        parts = []
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False):
        with torch.autograd.profiler.record_function('input'):
            x = self._embed_inputs(z, c)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            with torch.autograd.profiler.record_function('update_w_avg'):
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            with torch.autograd.profiler.record_function('broadcast'):
                x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            with torch.autograd.profiler.record_function('truncate'):
                assert self.w_avg_beta is not None, 'truncation needs w_avg (w_avg_beta is None)'
                if self.num_ws is None or truncation_cutoff is None:
                    x = self.w_avg.lerp(x, truncation_psi)
                else:
                    x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + noise + bias + activation.

    forward: x [N, in_channels, res/up, res/up], w [N, w_dim] -> [N, out_channels, res, res].
    noise_mode: 'random' (fresh per call), 'const' (the stored noise_const) or 'none'.
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                 activation='lrelu', resample_filter=[1, 3, 3, 1], conv_clamp=None, channels_last=False):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(weight.to(memory_format=_memory_format(channels_last)))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def _noise(self, n, device, noise_mode):
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f'noise_mode={noise_mode!r} is not supported; expected one of {_NOISE_MODES}')
        if not self.use_noise or noise_mode == 'none':
            return None
        if noise_mode == 'const':
            return self.noise_const * self.noise_strength
        return torch.randn([n, 1, self.resolution, self.resolution], device=device) * self.noise_strength

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        in_res = self.resolution // self.up
        misc.assert_shape(x, [None, self.weight.shape[1], in_res, in_res])
        styles = self.affine(w)
        noise = self._noise(x.shape[0], x.device, noise_mode)
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, noise=noise, up=self.up,
                             padding=self.padding, resample_filter=self.resample_filter,
                             flip_weight=(self.up == 1), fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain,
                                 clamp=_scaled_clamp(self.conv_clamp, gain))

#----------------------------------------------------------------------------

@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated (not demodulated) 1x1 conv to image channels. x [N, C, H, W], w [N, w_dim] -> [N, img_C, H, W]."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(weight.to(memory_format=_memory_format(channels_last)))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        # Without demodulation the equalized-lr gain must go into the styles.
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const | conv0 up) -> conv1 -> (torgb).

    forward: x [N, in_channels, res/2, res/2] or None, img [N, img_channels, res/2, res/2] or None,
    ws [N, num_conv + num_torgb, w_dim] -> (x [N, out_channels, res, res] fp16/fp32,
    img [N, img_channels, res, res] float32 or None).
    """

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture='skip',
                 resample_filter=[1, 3, 3, 1], conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                 **layer_kwargs):
        _check_architecture(architecture)
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        shared = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, channels_last=self.channels_last)

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter,
                                        **shared, **layer_kwargs)
            self.num_conv += 1
        # conv1 keeps the default filter (unused at up=1), as in the official state dicts.
        self.conv1 = SynthesisLayer(out_channels, out_channels, **shared, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == 'skip':
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == 'resnet':
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def _features(self, x, ws_iter, n, dtype, memory_format, fused_modconv, layer_kwargs):
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format).unsqueeze(0).repeat([n, 1, 1, 1])
            return self.conv1(x, next(ws_iter), fused_modconv=fused_modconv, **layer_kwargs)
        misc.assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
        x = x.to(dtype=dtype, memory_format=memory_format)
        if self.architecture != 'resnet':
            x = self.conv0(x, next(ws_iter), fused_modconv=fused_modconv, **layer_kwargs)
            return self.conv1(x, next(ws_iter), fused_modconv=fused_modconv, **layer_kwargs)
        shortcut = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv0(x, next(ws_iter), fused_modconv=fused_modconv, **layer_kwargs)
        x = self.conv1(x, next(ws_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
        return shortcut.add_(x)

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, **layer_kwargs):
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        ws_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = _memory_format(self.channels_last and not force_fp32)
        if fused_modconv is None:
            # Grouped convs pay off at inference only; in fp16 they are slow except for batch 1.
            with misc.suppress_tracer_warnings():
                fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        x = self._features(x, ws_iter, ws.shape[0], dtype, memory_format, fused_modconv, layer_kwargs)
        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == 'skip':
            y = self.torgb(x, next(ws_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        assert x.dtype == dtype
        assert img is None or img.dtype == torch.float32
        return x, img

#----------------------------------------------------------------------------

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, img_resolution, img_resolution] float32 (about [-1, 1])."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=0,
                 **block_kwargs):
        log2_res = _log2_resolution(img_resolution)
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2_res
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2_res + 1)]
        channels = _channel_table(self.block_resolutions, channel_base, channel_max)
        fp16_from = _first_fp16_resolution(log2_res, num_fp16_res)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = (res == img_resolution)
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_from),
                                   **block_kwargs)
            # Consecutive blocks share a w at the boundary: torgb of block i reads the same w as
            # conv0 of block i+1, so only the last torgb adds a w of its own.
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f'b{res}', block)

    def forward(self, ws, **block_kwargs):
        with torch.autograd.profiler.record_function('split_ws'):
            misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
            ws = ws.to(torch.float32)
            blocks, block_ws, start = [], [], 0
            for res in self.block_resolutions:
                block = getattr(self, f'b{res}')
                blocks.append(block)
                block_ws.append(ws.narrow(1, start, block.num_conv + block.num_torgb))
                start += block.num_conv
        x = img = None
        for block, cur_ws in zip(blocks, block_ws):
            x, img = block(x, img, cur_ws, **block_kwargs)
        return img

#----------------------------------------------------------------------------

@persistence.persistent_class
class Generator(torch.nn.Module):
    """z [N, z_dim], c [N, c_dim] -> img [N, img_channels, img_resolution, img_resolution] float32."""

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={}):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        # Synthesis first: it decides num_ws, and its random draws come before the mapping's.
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)

#----------------------------------------------------------------------------

@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: (fromrgb) -> conv0 -> conv1 (down 2), plus resnet skip.

    forward: x [N, in_channels, res, res] or None, img [N, img_channels, res, res] or None ->
    (x [N, out_channels, res/2, res/2], img [N, img_channels, res/2, res/2] for 'skip' else None).
    Layers with global index < freeze_layers are frozen (weights become buffers).
    """

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels, first_layer_idx,
                 architecture='resnet', activation='lrelu', resample_filter=[1, 3, 3, 1], conv_clamp=None,
                 use_fp16=False, fp16_channels_last=False, freeze_layers=0):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f'in_channels={in_channels} must be 0 or tmp_channels={tmp_channels}')
        _check_architecture(architecture)
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.num_layers = 0

        def next_trainable():
            # Layers are numbered across the whole D in construction order.
            trainable = (self.first_layer_idx + self.num_layers >= freeze_layers)
            self.num_layers += 1
            return trainable

        shared = dict(conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=next_trainable(), **shared)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=next_trainable(), **shared)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=next_trainable(), resample_filter=resample_filter, **shared)
        if architecture == 'resnet':
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=next_trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x, img, force_fp32=False):
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = _memory_format(self.channels_last and not force_fp32)
        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None

        if self.architecture == 'resnet':
            shortcut = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=np.sqrt(0.5))
            x = shortcut.add_(x)
        else:
            x = self.conv1(self.conv0(x))
        assert x.dtype == dtype
        return x, img

#----------------------------------------------------------------------------

@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Append per-group feature stddev maps. x [N, C, H, W] -> [N, C + num_channels, H, W].

    Sample i belongs to group i % (N // G), with G = min(group_size, N); G must divide N.
    """

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        with misc.suppress_tracer_warnings():
            # as_tensor keeps the group size symbolic under tracing.
            g = torch.min(torch.as_tensor(self.group_size), torch.as_tensor(n)) if self.group_size is not None else n
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)   # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # stddev over each group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

#----------------------------------------------------------------------------

@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """Final 4x4 stage: (fromrgb) -> mbstd -> conv -> fc -> out, always in fp32.

    forward: x [N, in_channels, res, res], img (for 'skip'), cmap [N, cmap_dim] or None -> logits [N, 1]
    float32.
    """

    def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture='resnet', mbstd_group_size=4,
                 mbstd_num_channels=1, activation='lrelu', conv_clamp=None):
        _check_architecture(architecture)
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels) \
            if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * (resolution ** 2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False, return_features=False):
        """Extension: `return_features=True` returns (logits, fc output [N, in_channels])."""
        del force_fp32  # accepted for interface symmetry; the epilogue always runs in fp32
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        features = self.fc(self.conv(x).flatten(1))
        x = self.out(features)
        if self.cmap_dim > 0:
            # Projection conditioning: inner product with the label embedding.
            misc.assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        assert x.dtype == torch.float32
        return (x, features) if return_features else x

#----------------------------------------------------------------------------

@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """img [N, img_channels, R, R] in [-1, 1], c [N, c_dim] -> logits [N, 1] float32.

    With `return_features=True` returns (logits, features [N, channels(4)]), features being the
    b4 epilogue's fc output.
    """

    def __init__(self, c_dim, img_resolution, img_channels, architecture='resnet', channel_base=32768,
                 channel_max=512, num_fp16_res=0, conv_clamp=None, cmap_dim=None, block_kwargs={},
                 mapping_kwargs={}, epilogue_kwargs={}):
        log2_res = _log2_resolution(img_resolution)
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2_res
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(log2_res, 2, -1)]
        channels = _channel_table(self.block_resolutions + [4], channel_base, channel_max)
        fp16_from = _first_fp16_resolution(log2_res, num_fp16_res)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, first_layer_idx=layer_idx, use_fp16=(res >= fp16_from),
                                       **block_kwargs, **common)
            setattr(self, f'b{res}', block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(self, img, c, return_features=False, **block_kwargs):
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap, return_features=return_features)
