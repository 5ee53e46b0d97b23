"""conv2d / conv_transpose2d with cheap higher-order gradients and skippable weight gradients
(official module path).

R1 and path-length regularisation differentiate a network's output w.r.t. its input with
`create_graph=True` and then backpropagate the penalty: every convolution is differentiated
twice. Torch's own double backward of a convolution computes the second-order weight gradient as
a convolution of the activations with the output gradient used as a kernel, and the gradient of
a constant kernel anyway, group by group for depthwise convolutions; on the CPU that is 2-3x the
cost of the first-order weight gradient, and the per-group loop of upfirdn2d's FIR filters is
pure waste.

While `enabled` is True (the training loop sets it), 4-D convolutions that need gradients go
through three small autograd Functions instead, each a product that oneDNN/cuDNN has one kernel
for, and each differentiable in terms of the other two:

    forward   y  = conv(x, w)           (the plain functional call)
    data      dx = conv_data(dy, w)     (aten.convolution_backward, input gradient only)
    weight    dw = conv_weight(dy, x)   (aten.convolution_backward, weight gradient only)

All three are bilinear, so the gradient of each w.r.t. either argument is one of the others with
the incoming gradient in that argument's place: no order of differentiation ever leaves the set.
Values and first-order gradients are bitwise those of the plain call; second-order ones differ
from torch's formula by float rounding only. A gradient is computed only when the backward pass
asks for it (`torch.autograd.grad(..., inputs=[x])` computes no weight gradient), and inside
`no_weight_gradients()` weight gradients are left out altogether.

With `enabled` False (the default), or without gradients, both functions are the plain
`torch.nn.functional` calls. Unlike the official module (which engages only on PyTorch 1.7-1.9
with cuDNN and otherwise warns), this works on any torch version and device and never warns.
"""

import contextlib
import functools
import typing

import torch

enabled = False                   # Route 4-D convolutions through the custom ops (set by the training loop).
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
    if _should_use_custom_op(input) and _needs_graph(input, weight, bias) and not isinstance(padding, str):
        op = _conv2d_gradfix(False, weight.shape, stride, padding, 0, dilation, groups)
        return op.apply(*_prepared(input, weight, bias))
    return torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """`torch.nn.functional.conv_transpose2d`: input [N, C_in, H, W], weight [C_in, C_out / groups, kh, kw]."""
    if _should_use_custom_op(input) and _needs_graph(input, weight, bias):
        op = _conv2d_gradfix(True, weight.shape, stride, padding, output_padding, dilation, groups)
        return op.apply(*_prepared(input, weight, bias))
    return torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def higher_order_is_cheap():
    """True while convolutions run through this module's ops (`enabled`), whose gradients of any
    order cost what first-order ones do, in either memory layout. Network code reaches this with
    getattr() and a False default: the official module of the same path has no such function."""
    return enabled

#----------------------------------------------------------------------------

def _should_use_custom_op(input):
    """Whether this input goes through the custom op: only when enabled, and only 4-D batches."""
    return enabled and isinstance(input, torch.Tensor) and input.ndim == 4


def _needs_graph(*tensors):
    """Autograd will record this call: without a graph the plain call is the same and cheaper."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _tuple_of_ints(xs, ndim):
    """An int (repeated) or a sequence of exactly `ndim` ints, as a tuple of `ndim` ints."""
    values = (xs,) * ndim if not isinstance(xs, (list, tuple, torch.Size)) else tuple(xs)
    if len(values) != ndim or not all(isinstance(v, int) for v in values):
        raise ValueError(f'need one int or {ndim} ints, got {xs!r}')
    return values


class _ConvSpec(typing.NamedTuple):
    """Everything but the tensors of one convolution configuration; hashable. `apply(x, w, b)` runs
    the custom op; `data` and `weight` are its two gradient products, as plain tensor functions."""
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

    def _backward(self, dy, x, w, which):
        """One output of aten.convolution_backward (0 data, 1 weight, 2 bias): native autograd's own
        kernel, so first-order gradients are bitwise those of the plain call."""
        mask = [which == 0, which == 1, which == 2]
        bias_sizes = [w.shape[1] * self.groups if self.transpose else w.shape[0]] if which == 2 else None
        grads = torch.ops.aten.convolution_backward(dy, x, w, bias_sizes, list(self.stride), list(self.padding),
                                                    list(self.dilation), self.transpose, list(self.output_padding),
                                                    self.groups, mask)
        return grads[which]

    def data(self, dy, w, x_like):
        """dL/dx [x_like's shape] from dL/dy; only x_like's shape and layout are read."""
        return self._backward(dy, x_like, w, 0)

    def weight(self, dy, x, w_like):
        """dL/dw [w_like's shape] from dL/dy and the input x; only w_like's shape and layout are read."""
        return self._backward(dy, x, w_like, 1)

    def bias(self, dy, x_like, w_like):
        """dL/db [C_out] from dL/dy (the sum over batch and pixels)."""
        return self._backward(dy, x_like, w_like, 2)

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

#----------------------------------------------------------------------------
# Which gradients a backward call really has to produce.

_engine_will_run = getattr(torch._C, '_will_engine_execute_node', None)


def gradient_edges(*tensors):
    """Where each tensor's gradient would go (None for non-tensors and tensors without grad), for
    `gradient_wanted` in a custom Function's backward. Also used by stylegan_plus.losses.penalty_pass."""
    edge = torch.autograd.graph.get_gradient_edge
    return tuple(edge(t) if isinstance(t, torch.Tensor) and t.requires_grad else None for t in tensors)


def gradient_wanted(edge, needs_grad):
    """Will the running backward pass use the gradient sent along `edge` (from `gradient_edges`)?

    `needs_grad` (the Function's `ctx.needs_input_grad` entry) only says that the input requires
    grad; `torch.autograd.grad(..., inputs=[x])` runs no node towards a weight, and the engine
    tells which nodes it will run.
    """
    if edge is None or not needs_grad:
        return False
    try:
        return _engine_will_run is None or _engine_will_run(edge.node)
    except RuntimeError:    # not called by the engine (e.g. backward invoked by hand): assume wanted
        return True


def _remember_edges(ctx, *tensors):
    """Record where each input's gradient would go, so backward can ask the engine whether it will."""
    ctx.edges = gradient_edges(*tensors)


def _wanted(ctx, index):
    """Input `index` (counted after the spec) needs a gradient in the running backward pass."""
    return gradient_wanted(ctx.edges[index], ctx.needs_input_grad[index + 1])


def _weight_wanted(ctx, index):
    return not weight_gradients_disabled and _wanted(ctx, index)


def _prepared(x, w, b):
    """The op's inputs: in the autocast dtype, and w in x's layout. Converted here, outside the op,
    where autograd records the conversions: the op saves the converted tensors, and gradients of
    any order flow back through them to the caller's (float32, plain-layout) tensors."""
    x, w, b = _autocast_inputs(x, w, b)
    return x, _layout_like(w, x), b


def _layout_like(w, x):
    """w in channels-last layout when x is: oneDNN converts the weight to the activations' layout in
    every call otherwise (forward, data and weight gradient each), a copy that costs as much as a
    small convolution. Converted once (see `_prepared`), the saved weight serves all gradients.
    Same values."""
    channels_last = torch.channels_last
    if x.is_contiguous() or not x.is_contiguous(memory_format=channels_last) or w.is_contiguous(memory_format=channels_last):
        return w
    return w.contiguous(memory_format=channels_last)


def _autocast_inputs(x, w, b):
    """x, w, b in the autocast dtype when autocast is on for x's device, else unchanged.

    Under autocast the convolution inside the op would compute in bfloat16/float16 while the saved
    x and w stayed float32, and convolution_backward refuses mixed dtypes; casting before the op
    keeps forward, saved tensors and backward in one dtype, and autograd casts the gradients back
    to the float32 tensors' dtype.
    """
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):
        return x, w, b
    dtype = torch.get_autocast_dtype(kind)
    return tuple(None if t is None else t.to(dtype) for t in (x, w, b))


class _ConvWithOptionalWeightGrad(torch.autograd.Function):
    """y = conv(x, w) + b. Backward: dx by `_ConvData`, dw by `_ConvWeight` (unless skipped), db = sum(dy)."""

    @staticmethod
    def forward(ctx, spec, x, w, b):
        if tuple(w.shape) != spec.weight_shape:
            raise ValueError(f'weight shape {tuple(w.shape)} differs from the one this op was built for, '
                             f'{spec.weight_shape}')
        ctx.spec = spec
        _remember_edges(ctx, x, w, b)
        ctx.save_for_backward(x, w)
        return spec.functional(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        spec = ctx.spec
        dx = _ConvData.apply(spec, dy, w, x) if _wanted(ctx, 0) else None
        dw = _ConvWeight.apply(spec, dy, x, w) if _weight_wanted(ctx, 1) else None
        db = _ConvBias.apply(spec, dy, x, w) if _wanted(ctx, 2) else None
        return None, dx, dw, db


class _ConvData(torch.autograd.Function):
    """dx = conv_data(dy, w), linear in each: d/d(dy) is the forward conv, d/dw a weight gradient."""

    @staticmethod
    def forward(ctx, spec, dy, w, x_like):
        ctx.spec = spec
        _remember_edges(ctx, dy, w)
        ctx.save_for_backward(dy, w, x_like)
        return spec.data(dy, w, x_like)

    @staticmethod
    def backward(ctx, ddx):
        dy, w, x_like = ctx.saved_tensors
        spec = ctx.spec
        # <ddx, conv_data(dy, w)> = <conv(ddx, w), dy>
        grad_dy = _ConvWithOptionalWeightGrad.apply(spec, ddx, w, None) if _wanted(ctx, 0) else None
        grad_w = _ConvWeight.apply(spec, dy, ddx, w) if _weight_wanted(ctx, 1) else None
        return None, grad_dy, grad_w, None


class _ConvWeight(torch.autograd.Function):
    """dw = conv_weight(dy, x), linear in each: d/d(dy) is the forward conv with ddw, d/dx a data gradient."""

    @staticmethod
    def forward(ctx, spec, dy, x, w_like):
        ctx.spec = spec
        _remember_edges(ctx, dy, x)
        ctx.save_for_backward(dy, x, w_like)
        return spec.weight(dy, x, w_like)

    @staticmethod
    def backward(ctx, ddw):
        dy, x, w_like = ctx.saved_tensors
        spec = ctx.spec
        # <ddw, conv_weight(dy, x)> = <conv(x, ddw), dy>
        grad_dy = _ConvWithOptionalWeightGrad.apply(spec, x, ddw, None) if _wanted(ctx, 0) else None
        grad_x = _ConvData.apply(spec, dy, ddw, x) if _wanted(ctx, 1) else None
        return None, grad_dy, grad_x, None


class _ConvBias(torch.autograd.Function):
    """db = sum of dy over batch and pixels; its gradient is ddb broadcast back over them."""

    @staticmethod
    def forward(ctx, spec, dy, x_like, w_like):
        ctx.dy_shape = dy.shape
        return spec.bias(dy, x_like, w_like)

    @staticmethod
    def backward(ctx, ddb):
        return None, ddb.reshape(1, -1, 1, 1).expand(ctx.dy_shape), None, None

#----------------------------------------------------------------------------
