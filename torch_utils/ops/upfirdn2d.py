"""Upsample, FIR-filter and downsample 2-D images (official module path).

`upfirdn2d()` processes every channel of an [N, C, H, W] batch independently:

    1. upsample by inserting `up - 1` zeros after each pixel (per axis),
    2. pad with zeros; negative padding crops,
    3. filter with a 2-D FIR kernel, or with a 1-D kernel along x and then along y,
    4. keep every `down`-th pixel (per axis).

The output size per axis is `(in * up + pad0 + pad1 - taps) // down + 1`.

Two implementations give the same result: a reference built from torch ops (grouped
convolution through `conv2d_gradfix`, differentiable to any order, any device) and a CUDA kernel
(`upfirdn2d.cpp/.cu/.h`, built on first use) whose backward pass is again upfirdn2d with the
adjoint parameters. The reference's op sequence is what official network code expects
numerically, so keep it unchanged.
"""

import numbers
import os

import torch

from .. import custom_ops
from .. import misc
from . import conv2d_gradfix

_inited = False # Has _init() been attempted?
_plugin = None  # The compiled extension, or None if not (yet) built.

#----------------------------------------------------------------------------
# Plugin loading.

def _init():
    """Build/load the CUDA plugin on the first call; True if it is usable.

    A failed build is reported once as a warning ("Failed to build CUDA kernels for upfirdn2d.
    Falling back to slow reference implementation. Details: ...") and then remembered: no retry,
    no second warning.
    """
    global _inited, _plugin
    if not _inited:
        _inited = True
        _plugin = custom_ops.try_get_plugin('upfirdn2d', 'upfirdn2d_plugin',
                                            sources=['upfirdn2d.cpp', 'upfirdn2d.cu'], headers=['upfirdn2d.h'],
                                            source_dir=os.path.dirname(__file__),
                                            extra_cuda_cflags=['--use_fast_math'])
    return _plugin is not None

#----------------------------------------------------------------------------
# Argument parsing shared with conv2d_resample and network code.

def _as_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f'{what} must be an int, got {value!r}')
    return int(value)


def _parse_scaling(scaling):
    """Up/down factor given as int or [x, y] -> (sx, sy), both >= 1."""
    if isinstance(scaling, (list, tuple)):
        if len(scaling) != 2:
            raise ValueError(f'scaling factor must be an int or [x, y], got {scaling!r}')
        sx, sy = (_as_int(s, 'scaling factor') for s in scaling)
    else:
        sx = sy = _as_int(scaling, 'scaling factor')
    if sx < 1 or sy < 1:
        raise ValueError(f'scaling factors must be >= 1, got {scaling!r}')
    return sx, sy


def _parse_padding(padding):
    """Padding given as int, [x, y] or [x0, x1, y0, y1] -> (px0, px1, py0, py1); negative crops."""
    if isinstance(padding, (list, tuple)):
        pads = [_as_int(p, 'padding') for p in padding]
        if len(pads) == 2:
            return pads[0], pads[0], pads[1], pads[1]
        if len(pads) == 4:
            return tuple(pads)
        raise ValueError(f'padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding!r}')
    pad = _as_int(padding, 'padding')
    return pad, pad, pad, pad


def _get_filter_size(f):
    """(fw, fh) of a filter from setup_filter(); (1, 1) for None. A 1-D filter has fw == fh."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError(f'filter must be a 1-D or 2-D tensor, got {type(f).__name__} '
                         f'with shape {getattr(f, "shape", None)}')
    fw = f.shape[-1]
    fh = f.shape[0]
    with misc.suppress_tracer_warnings(): # Sizes become Python constants when tracing.
        fw = int(fw)
        fh = int(fh)
    misc.assert_shape(f, [fh, fw][:f.ndim])
    if fw < 1 or fh < 1:
        raise ValueError(f'filter must have at least one tap, got shape {tuple(f.shape)}')
    return fw, fh

#----------------------------------------------------------------------------
# Filter construction.

def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    """Turn filter taps into the float32 tensor that upfirdn2d() expects.

    Args:
        f:           None (identity, [1]), a scalar, or 1-D / 2-D taps (list, array or tensor).
        device:      Device of the result.
        normalize:   Scale so that the taps sum to 1.
        flip_filter: Flip the taps (along every axis).
        gain:        Overall gain; a 2-D filter is multiplied by gain, a 1-D one (applied twice)
                     by sqrt(gain).
        separable:   Keep a 1-D filter 1-D (applied as two passes) instead of taking its outer
                     product. None = only when it has 8 or more taps.

    Returns:
        float32 tensor [fh, fw], or [taps] for a separable filter.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f'filter must be a scalar or non-empty 1-D or 2-D taps, got shape {tuple(f.shape)}')
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f'a 2-D filter cannot be separable, got shape {tuple(f.shape)}')
    if normalize:
        f = f / f.sum() # Out of place: as_tensor() may have returned the caller's tensor.
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)

#----------------------------------------------------------------------------
# Public entry points.

def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Upsample, pad, FIR-filter and downsample every channel of a batch of images.

    Args:
        x:           [N, C, H, W] floating tensor (float16/32/64; channels_last allowed).
        f:           float32 filter from setup_filter(): [fh, fw], or [taps] applied separably;
                     None = identity. Must not require grad.
        up, down:    int or [x, y] integer factors >= 1.
        padding:     int, [x, y] or [x0, x1, y0, y1], in upsampled pixels; negative crops.
        flip_filter: False = true convolution with f; True = cross-correlation.
        gain:        Output scale (the filter is multiplied by gain ** (f.ndim / 2)).
        impl:        'cuda' (kernel when x is on a GPU and the plugin builds) or 'ref'.

    Returns:
        [N, C, (H * up_y + py0 + py1 - fh) // down_y + 1, (W * up_x + px0 + px1 - fw) // down_x + 1],
        same dtype as x.
    """
    if impl not in ('ref', 'cuda'):
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'x must be a 4-D tensor [N, C, H, W], got {type(x).__name__} '
                         f'with shape {getattr(x, "shape", None)}')
    if impl == 'cuda' and x.device.type == 'cuda' and _init():
        return _upfirdn2d_cuda(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain).apply(x, f)
    return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Filter every channel of x [N, C, H, W] with f, keeping the size (plus any extra padding).

    The filter is centred: padding grows by [fw // 2, (fw - 1) // 2, fh // 2, (fh - 1) // 2].
    """
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Upsample x [N, C, H, W] by `up` (int or [x, y]) with interpolation filter f -> [N, C, H*up_y, W*up_x].

    The gain is multiplied by up_x * up_y so that the inserted zeros do not darken the image.
    """
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Downsample x [N, C, H, W] by `down` (int or [x, y]) with anti-aliasing filter f -> [N, C, H/down_y, W/down_x]."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------
# Reference implementation.

def _checked_filter(f, x):
    """Validate f against x; None becomes the 1x1 identity filter."""
    if f is None:
        return torch.ones([1, 1], dtype=torch.float32, device=x.device)
    _get_filter_size(f)
    if f.dtype != torch.float32:
        raise ValueError(f'filter must be float32 (see setup_filter), got {f.dtype}')
    if f.requires_grad:
        raise ValueError('filter must not require grad; gradients flow only to x')
    return f


@misc.profiled_function
def _upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """upfirdn2d() built from torch ops; same arguments minus impl."""
    f = _checked_filter(f, x)
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    batch, channels, in_h, in_w = x.shape

    # Zero insertion: give every pixel a trailing block of (up_y, up_x) zeros, then fold it in.
    x = x.reshape([batch, channels, in_h, 1, in_w, 1])
    x = torch.nn.functional.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([batch, channels, in_h * upy, in_w * upx])

    # Positive padding adds zeros; negative padding is applied as a crop afterwards.
    x = torch.nn.functional.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    x = _depthwise_fir(x, f, flip_filter=flip_filter, gain=gain)
    return x[:, :, ::downy, ::downx]


def _depthwise_fir(x, f, flip_filter, gain):
    """'Valid' FIR filtering of each channel of x with f (2-D, or 1-D along x then y)."""
    channels = x.shape[1]
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        # conv2d correlates; flipping the taps turns that into a true convolution.
        f = f.flip(list(range(f.ndim)))
    weight = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 2:
        return conv2d_gradfix.conv2d(input=x, weight=weight, groups=channels)
    x = conv2d_gradfix.conv2d(input=x, weight=weight.unsqueeze(2), groups=channels) # [C, 1, 1, taps]: along x
    return conv2d_gradfix.conv2d(input=x, weight=weight.unsqueeze(3), groups=channels) # [C, 1, taps, 1]: along y

#----------------------------------------------------------------------------
# CUDA implementation.

_cuda_functions = dict() # Parsed arguments -> autograd Function class.


def _upfirdn2d_cuda(up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Autograd Function (cached per argument set) running the CUDA kernel; apply as `.apply(x, f)`."""
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    flip_filter = bool(flip_filter)
    gain = float(gain)
    key = (upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
    if key in _cuda_functions:
        return _cuda_functions[key]

    class Upfirdn2dCuda(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, f): # pylint: disable=arguments-differ
            f = _checked_filter(f, x)
            if f.ndim == 1: # Separable: one pass along x, then one along y.
                y = _plugin.upfirdn2d(x, f[None, :], upx, 1, downx, 1, px0, px1, 0, 0, flip_filter, 1.0)
                y = _plugin.upfirdn2d(y, f[:, None], 1, upy, 1, downy, 0, 0, py0, py1, flip_filter, gain)
            else:
                y = _plugin.upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
            ctx.save_for_backward(f)
            ctx.x_shape = x.shape
            return y

        @staticmethod
        def backward(ctx, dy): # pylint: disable=arguments-differ
            f, = ctx.saved_tensors
            dx = None
            if ctx.needs_input_grad[0]:
                dx = _upfirdn2d_cuda(**_adjoint_args(ctx.x_shape, dy.shape, f, key)).apply(dy, f)
            return dx, None

    _cuda_functions[key] = Upfirdn2dCuda
    return Upfirdn2dCuda


def _adjoint_args(x_shape, y_shape, f, key):
    """Arguments of the upfirdn2d call that maps dL/dy back to dL/dx.

    The transpose of (zero-insert by up, pad, convolve, keep every down-th) is
    (zero-insert by down, pad, correlate, keep every up-th) with the padding chosen so that the
    filter windows line up and the result has exactly the input's size.
    """
    upx, upy, downx, downy, px0, _px1, py0, _py1, flip_filter, gain = key
    in_h, in_w = int(x_shape[2]), int(x_shape[3])
    out_h, out_w = int(y_shape[2]), int(y_shape[3])
    fw, fh = _get_filter_size(f)
    padding = [
        fw - 1 - px0, in_w * upx - out_w * downx + px0 - upx + 1,
        fh - 1 - py0, in_h * upy - out_h * downy + py0 - upy + 1,
    ]
    return dict(up=[downx, downy], down=[upx, upy], padding=padding, flip_filter=not flip_filter, gain=gain)
