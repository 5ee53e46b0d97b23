"""Fused bias + activation + gain + clamp (official module path `torch_utils.ops.bias_act`).

`bias_act(x, b, ...) = clamp(act(x + b) * gain, -clamp, clamp)`, with b broadcast along one
dimension. This order is part of the contract: official network code in pickles relies on it.

CUDA tensors run the plugin (bias_act.cpp/.cu/.h, compiled on first use through `custom_ops`)
in one pass. It evaluates the op (order 0) or its first or second derivative times an incoming
gradient (orders 1 and 2), so the autograd wrapper is two Functions: one for the op, whose
backward is the other, the order-1 product; that one is differentiable again w.r.t. the incoming
gradient (linear in it) and, for activations with a second derivative, w.r.t. x and b through
order 2. Anything else (CPU, other dtypes, a failed build, impl='ref') uses the composition of
torch ops in `_bias_act_ref`, differentiable to any order, except for the piecewise-linear
activations (linear, relu, lrelu) with a positive gain off CUDA: there `_FusedBiasAct` computes
the same values in one output buffer (bias add, then activation, gain and clamp in place) and
keeps only that output for backward, whose derivative it determines (see `_fused_accepts`).
"""

import os
import typing

import numpy as np
import torch

import dnnlib

from .. import custom_ops
from .. import misc

#----------------------------------------------------------------------------
# The activations. `cuda_idx` numbers them in table order from 1 (the plugin's ids); `ref` says
# whether the plugin computes derivatives from the op's input ('x') or its saved output ('y');
# `has_2nd_grad` is False where the second derivative is zero almost everywhere.

def _alpha_free(fn):
    """Adapt a one-argument activation to the table's `func(x, alpha=..., **_)` signature."""
    return lambda x, **_: fn(x)


_ACTIVATIONS = (
    # name      func                                                   def_alpha def_gain    ref  has_2nd_grad
    ('linear',   _alpha_free(lambda x: x),                              0,        1,          '',  False),
    ('relu',     _alpha_free(torch.nn.functional.relu),                 0,        np.sqrt(2), 'y', False),
    ('lrelu',    lambda x, alpha, **_: torch.nn.functional.leaky_relu(x, alpha),
                                                                        0.2,      np.sqrt(2), 'y', False),
    ('tanh',     _alpha_free(torch.tanh),                               0,        1,          'y', True),
    ('sigmoid',  _alpha_free(torch.sigmoid),                            0,        1,          'y', True),
    ('elu',      _alpha_free(torch.nn.functional.elu),                  0,        1,          'y', True),
    ('selu',     _alpha_free(torch.nn.functional.selu),                 0,        1,          'y', True),
    ('softplus', _alpha_free(torch.nn.functional.softplus),             0,        1,          'y', True),
    ('swish',    _alpha_free(lambda x: torch.sigmoid(x) * x),           0,        np.sqrt(2), 'x', True),
)

activation_funcs = {
    name: dnnlib.EasyDict(func=func, def_alpha=def_alpha, def_gain=def_gain, cuda_idx=index, ref=ref,
                          has_2nd_grad=second)
    for index, (name, func, def_alpha, def_gain, ref, second) in enumerate(_ACTIVATIONS, start=1)
}

#----------------------------------------------------------------------------
# Plugin state: loaded at most once per process, and only when a CUDA tensor asks for it.

_inited = False
_plugin = None
_null_tensor = torch.empty([0]) # The plugin reads an empty tensor as "not given".
_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _init():
    """Build or load `bias_act_plugin` on the first call; afterwards report whether that worked.

    A failed build warns once (with the reason) and is not retried.
    """
    global _inited, _plugin
    if _inited:
        return _plugin is not None
    _inited = True
    _plugin = custom_ops.try_get_plugin('bias_act', module_name='bias_act_plugin',
                                        sources=['bias_act.cpp', 'bias_act.cu'], headers=['bias_act.h'],
                                        source_dir=os.path.dirname(__file__), extra_cuda_cflags=['--use_fast_math'])
    return _plugin is not None

#----------------------------------------------------------------------------

class _Settings(typing.NamedTuple):
    """Resolved scalar settings of one call (clamp None = none). Hashable; `.apply(x, b)` runs the kernel."""
    dim: int
    act: str
    alpha: float
    gain: float
    clamp: typing.Optional[float]

    @property
    def spec(self):
        return activation_funcs[self.act]

    def apply(self, x, b):
        return _KernelBiasAct.apply(self, x, b)

    def kernel(self, order, dim, x=None, b=None, xref=None, yref=None, dy=None):
        """One plugin call; order 0 = the op on x, 1/2 = dy times the 1st/2nd derivative."""
        tensors = [_null_tensor if t is None else t for t in (x, b, xref, yref, dy)]
        clamp = -1.0 if self.clamp is None else self.clamp # The plugin's "no clamp".
        return _plugin.bias_act(*tensors, order, dim, self.spec.cuda_idx, self.alpha, self.gain, clamp)


def _settings(dim, act, alpha, gain, clamp):
    """Check the user's settings and fill in the table defaults."""
    if act not in activation_funcs:
        raise ValueError(f'unknown activation {act!r}; choose one of: {", ".join(activation_funcs)}')
    if clamp is not None and not clamp >= 0:
        raise ValueError(f'clamp must be None (no clamping) or a number >= 0, got {clamp}')
    spec = activation_funcs[act]
    return _Settings(dim=dim, act=act, alpha=float(spec.def_alpha if alpha is None else alpha),
                     gain=float(spec.def_gain if gain is None else gain), clamp=None if clamp is None else float(clamp))


def _checked_dim(x, b, dim):
    """`dim` as an index into x.shape, after checking it and the bias length against x."""
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f'dim={dim} does not exist in a tensor of shape {list(x.shape)}')
    dim %= x.ndim
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f'bias must be 1-D with length x.shape[{dim}] = {x.shape[dim]}, got shape {list(b.shape)}')
    return dim

#----------------------------------------------------------------------------

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='cuda'):
    """`clamp(act(x + b, alpha) * gain, -clamp, clamp)`, b broadcast along dimension `dim` of x.

    Args:
        x:     floating tensor of any shape (float16/bfloat16/float32/float64 for the kernel).
        b:     1-D bias of length x.shape[dim] (x's dtype and device for the kernel), or None.
        dim:   the dimension of x that b runs along (1 = channels of NCHW).
        act:   a name from `activation_funcs`: 'linear', 'relu', 'lrelu', 'tanh', 'sigmoid',
               'elu', 'selu', 'softplus', 'swish'.
        alpha: activation parameter (lrelu's negative slope); None = the table's def_alpha.
        gain:  output scale; None = the table's def_gain (sqrt(2) for relu, lrelu, swish).
        clamp: clamp the output to [-clamp, clamp]; None = no clamping.
        impl:  'cuda' (the kernel for CUDA tensors, when it builds) or 'ref'.

    Returns:
        Tensor of x's shape and dtype (the reference path follows torch's type promotion with b).
    """
    if impl not in ('cuda', 'ref'):
        raise ValueError(f"impl must be 'cuda' or 'ref', got {impl!r}")
    settings = _settings(_checked_dim(x, b, dim), act, alpha, gain, clamp)
    if impl == 'cuda' and _kernel_accepts(x, b) and _init():
        return settings.apply(x, b)
    if impl == 'cuda' and _fused_accepts(x, b, settings):
        return _fused_bias_act(x, b, settings)
    return _bias_act_ref(x, b, **settings._asdict())


def _kernel_accepts(x, b):
    """The plugin takes CUDA tensors of its dtypes, with b (if any) matching x."""
    return (x.device.type == 'cuda' and x.dtype in _KERNEL_DTYPES
            and (b is None or (b.dtype == x.dtype and b.device == x.device)))


@misc.profiled_function
def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """bias_act() from torch ops, differentiable to any order; same arguments minus impl."""
    dim, act, alpha, gain, clamp = _settings(_checked_dim(x, b, dim), act, alpha, gain, clamp)
    if b is not None:
        along_dim = [1] * x.ndim
        along_dim[dim] = -1
        x = x + b.reshape(along_dim)
    x = activation_funcs[act].func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------
# Fused path for piecewise-linear activations (CPU, or CUDA without the plugin).
#
# The reference allocates x + b, act(.), * gain and clamp(.) one after the other and keeps x + b
# for the activation's backward. For linear, relu and lrelu with gain > 0 the output y alone
# fixes the derivative: the slope is gain where y > 0 and gain * alpha (relu: 0) elsewhere, and
# the clamp cut where |y| reached it. So one buffer is written in place and y, which the next
# layer keeps anyway, is all that backward needs. Values and gradients are bitwise those of the
# reference (same ops in the same order), except where an activation lands exactly on +-clamp:
# the reference still passes that gradient, this path does not.

_FUSED_ACTS = ('linear', 'relu', 'lrelu')


def _fused_accepts(x, b, settings):
    """Whether the fused path computes this call: a piecewise-linear activation, a gain > 0 (so y's
    sign is the activation input's), a floating x, and no type promotion by b; not the identity
    (linear, no bias, gain 1, no clamp), which the reference returns as x itself."""
    identity = settings.act == 'linear' and b is None and settings.gain == 1 and settings.clamp is None
    return (settings.act in _FUSED_ACTS and settings.gain > 0 and x.is_floating_point()
            and (b is None or b.dtype == x.dtype) and not identity)


def _bias_shape(x, dim):
    along_dim = [1] * x.ndim
    along_dim[dim] = -1
    return along_dim


def _fused_forward(x, b, settings):
    """act(x + b) * gain, clamped: the first step that runs allocates the output, the rest work in place."""
    y = None if b is None else torch.add(x, b.reshape(_bias_shape(x, settings.dim)))
    if settings.act == 'relu':
        y = torch.relu(x) if y is None else y.relu_()
    elif settings.act == 'lrelu':
        y = torch.nn.functional.leaky_relu(x if y is None else y, settings.alpha, inplace=y is not None)
    if settings.gain != 1:
        y = x * settings.gain if y is None else y.mul_(settings.gain)
    if settings.clamp is not None:
        y = x.clamp(-settings.clamp, settings.clamp) if y is None else y.clamp_(-settings.clamp, settings.clamp)
    return x.clone() if y is None else y


def _fused_slope(dy, y, settings):
    """dy times the derivative of the op, read off its output y (the reference's backward chain)."""
    if settings.clamp is not None:
        dy = dy.masked_fill(y.abs() >= settings.clamp, 0)
    if settings.gain != 1:
        dy = dy * settings.gain
    if settings.act == 'relu':
        return torch.ops.aten.threshold_backward(dy, y, 0)
    if settings.act == 'lrelu':
        return torch.ops.aten.leaky_relu_backward(dy, y, settings.alpha, True)
    return dy


def _fused_bias_act(x, b, settings):
    if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
        return _FusedBiasAct.apply(settings, x, b)
    return _fused_forward(x, b, settings)


class _FusedBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, settings, x, b):
        y = _fused_forward(x, b, settings)
        ctx.settings = settings
        ctx.save_for_backward(y if (settings.act != 'linear' or settings.clamp is not None) else None)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        # y only selects slopes: detached, so a double backward (R1, path length) sends nothing
        # back through the forward graph, where the reference sends zeros through every layer.
        dx = _FusedBiasActGrad.apply(ctx.settings, dy, None if y is None else y.detach())
        db = _bias_grad(dx, ctx.settings.dim) if ctx.needs_input_grad[2] else None
        return None, (dx if ctx.needs_input_grad[1] else None), db


class _FusedBiasActGrad(torch.autograd.Function):
    """dx = dy * slope(y): linear in dy, and the slope is piecewise constant in y (no gradient)."""

    @staticmethod
    def forward(ctx, settings, dy, y):
        ctx.settings = settings
        ctx.save_for_backward(y)
        return _fused_slope(dy, y, settings)

    @staticmethod
    def backward(ctx, ddx):
        (y,) = ctx.saved_tensors
        grad_dy = _FusedBiasActGrad.apply(ctx.settings, ddx, y) if ctx.needs_input_grad[1] else None
        return None, grad_dy, None

#----------------------------------------------------------------------------
# Kernel path.

_interned_settings = {}

def _bias_act_cuda(dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """The kernel op for these settings (one object per distinct setting); run as `.apply(x, b)`.

    x: a dense tensor (standard or channels-last layout); b: None or 1-D of x's dtype.
    """
    settings = _settings(dim, act, alpha, gain, clamp)
    return _interned_settings.setdefault(settings, settings)


def _dense_format(x):
    """The memory format x is dense in; channels-last only where x is not also plain contiguous."""
    if not x.is_contiguous():
        for fmt, ndim in ((torch.channels_last, 4), (torch.channels_last_3d, 5)):
            if x.ndim == ndim and x.is_contiguous(memory_format=fmt):
                return fmt
    return torch.contiguous_format


def _bias_grad(dx, dim):
    """Sum over every dimension except `dim`: the gradient of a bias broadcast along `dim`."""
    return dx.sum(dim=[d for d in range(dx.ndim) if d != dim])


class _KernelBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, settings, x, b):
        dim, fmt = settings.dim % x.ndim, _dense_format(x)
        x = x.contiguous(memory_format=fmt)
        b = None if b is None else b.contiguous()
        y = settings.kernel(0, dim, x=x, b=b)
        spec = settings.spec
        # The derivative kernels read x (+ b) for 'x' activations and y otherwise; y also tells
        # where the clamp cut. x and b are needed as inputs of the 2nd-order graph.
        keep_x = spec.ref == 'x' or spec.has_2nd_grad
        keep_y = spec.ref == 'y' or (spec.ref == '' and settings.clamp is not None)
        ctx.save_for_backward(x if keep_x else None, b if keep_x else None, y if keep_y else None)
        ctx.settings, ctx.dim, ctx.fmt = settings, dim, fmt
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors
        dx = _KernelBiasActGrad.apply(ctx.settings, ctx.dim, ctx.fmt, dy.contiguous(memory_format=ctx.fmt), x, b, y)
        db = _bias_grad(dx, ctx.dim) if ctx.needs_input_grad[2] else None
        return None, (dx if ctx.needs_input_grad[1] else None), db


class _KernelBiasActGrad(torch.autograd.Function):
    """dx = dy * d(bias_act)/dx (order-1 kernel), as a differentiable function of (dy, x, b)."""

    @staticmethod
    def forward(ctx, settings, dim, fmt, dy, x, b, y):
        ctx.save_for_backward(dy if settings.spec.has_2nd_grad else None, x, b, y)
        ctx.settings, ctx.dim, ctx.fmt = settings, dim, fmt
        return settings.kernel(1, dim, b=b, xref=_input_ref(settings, x), yref=y, dy=dy)

    @staticmethod
    def backward(ctx, ddx):
        dy, x, b, y = ctx.saved_tensors
        settings, dim, fmt = ctx.settings, ctx.dim, ctx.fmt
        want_dy, want_x, want_b = ctx.needs_input_grad[3:6]
        ddx = ddx.contiguous(memory_format=fmt)
        # Linear in dy: the same product with ddx in place of dy.
        grad_dy = _KernelBiasActGrad.apply(settings, dim, fmt, ddx, x, b, y) if want_dy else None
        grad_x = grad_b = None
        if settings.spec.has_2nd_grad and (want_x or want_b):
            grad_x = settings.kernel(2, dim, b=b, xref=_input_ref(settings, x), yref=y, dy=ddx * dy)
            grad_b = _bias_grad(grad_x, dim) if want_b else None
        return None, None, None, grad_dy, (grad_x if want_x else None), grad_b, None


def _input_ref(settings, x):
    """x for the derivative kernels of activations that read it, else None (not sent)."""
    return x if settings.spec.ref == 'x' else None

#----------------------------------------------------------------------------
