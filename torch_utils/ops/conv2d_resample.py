"""2-D convolution fused with FIR up/downsampling (official module path).

`conv2d_resample(x, w, f, up, down, padding)` means: upsample x by `up` (zero stuffing + filter f
with gain up**2), pad by `padding`, convolve with w, then downsample by `down` (filter f + keep
every down-th pixel). Several op sequences compute that; which one is cheapest depends on the
kernel size and the factors. `_STRATEGIES` lists them with the condition for each, and the
first one whose condition holds runs. Each sequence rounds differently, and official network
code in pickles was trained with these exact ones, so the table (and its order) is fixed.
"""

import typing

import torch

from .. import misc
from . import conv2d_gradfix
from . import upfirdn2d
from .upfirdn2d import _filter_margins, _get_filter_size, _parse_padding

#----------------------------------------------------------------------------
# Convolution helpers.

def _get_weight_shape(w):
    """[C_out, C_in / groups, kh, kw] of w as Python ints (constants under tracing)."""
    with misc.suppress_tracer_warnings():
        return [int(size) for size in w.shape]


def _conv2d_wrapper(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d (or conv_transpose2d) through conv2d_gradfix.

    flip_weight=True is torch's cross-correlation; False mirrors the kernel for a true convolution.
    The result keeps x's memory format (torch preserves channels_last, also for 1x1 kernels).
    """
    if not flip_weight:
        w = w.flip([2, 3])
    geometry = dict(stride=stride, padding=padding, groups=groups)
    if transpose:
        return conv2d_gradfix.conv_transpose2d(x, w, **geometry)
    return conv2d_gradfix.conv2d(x, w, **geometry)


def _transposed_weight(w, groups):
    """Grouped conv weights [C_out, C_in / g, kh, kw] in conv_transpose2d's layout [C_in, C_out / g, kh, kw]."""
    return w.unflatten(0, (groups, -1)).transpose(1, 2).flatten(0, 1)

#----------------------------------------------------------------------------
# The strategies. Each takes x and a _Request; `pad` already includes the filter margins.

class _Request(typing.NamedTuple):
    w: torch.Tensor
    f: typing.Optional[torch.Tensor]
    up: int
    down: int
    pad: tuple # (px0, px1, py0, py1) around the upsampled image
    groups: int
    flip_weight: bool
    flip_filter: bool

    @property
    def pointwise(self):
        return tuple(self.w.shape[2:]) == (1, 1)

    @property
    def conv_can_pad(self):
        """The padding is one conv2d can apply itself: symmetric and non-negative."""
        px0, px1, py0, py1 = self.pad
        return px0 == px1 >= 0 and py0 == py1 >= 0

    def conv(self, x, **kwargs):
        return _conv2d_wrapper(x, self.w, groups=self.groups, flip_weight=self.flip_weight, **kwargs)

    def fir(self, x, **kwargs):
        return upfirdn2d.upfirdn2d(x, self.f, flip_filter=self.flip_filter, **kwargs)


def _decimate_then_pointwise(x, r):
    return r.conv(r.fir(x, down=r.down, padding=r.pad))


def _pointwise_then_interpolate(x, r):
    return r.fir(r.conv(x), up=r.up, padding=r.pad, gain=r.up ** 2)


def _filter_then_strided_conv(x, r):
    return r.conv(r.fir(x, padding=r.pad), stride=r.down)


def _transposed_conv_then_filter(x, r):
    """A conv_transpose2d with stride=up stuffs the zeros and convolves in one op, widening the
    image by (k - 1, k - up) on its (leading, trailing) side; the filter pass pads the rest, and
    cropping that both sides need is left to the transposed conv's own padding."""
    _, _, kh, kw = _get_weight_shape(r.w)
    px0, px1, py0, py1 = r.pad
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - r.up), py0 - (kh - 1), py1 - (kh - r.up)
    crop_x, crop_y = max(0, -max(px0, px1)), max(0, -max(py0, py1))
    # Scattering the kernel mirrors it relative to conv2d, hence the inverted flip.
    x = _conv2d_wrapper(x, _transposed_weight(r.w, r.groups), stride=r.up, padding=[crop_y, crop_x],
                        groups=r.groups, transpose=True, flip_weight=not r.flip_weight)
    x = r.fir(x, padding=[px0 + crop_x, px1 + crop_x, py0 + crop_y, py1 + crop_y], gain=r.up ** 2)
    return r.fir(x, down=r.down) if r.down > 1 else x


def _padded_conv(x, r):
    px0, _, py0, _ = r.pad
    return r.conv(x, padding=[py0, px0])


def _crop_then_conv(x, r):
    return r.conv(upfirdn2d.upfirdn2d(x, None, padding=r.pad))


# (condition, strategy): the first match runs. The last row is reached only with up == down == 1,
# when the padding is asymmetric or negative.
_STRATEGIES = (
    (lambda r: r.pointwise and r.up == 1 and r.down > 1, _decimate_then_pointwise),
    (lambda r: r.pointwise and r.up > 1 and r.down == 1, _pointwise_then_interpolate),
    (lambda r: r.up == 1 and r.down > 1, _filter_then_strided_conv),
    (lambda r: r.up > 1, _transposed_conv_then_filter),
    (lambda r: r.conv_can_pad, _padded_conv),
    (lambda r: True, _crop_then_conv),
)


def _choose_strategy(request):
    return next(strategy for applies, strategy in _STRATEGIES if applies(request))

#----------------------------------------------------------------------------

def _check_args(x, w, f, up, down, groups):
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'x must be a 4-D tensor [N, C, H, W], got shape {tuple(getattr(x, "shape", ()))}')
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError(f'w must be a 4-D tensor of the dtype of x ({x.dtype}); got shape '
                         f'{tuple(getattr(w, "shape", ()))} and dtype {getattr(w, "dtype", None)}')
    if f is not None and not (isinstance(f, torch.Tensor) and f.ndim in (1, 2) and f.dtype == torch.float32):
        raise ValueError('f must be None or a 1-D/2-D float32 filter made by upfirdn2d.setup_filter()')
    for name, value in (('up', up), ('down', down), ('groups', groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be an int >= 1, got {value!r}')


@misc.profiled_function
def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """2-D convolution with optional FIR upsampling and downsampling.

    Args:
        x:           [N, C_in, H, W] input, float16/32/64.
        w:           [C_out, C_in / groups, kh, kw] weights, x's dtype.
        f:           float32 resampling filter from upfirdn2d.setup_filter(), or None (no filtering).
        up, down:    int factors >= 1.
        padding:     int, [x, y] or [x0, x1, y0, y1], in pixels of the upsampled image.
        groups:      Convolution groups.
        flip_weight: True: cross-correlation (torch's convention). False: true convolution.
        flip_filter: Passed to upfirdn2d (False: true convolution with f).

    Returns:
        [N, C_out, H', W'] tensor of x's dtype, H' = (H * up + py0 + py1 - kh + 1) // down (likewise W').
    """
    _check_args(x, w, f, up, down, groups)
    fw, fh = _get_filter_size(f)
    pad = _parse_padding(padding)
    # Room for the resampling filter: the same margins upsample2d / downsample2d would add.
    if up > 1:
        pad = [p + m for p, m in zip(pad, _filter_margins(fw, fh, up=(up, up)))]
    if down > 1:
        pad = [p + m for p, m in zip(pad, _filter_margins(fw, fh, down=(down, down)))]
    request = _Request(w=w, f=f, up=up, down=down, pad=tuple(pad), groups=groups, flip_weight=flip_weight,
                       flip_filter=flip_filter)
    return _choose_strategy(request)(x, request)

#----------------------------------------------------------------------------
