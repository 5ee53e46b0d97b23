"""conv2d / conv_transpose2d with switchable weight gradients (official module path).

With `enabled = False` (the default) both functions are plain `torch.nn.functional` calls.
With `enabled = True` they run through a custom autograd Function whose backward is torch's own
`aten.convolution_backward` (so values and gradients are bitwise those of the plain call, and
higher-order gradients come from torch's native double-backward formula), with one addition:
inside `no_weight_gradients()` the weight gradient is not computed at all. R1 and path-length
regularisation take gradients w.r.t. images or latents only and use this to save the work.

Unlike the official module, which engages only on PyTorch 1.7-1.9 and otherwise warns, this
works on any torch version and device and never warns.
"""

import contextlib
import functools

import torch

enabled = False                   # Use the custom op at all? The training loop sets this to True.
weight_gradients_disabled = False # Skip weight gradients? Set by no_weight_gradients().


@contextlib.contextmanager
def no_weight_gradients(disable=True):
    """Within this block, backward passes of enabled ops leave the weight gradient out (None)."""
    global weight_gradients_disabled
    previous = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = previous


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Same contract as `torch.nn.functional.conv2d` for input [N, C_in, H, W], weight [C_out, C_in/groups, kh, kw]."""
    if _should_use_custom_op(input) and not isinstance(padding, str):
        op = _conv2d_gradfix(transpose=False, weight_shape=weight.shape, stride=stride, padding=padding,
                             output_padding=0, dilation=dilation, groups=groups)
        return op.apply(input, weight, bias)
    return torch.nn.functional.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                                      dilation=dilation, groups=groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Same contract as `torch.nn.functional.conv_transpose2d`; weight [C_in, C_out/groups, kh, kw]."""
    if _should_use_custom_op(input):
        op = _conv2d_gradfix(transpose=True, weight_shape=weight.shape, stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation, groups=groups)
        return op.apply(input, weight, bias)
    return torch.nn.functional.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride,
                                                padding=padding, output_padding=output_padding, groups=groups,
                                                dilation=dilation)


def _should_use_custom_op(input):
    """True when the custom op should replace the plain functional call for this input tensor."""
    if not enabled:
        return False
    # Only 4-D batches go through the custom op; anything else keeps torch's own handling.
    return isinstance(input, torch.Tensor) and input.ndim == 4


def _tuple_of_ints(xs, ndim):
    """Expand an int or a sequence of ints to a tuple of exactly `ndim` ints."""
    xs = tuple(xs) if isinstance(xs, (tuple, list)) else (xs,) * ndim
    if len(xs) != ndim or not all(isinstance(x, int) for x in xs):
        raise ValueError(f'expected an int or {ndim} ints, got {xs!r}')
    return xs


@functools.lru_cache(maxsize=None)
def _conv2d_gradfix_cached(transpose, weight_shape, stride, padding, output_padding, dilation, groups):
    """Build the autograd Function for one hashable convolution configuration."""

    class _ConvWithOptionalWeightGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias):
            if tuple(weight.shape) != weight_shape:
                raise ValueError(f'weight shape {tuple(weight.shape)} does not match the op ({weight_shape})')
            ctx.save_for_backward(input, weight)
            ctx.bias_sizes = None if bias is None else list(bias.shape)
            if transpose:
                return torch.nn.functional.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride,
                                                            padding=padding, output_padding=output_padding,
                                                            groups=groups, dilation=dilation)
            return torch.nn.functional.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                                              dilation=dilation, groups=groups)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight = ctx.saved_tensors
            wants_input, wants_weight, wants_bias = ctx.needs_input_grad
            mask = [wants_input, wants_weight and not weight_gradients_disabled, wants_bias]
            if not any(mask):
                return None, None, None
            # The aten op is what native conv autograd calls; under create_graph it records its own
            # differentiable node, which gives double backward (e.g. R1) for free.
            grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad_output, input, weight, ctx.bias_sizes, list(stride), list(padding), list(dilation),
                transpose, list(output_padding), groups, mask)
            return (grad_input if mask[0] else None, grad_weight if mask[1] else None,
                    grad_bias if mask[2] else None)

    return _ConvWithOptionalWeightGrad


def _conv2d_gradfix(transpose, weight_shape, stride, padding, output_padding, dilation, groups):
    """Return the (cached) autograd Function implementing one conv / transposed-conv configuration.

    The returned class is applied as `op.apply(input, weight, bias)`.
    """
    ndim = 2
    weight_shape = tuple(int(s) for s in weight_shape)
    stride = _tuple_of_ints(stride, ndim)
    padding = _tuple_of_ints(padding, ndim)
    output_padding = _tuple_of_ints(output_padding, ndim)
    dilation = _tuple_of_ints(dilation, ndim)
    if len(weight_shape) != ndim + 2:
        raise ValueError(f'weight must be 4-D [out, in/groups, kh, kw], got shape {weight_shape}')
    if not transpose and any(p != 0 for p in output_padding):
        raise ValueError(f'output_padding is only valid for transposed convolutions, got {output_padding}')
    return _conv2d_gradfix_cached(bool(transpose), weight_shape, stride, padding, output_padding, dilation,
                                  int(groups))
