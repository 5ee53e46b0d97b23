"""2-D convolution fused with FIR up/downsampling (official module path).

`conv2d_resample()` computes, for an image x, weights w and a resampling filter f:

    up > 1:   zero-insert by `up`, pad, filter with f (gain up**2), convolve with w,
              then (down > 1) filter with f and keep every `down`-th pixel;
    up == 1:  pad, convolve with w, then (down > 1) filter with f and decimate.

It picks the cheapest equivalent op sequence among six, in a fixed order. The choice changes
the rounding, and official network code (embedded in pickles) expects these exact sequences,
so the order and the sequences are part of the contract.
"""

import torch

from .. import misc
from . import conv2d_gradfix
from . import upfirdn2d
from .upfirdn2d import _get_filter_size, _parse_padding

#----------------------------------------------------------------------------

def _get_weight_shape(w):
    """[out_channels, in_channels_per_group, kh, kw] of w as Python ints (constants when tracing)."""
    with misc.suppress_tracer_warnings():
        shape = [int(size) for size in w.shape]
    misc.assert_shape(w, shape)
    return shape


def _conv2d_wrapper(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """Plain or transposed conv2d via conv2d_gradfix.

    flip_weight=True is torch's cross-correlation; False flips the kernel to get a true convolution.
    """
    out_channels, in_channels_per_group, kh, kw = _get_weight_shape(w)
    if not flip_weight:
        w = w.flip([2, 3])

    # A 1x1 stride-1 unpadded conv on a channels_last input with few channels is slow in some
    # cuDNN versions; run it as a matmul (tiny outputs, e.g. toRGB) or on contiguous tensors.
    is_pointwise = (kh == 1 and kw == 1 and stride == 1 and padding in (0, [0, 0], (0, 0)) and not transpose)
    if is_pointwise and x.stride()[1] == 1 and min(out_channels, in_channels_per_group) < 64:
        if out_channels <= 4 and groups == 1:
            batch, _, height, width = x.shape
            x = w.squeeze(3).squeeze(2) @ x.reshape([batch, in_channels_per_group, -1])
            x = x.reshape([batch, out_channels, height, width])
        else:
            x = x.to(memory_format=torch.contiguous_format)
            w = w.to(memory_format=torch.contiguous_format)
            x = conv2d_gradfix.conv2d(x, w, groups=groups)
        return x.to(memory_format=torch.channels_last)

    if transpose:
        return conv2d_gradfix.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return conv2d_gradfix.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _transpose_weight(w, groups):
    """Weights of a grouped conv [out, in/g, kh, kw] -> layout of conv_transpose2d [in, out/g, kh, kw]."""
    out_channels, in_channels_per_group, kh, kw = _get_weight_shape(w)
    if groups == 1:
        return w.transpose(0, 1)
    w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
    w = w.transpose(1, 2)
    return w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)

#----------------------------------------------------------------------------

def _check_args(x, w, f, up, down, groups):
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'x must be a 4-D tensor [N, C, H, W], got shape {getattr(x, "shape", None)}')
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError(f'w must be a 4-D tensor with the dtype of x ({x.dtype}), got '
                         f'shape {getattr(w, "shape", None)}, dtype {getattr(w, "dtype", None)}')
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32):
        raise ValueError('f must be None or a 1-D/2-D float32 tensor from upfirdn2d.setup_filter()')
    for name, value in (('up', up), ('down', down), ('groups', groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be an int >= 1, got {value!r}')


@misc.profiled_function
def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """2-D convolution with optional FIR upsampling/downsampling.

    Args:
        x:           [N, C_in, H, W] input (float16/32/64).
        w:           [C_out, C_in / groups, kh, kw] weights, same dtype as x.
        f:           float32 resampling filter from upfirdn2d.setup_filter(), or None (box).
        up, down:    int factors >= 1.
        padding:     int, [x, y] or [x0, x1, y0, y1], relative to the upsampled image.
        groups:      Convolution groups.
        flip_weight: True = cross-correlation (torch convention); False = true convolution.
        flip_filter: Passed to upfirdn2d.

    Returns:
        [N, C_out, H', W'] with the dtype of x.
    """
    _check_args(x, w, f, up, down, groups)
    out_channels, in_channels_per_group, kh, kw = _get_weight_shape(w)
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Make room for the resampling filter (same amounts as upsample2d / downsample2d).
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pads = [px0, px1, py0, py1]
    pointwise = (kw == 1 and kh == 1)

    # (1) 1x1 kernel, downsampling only: shrink first so the conv runs on fewer pixels.
    if pointwise and down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, padding=pads, flip_filter=flip_filter)
        return _conv2d_wrapper(x=x, w=w, groups=groups, flip_weight=flip_weight)

    # (2) 1x1 kernel, upsampling only: convolve first, on fewer pixels, then grow.
    if pointwise and up > 1 and down == 1:
        x = _conv2d_wrapper(x=x, w=w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x=x, f=f, up=up, padding=pads, gain=up ** 2, flip_filter=flip_filter)

    # (3) Downsampling only: filter, then let a strided conv do the decimation.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=pads, flip_filter=flip_filter)
        return _conv2d_wrapper(x=x, w=w, stride=down, groups=groups, flip_weight=flip_weight)

    # (4) Upsampling (maybe with downsampling): a strided transposed conv does zero insertion and
    # convolution at once; it already covers (kw - 1, kw - up) of the padding, the FIR takes the rest.
    if up > 1:
        return _conv_up_then_fir(x, w, f, up, down, pads, groups, flip_weight, flip_filter)

    # (5) No resampling and padding that conv2d can express.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d_wrapper(x=x, w=w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # (6) Anything else: explicit pad/crop (and filter when upsampling), conv, then decimate.
    x = upfirdn2d.upfirdn2d(x=x, f=(f if up > 1 else None), up=up, padding=pads, gain=up ** 2,
                            flip_filter=flip_filter)
    x = _conv2d_wrapper(x=x, w=w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter)
    return x


def _conv_up_then_fir(x, w, f, up, down, pads, groups, flip_weight, flip_filter):
    """Path (4) of conv2d_resample(); pads = [px0, px1, py0, py1] already include the filter margins."""
    _, _, kh, kw = _get_weight_shape(w)
    w = _transpose_weight(w, groups)
    px0, px1, py0, py1 = pads
    px0, px1 = px0 - (kw - 1), px1 - (kw - up)
    py0, py1 = py0 - (kh - 1), py1 - (kh - up)
    # Crop that both sides need is done by the transposed conv's own padding.
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    # conv_transpose2d scatters the kernel, which mirrors it relative to conv2d: invert flip_weight.
    x = _conv2d_wrapper(x=x, w=w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
                        flip_weight=(not flip_weight))
    x = upfirdn2d.upfirdn2d(x=x, f=f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                            flip_filter=flip_filter)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter)
    return x
