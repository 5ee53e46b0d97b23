"""conv2d / conv_transpose2d whose weight gradient can be switched off (official module path).

R1 and path-length regularisation differentiate w.r.t. images or latents only, through networks
full of convolutions. Inside `no_weight_gradients()` the backward pass of these two functions
leaves the weight gradient out, which saves one of the three convolutions of every backward.

How: while `enabled` is False (the default) both functions are the `torch.nn.functional` calls.
Once the training loop sets it, 4-D inputs go through `_ConvWithOptionalWeightGrad`, whose
forward is the functional call and whose backward asks `aten.convolution_backward` (what native
autograd runs) for just the gradients needed. Values and gradients are therefore bitwise those
of the plain call, and because that aten op has its own derivative, double backward works.

The official module engages only on PyTorch 1.7-1.9 and warns elsewhere; this one works on any
torch version and device and never warns.
"""

import contextlib
import functools
import typing

import torch

enabled = False                   # Route 4-D convolutions through the custom op (set by the training loop).
weight_gradients_disabled = False # Leave weight gradients out (set inside no_weight_gradients()).

#----------------------------------------------------------------------------

@contextlib.contextmanager
def no_weight_gradients(disable=True):
    """Context manager: backward passes run inside it skip the weight gradient of enabled ops (None).

    disable=False makes it a no-op, for callers that decide at run time. The previous setting is
    restored on exit, also when the block raises.
    """
    global weight_gradients_disabled
    saved = weight_gradients_disabled
    weight_gradients_disabled = saved or bool(disable)
    try:
        yield
    finally:
        weight_gradients_disabled = saved


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """`torch.nn.functional.conv2d`: input [N, C_in, H, W], weight [C_out, C_in / groups, kh, kw], bias [C_out]."""
    if _should_use_custom_op(input) and not isinstance(padding, str): # 'same'/'valid' stay with torch.
        op = _conv2d_gradfix(False, weight.shape, stride, padding, 0, dilation, groups)
        return op.apply(input, weight, bias)
    return torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """`torch.nn.functional.conv_transpose2d`: input [N, C_in, H, W], weight [C_in, C_out / groups, kh, kw]."""
    if _should_use_custom_op(input):
        op = _conv2d_gradfix(True, weight.shape, stride, padding, output_padding, dilation, groups)
        return op.apply(input, weight, bias)
    return torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)

#----------------------------------------------------------------------------

def _should_use_custom_op(input):
    """Whether this input goes through the custom op: only when enabled, and only 4-D batches."""
    return enabled and isinstance(input, torch.Tensor) and input.ndim == 4


def _tuple_of_ints(xs, ndim):
    """An int (repeated) or a sequence of exactly `ndim` ints, as a tuple of `ndim` ints."""
    values = (xs,) * ndim if not isinstance(xs, (list, tuple, torch.Size)) else tuple(xs)
    if len(values) != ndim or not all(isinstance(v, int) for v in values):
        raise ValueError(f'need one int or {ndim} ints, got {xs!r}')
    return values


class _ConvSpec(typing.NamedTuple):
    """Everything but the tensors of one convolution configuration; hashable, and runnable as
    `spec.apply(input, weight, bias)` through the custom op."""
    transpose: bool
    weight_shape: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple
    dilation: tuple
    groups: int

    def functional(self, x, w, b):
        """The plain torch call this configuration stands for."""
        if self.transpose:
            return torch.nn.functional.conv_transpose2d(x, w, b, self.stride, self.padding, self.output_padding,
                                                        self.groups, self.dilation)
        return torch.nn.functional.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def apply(self, input, weight, bias=None):
        return _ConvWithOptionalWeightGrad.apply(self, input, weight, bias)


def _conv2d_gradfix(transpose, weight_shape, stride, padding, output_padding, dilation, groups):
    """The custom op for one configuration; run it as `op.apply(input, weight, bias)`.

    Arguments take the forms torch accepts (int or pair); equal configurations in any form give the
    same op object.
    """
    spec = _ConvSpec(transpose=bool(transpose), weight_shape=tuple(int(s) for s in weight_shape),
                     stride=_tuple_of_ints(stride, 2), padding=_tuple_of_ints(padding, 2),
                     output_padding=_tuple_of_ints(output_padding, 2), dilation=_tuple_of_ints(dilation, 2),
                     groups=int(groups))
    if len(spec.weight_shape) != 4:
        raise ValueError(f'weight must be 4-D [out, in/groups, kh, kw], got shape {spec.weight_shape}')
    if not spec.transpose and any(spec.output_padding):
        raise ValueError(f'output_padding only applies to transposed convolutions, got {output_padding!r}')
    return _interned(spec)


@functools.lru_cache(maxsize=None)
def _interned(spec):
    """The first-seen object equal to `spec` (one op object per configuration)."""
    return spec


def _autocast_inputs(x, w, b):
    """x, w, b in the autocast dtype when autocast is on for x's device, else unchanged.

    Under autocast the convolution inside forward() would compute in bfloat16/float16 while the
    saved x and w stayed float32, and backward's convolution_backward refuses mixed dtypes; casting
    once here keeps forward, saved tensors and backward in one dtype. Autograd casts the returned
    gradients back to the float32 parameters' dtype.
    """
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):
        return x, w, b
    dtype = torch.get_autocast_dtype(kind)
    return tuple(None if t is None else t.to(dtype) for t in (x, w, b))


class _ConvWithOptionalWeightGrad(torch.autograd.Function):
    """Forward: `spec.functional(x, w, b)`. Backward: the requested gradients, minus the weight
    gradient while `weight_gradients_disabled` is set (read when backward runs)."""

    @staticmethod
    def forward(ctx, spec, x, w, b):
        if tuple(w.shape) != spec.weight_shape:
            raise ValueError(f'weight shape {tuple(w.shape)} differs from the one this op was built for, '
                             f'{spec.weight_shape}')
        x, w, b = _autocast_inputs(x, w, b)
        ctx.spec = spec
        ctx.bias_sizes = None if b is None else list(b.shape)
        ctx.save_for_backward(x, w)
        return spec.functional(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        spec = ctx.spec
        _, want_x, want_w, want_b = ctx.needs_input_grad
        mask = [want_x, want_w and not weight_gradients_disabled, want_b]
        if not any(mask):
            return None, None, None, None
        grads = torch.ops.aten.convolution_backward(
            dy, x, w, ctx.bias_sizes, list(spec.stride), list(spec.padding), list(spec.dilation), spec.transpose,
            list(spec.output_padding), spec.groups, mask)
        return (None,) + tuple(g if needed else None for g, needed in zip(grads, mask))

#----------------------------------------------------------------------------
