"""Upsample, FIR-filter and downsample 2-D images (official module path).

`upfirdn2d()` is one linear map per channel of an [N, C, H, W] batch, along each axis:

    stuff `up - 1` zeros after every pixel  ->  zero-pad by (p0, p1), negative = crop
    ->  convolve with the filter ('valid')   ->  keep every `down`-th pixel,

so an axis of n pixels becomes `(n * up + p0 + p1 - taps) // down + 1`. A 2-D filter is used as
is; a 1-D ("separable") one filters along x, then along y.

The reference below builds that from torch ops: `F.pad` (which crops on negative amounts), and a
depthwise convolution through `conv2d_gradfix`; it runs anywhere and differentiates to any
order. Official network code in pickles expects its rounding, so the op sequence stays as it is.
On CUDA the plugin (upfirdn2d.cpp/.cu/.h, built on first use) does the same in one kernel; its
gradient is again an upfirdn2d, with the roles of up and down exchanged (`_Geometry.adjoint`).
"""

import numbers
import os
import typing

import torch

from .. import custom_ops
from .. import misc
from . import conv2d_gradfix

_inited = False # _init() has run (successfully or not).
_plugin = None  # The loaded extension module; None until built, or for good after a failed build.

#----------------------------------------------------------------------------

def _init():
    """Load the CUDA plugin the first time it is needed; True when it can be used.

    Only the first call tries: a failed build is reported by one warning ("Failed to build CUDA
    kernels for upfirdn2d. Falling back to slow reference implementation. Details: ...") and then
    every call returns False.
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
# Argument forms. conv2d_resample and network code import the three underscore helpers.

def _int_list(value, what, lengths):
    """`value` as a list of ints: a bare int gives [value], a list/tuple must have one of `lengths`."""
    is_list = isinstance(value, (list, tuple))
    items = list(value) if is_list else [value]
    if (is_list and len(items) not in lengths) or not all(_is_int(v) for v in items):
        counts = ' or '.join(str(n) for n in lengths)
        raise ValueError(f'{what} must be an int or a list of {counts} ints, got {value!r}')
    return [int(v) for v in items]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _parse_scaling(scaling):
    """An up/down factor, int or [x, y], as (sx, sy); both must be >= 1."""
    factors = _int_list(scaling, 'scaling factor', (2,))
    if min(factors) < 1:
        raise ValueError(f'scaling factor must be >= 1, got {scaling!r}')
    sx, sy = factors * (2 // len(factors))
    return sx, sy


def _parse_padding(padding):
    """Padding, int or [x, y] or [x0, x1, y0, y1], as (px0, px1, py0, py1); negative values crop."""
    amounts = _int_list(padding, 'padding', (2, 4))
    if len(amounts) == 4:
        return tuple(amounts)
    px, py = amounts * (2 // len(amounts))
    return px, px, py, py


def _get_filter_size(f):
    """(fw, fh) of a filter from setup_filter(): [fh, fw] for 2-D, (taps, taps) for 1-D, (1, 1) for None."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f'filter must be a non-empty 1-D or 2-D tensor, got {type(f).__name__} '
                         f'of shape {tuple(getattr(f, "shape", ()))}')
    with misc.suppress_tracer_warnings(): # Under tracing the sizes become constants, which is intended.
        fh, fw = int(f.shape[0]), int(f.shape[-1])
    return fw, fh


def _filter_margins(fw, fh, up=(1, 1), down=(1, 1)):
    """Extra [x0, x1, y0, y1] padding that keeps a (fw x fh)-tap filter centred on the image when
    upsampling by `up` = (ux, uy) or downsampling by `down` = (dx, dy); with neither, a same-size filter.

    Per axis the leading margin is (taps + u - d) // 2 and the trailing one (taps - u - d + 1) // 2.
    """
    (ux, uy), (dx, dy) = up, down
    return [(fw + ux - dx) // 2, (fw - ux - dx + 1) // 2, (fh + uy - dy) // 2, (fh - uy - dy + 1) // 2]

#----------------------------------------------------------------------------

def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    """Make the float32 filter tensor that the functions of this module take.

    Args:
        f:           None (no filtering, [1]), a scalar, or 1-D / 2-D taps (list, array or tensor).
        device:      Device of the result.
        normalize:   Divide by the sum of the taps (unit DC gain).
        flip_filter: Mirror the taps along every axis.
        gain:        Overall gain: a 2-D filter is multiplied by `gain`, a 1-D one (applied once per
                     axis) by `sqrt(gain)`.
        separable:   Keep 1-D taps 1-D instead of taking their outer product. None: only for 8
                     taps or more, where two 1-D passes beat one 2-D pass.

    Returns:
        float32 tensor: [fh, fw], or [taps] when separable.
    """
    taps = torch.as_tensor(1 if f is None else f, dtype=torch.float32)
    if taps.ndim > 2 or taps.numel() == 0:
        raise ValueError(f'filter must be a scalar or non-empty 1-D or 2-D taps, got shape {tuple(taps.shape)}')
    if taps.ndim == 2:
        if separable:
            raise ValueError(f'a 2-D filter cannot be separable, got shape {tuple(taps.shape)}')
    else:
        taps = taps.reshape(-1) # A scalar is a single tap.
        if not (taps.numel() >= 8 if separable is None else separable):
            taps = torch.outer(taps, taps)
    if normalize:
        taps = taps / taps.sum() # Never in place: as_tensor() may have returned the caller's tensor.
    if flip_filter:
        taps = taps.flip(list(range(taps.ndim)))
    return (taps * (gain ** (taps.ndim / 2))).to(device=device)

#----------------------------------------------------------------------------

def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Upsample, pad, FIR-filter and downsample every channel of a batch of images.

    Args:
        x:           [N, C, H, W] float16/32/64 tensor (any memory format).
        f:           float32 filter from setup_filter() ([fh, fw], or [taps] used separably) or None
                     (identity); must not require grad.
        up, down:    int or [x, y] factors >= 1.
        padding:     int, [x, y] or [x0, x1, y0, y1], in upsampled pixels; negative values crop.
        flip_filter: False: true convolution with f. True: correlation.
        gain:        Output scale (the filter is multiplied by gain ** (f.ndim / 2)).
        impl:        'cuda' (the plugin, for CUDA tensors, when it builds) or 'ref'.

    Returns:
        [N, C, (H * up_y + py0 + py1 - fh) // down_y + 1, (W * up_x + px0 + px1 - fw) // down_x + 1]
        tensor of x's dtype.
    """
    if impl not in ('cuda', 'ref'):
        raise ValueError(f"impl must be 'cuda' or 'ref', got {impl!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'x must be a 4-D tensor [N, C, H, W], got {type(x).__name__} '
                         f'of shape {tuple(getattr(x, "shape", ()))}')
    if impl == 'ref' or x.device.type != 'cuda' or not _init():
        return _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)
    return _upfirdn2d_cuda(up, down, padding, flip_filter, gain).apply(x, f)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Filter every channel of x [N, C, H, W] with f, centred: same size out (plus `padding`)."""
    return _centred(x, f, 1, 1, padding, flip_filter, gain, impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Upsample x [N, C, H, W] by `up` (int or [x, y]) with interpolation filter f -> [N, C, H * uy, W * ux].

    The gain is multiplied by ux * uy, which makes up for the inserted zeros.
    """
    return _centred(x, f, up, 1, padding, flip_filter, gain, impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Downsample x [N, C, H, W] by `down` (int or [x, y]) with anti-aliasing filter f -> [N, C, H / dy, W / dx]."""
    return _centred(x, f, 1, down, padding, flip_filter, gain, impl)


def _centred(x, f, up, down, padding, flip_filter, gain, impl):
    """upfirdn2d() with the filter margins added to `padding`, and the gain scaled for the stuffed zeros."""
    (ux, uy), (dx, dy) = _parse_scaling(up), _parse_scaling(down)
    fw, fh = _get_filter_size(f)
    pad = [p + m for p, m in zip(_parse_padding(padding), _filter_margins(fw, fh, (ux, uy), (dx, dy)))]
    return upfirdn2d(x, f, [ux, uy], [dx, dy], pad, flip_filter, gain * ux * uy, impl)

#----------------------------------------------------------------------------
# Reference implementation.

def _validated_filter(f, x):
    """f checked for use with x; None becomes a 1x1 identity filter on x's device."""
    if f is None:
        return x.new_ones([1, 1], dtype=torch.float32)
    _get_filter_size(f)
    if f.dtype != torch.float32:
        raise ValueError(f'filter must be float32 (make it with setup_filter()), got {f.dtype}')
    if f.requires_grad:
        raise ValueError('filter must not require grad: upfirdn2d differentiates w.r.t. x only')
    return f


def _fir_pass(x, taps, up, down, pad):
    """One depthwise FIR pass: upsample by `up` (uy, ux), pad by (px0, px1, py0, py1) (negative crops),
    correlate every channel with the 2-D `taps` [kh, kw] and keep every `down` (dy, dx)-th sample.

    Upsampling runs as a strided transposed convolution and downsampling as a strided convolution,
    so no zero-stuffed image is built and no discarded output is computed (4x fewer multiply-adds
    each way for factor 2); the sums are the same as stuff-pad-correlate-decimate.
    """
    (uy, ux), (dy, dx) = up, down
    px0, px1, py0, py1 = pad
    channels = x.shape[1]
    if ux == 1 and uy == 1:
        # Zero padding common to both sides is the convolution's own (no padded copy, no copy back
        # in backward); only an asymmetric or negative rest goes through F.pad.
        (px0, px1, pw), (py0, py1, ph) = _common_part(px0, px1, 1), _common_part(py0, py1, 1)
        x = _pad_if_needed(x, [px0, px1, py0, py1])
        return conv2d_gradfix.conv2d(x, taps[None, None].repeat([channels, 1, 1, 1]), stride=(dy, dx),
                                     padding=(ph, pw), groups=channels)
    # A stride-u transposed convolution is the correlation with the mirrored kernel of the
    # zero-stuffed input padded by k - 1 on each side (without stuffing's u - 1 trailing zeros);
    # the pad/crop below turns that margin into the requested one. Cropping common to both sides
    # is the transposed convolution's own `padding`.
    kh, kw = taps.shape
    mirrored = taps.flip([0, 1])[None, None].repeat([channels, 1, 1, 1])
    (px0, px1, cw), (py0, py1, ch) = (_common_part(px0 - (kw - 1), px1 + ux - kw, -1),
                                      _common_part(py0 - (kh - 1), py1 + uy - kh, -1))
    x = conv2d_gradfix.conv_transpose2d(x, mirrored, stride=(uy, ux), padding=(ch, cw), groups=channels)
    x = _pad_if_needed(x, [px0, px1, py0, py1])
    return x[:, :, ::dy, ::dx]


def _common_part(a0, a1, sign):
    """Split pads (a0, a1) into (rest0, rest1, common): `common` >= 0 is the amount both sides pad
    (sign=1) or crop (sign=-1), which a (transposed) convolution applies itself."""
    common = max(0, min(sign * a0, sign * a1))
    return a0 - sign * common, a1 - sign * common, common


def _pad_if_needed(x, pads):
    return torch.nn.functional.pad(x, pads) if any(pads) else x


@misc.profiled_function
def _upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """upfirdn2d() from torch ops, for any device and gradients of any order; arguments as there."""
    f = _validated_filter(f, x)
    ux, uy = _parse_scaling(up)
    dx, dy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)

    # conv2d correlates, so the taps are mirrored to convolve; the gain is applied in float32,
    # before the cast to x's dtype.
    taps = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        taps = taps.flip(list(range(f.ndim)))
    if taps.ndim == 2:
        return _fir_pass(x, taps, (uy, ux), (dy, dx), (px0, px1, py0, py1))
    x = _fir_pass(x, taps[None, :], (1, ux), (1, dx), (px0, px1, 0, 0))
    return _fir_pass(x, taps[:, None], (uy, 1), (dy, 1), (0, 0, py0, py1))

#----------------------------------------------------------------------------
# CUDA implementation.

class _Geometry(typing.NamedTuple):
    """Settings of one kernel call sequence; hashable, and runnable as `.apply(x, f)`."""
    up_x: int
    up_y: int
    down_x: int
    down_y: int
    px0: int
    px1: int
    py0: int
    py1: int
    flip: bool
    gain: float

    def apply(self, x, f):
        return _KernelUpfirdn2d.apply(self, x, f)

    def run(self, x, f):
        """The plugin calls: one for a 2-D filter, one per axis for a separable one."""
        if f.ndim == 2:
            return _plugin.upfirdn2d(x, f, self.up_x, self.up_y, self.down_x, self.down_y,
                                     self.px0, self.px1, self.py0, self.py1, self.flip, self.gain)
        x = _plugin.upfirdn2d(x, f[None, :], self.up_x, 1, self.down_x, 1, self.px0, self.px1, 0, 0, self.flip, 1.0)
        return _plugin.upfirdn2d(x, f[:, None], 1, self.up_y, 1, self.down_y, 0, 0, self.py0, self.py1, self.flip,
                                 self.gain)

    def adjoint(self, in_size, out_size, f):
        """The geometry that maps dL/dy [.., out_h, out_w] back to dL/dx [.., in_h, in_w].

        Transposing stuff/pad/convolve/decimate gives stuff by `down`, pad, correlate, decimate by
        `up`; the leading pad lines the filter windows up again and the trailing one makes the
        result exactly as large as x.
        """
        (in_h, in_w), (out_h, out_w) = in_size, out_size
        fw, fh = _get_filter_size(f)
        return _Geometry(
            up_x=self.down_x, up_y=self.down_y, down_x=self.up_x, down_y=self.up_y,
            px0=fw - 1 - self.px0, px1=in_w * self.up_x - out_w * self.down_x + self.px0 - self.up_x + 1,
            py0=fh - 1 - self.py0, py1=in_h * self.up_y - out_h * self.down_y + self.py0 - self.up_y + 1,
            flip=not self.flip, gain=self.gain)


_geometries = {} # One object per distinct geometry, so callers can cache on identity.


def _upfirdn2d_cuda(up=1, down=1, padding=0, flip_filter=False, gain=1):
    """The kernel op for these settings (cached); run it as `.apply(x, f)`, x a CUDA tensor."""
    ux, uy = _parse_scaling(up)
    dx, dy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    geometry = _Geometry(ux, uy, dx, dy, px0, px1, py0, py1, bool(flip_filter), float(gain))
    return _geometries.setdefault(geometry, geometry)


class _KernelUpfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, geometry, x, f):
        f = _validated_filter(f, x)
        y = geometry.run(x, f)
        ctx.save_for_backward(f)
        ctx.geometry = geometry
        ctx.sizes = (tuple(x.shape[2:]), tuple(y.shape[2:]))
        return y

    @staticmethod
    def backward(ctx, dy):
        if not ctx.needs_input_grad[1]:
            return None, None, None
        (f,) = ctx.saved_tensors
        in_size, out_size = ctx.sizes
        return None, ctx.geometry.adjoint(in_size, out_size, f).apply(dy, f), None

#----------------------------------------------------------------------------
