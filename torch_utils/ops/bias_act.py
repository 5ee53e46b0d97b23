"""Fused bias + activation + gain + clamp (official module path `torch_utils.ops.bias_act`).

`bias_act()` computes, in this order: add a bias along one dimension, apply an activation, multiply
by a gain, clamp to [-clamp, +clamp]. CUDA tensors use our kernel (bias_act.cu, compiled on first use
through `custom_ops`); everything else, or a failed build, uses the reference composition of PyTorch
ops, which supports gradients of any order. The kernel path supports 1st-order gradients for every
activation and 2nd-order gradients (needed by R1/path-length regularization) as well.
"""

import os

import numpy as np
import torch

import dnnlib

from .. import custom_ops
from .. import misc

#----------------------------------------------------------------------------
# Activations. `func(x, alpha=...)` is the reference; `cuda_idx` selects it in the kernel; `ref` says
# whether the kernel's derivatives come from the input ('x') or the output ('y') of the forward pass;
# `has_2nd_grad` is False where the second derivative vanishes almost everywhere.

def _identity(x, **_):
    return x

def _relu(x, **_):
    return torch.nn.functional.relu(x)

def _lrelu(x, alpha, **_):
    return torch.nn.functional.leaky_relu(x, alpha)

def _tanh(x, **_):
    return torch.tanh(x)

def _sigmoid(x, **_):
    return torch.sigmoid(x)

def _elu(x, **_):
    return torch.nn.functional.elu(x)

def _selu(x, **_):
    return torch.nn.functional.selu(x)

def _softplus(x, **_):
    return torch.nn.functional.softplus(x)

def _swish(x, **_):
    return torch.sigmoid(x) * x

def _spec(func, def_alpha, def_gain, cuda_idx, ref, has_2nd_grad):
    return dnnlib.EasyDict(func=func, def_alpha=def_alpha, def_gain=def_gain, cuda_idx=cuda_idx, ref=ref,
                           has_2nd_grad=has_2nd_grad)

activation_funcs = {
    'linear':   _spec(_identity, def_alpha=0,   def_gain=1,          cuda_idx=1, ref='',  has_2nd_grad=False),
    'relu':     _spec(_relu,     def_alpha=0,   def_gain=np.sqrt(2), cuda_idx=2, ref='y', has_2nd_grad=False),
    'lrelu':    _spec(_lrelu,    def_alpha=0.2, def_gain=np.sqrt(2), cuda_idx=3, ref='y', has_2nd_grad=False),
    'tanh':     _spec(_tanh,     def_alpha=0,   def_gain=1,          cuda_idx=4, ref='y', has_2nd_grad=True),
    'sigmoid':  _spec(_sigmoid,  def_alpha=0,   def_gain=1,          cuda_idx=5, ref='y', has_2nd_grad=True),
    'elu':      _spec(_elu,      def_alpha=0,   def_gain=1,          cuda_idx=6, ref='y', has_2nd_grad=True),
    'selu':     _spec(_selu,     def_alpha=0,   def_gain=1,          cuda_idx=7, ref='y', has_2nd_grad=True),
    'softplus': _spec(_softplus, def_alpha=0,   def_gain=1,          cuda_idx=8, ref='y', has_2nd_grad=True),
    'swish':    _spec(_swish,    def_alpha=0,   def_gain=np.sqrt(2), cuda_idx=9, ref='x', has_2nd_grad=True),
}

#----------------------------------------------------------------------------
# Plugin state: built at most once per process, and only when a CUDA tensor asks for it.

_inited = False
_plugin = None
_null_tensor = torch.empty([0])    # Stands for "not given" in plugin calls.
_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

def _init():
    """Build/load `bias_act_plugin` on the first call; return True when the kernel is usable.

    A failure warns once (naming the reason) and every later call returns False without retrying.
    """
    global _inited, _plugin
    if not _inited:
        _inited = True
        _plugin = custom_ops.try_get_plugin('bias_act', module_name='bias_act_plugin',
                                            sources=['bias_act.cpp', 'bias_act.cu'], headers=['bias_act.h'],
                                            source_dir=os.path.dirname(__file__),
                                            extra_cuda_cflags=['--use_fast_math'])
    return _plugin is not None

#----------------------------------------------------------------------------

def _resolve_params(act, alpha, gain, clamp):
    """Validate the user settings; return (spec, alpha, gain, clamp) as floats, clamp -1 = none."""
    if act not in activation_funcs:
        raise ValueError(f'Unknown activation {act!r}; expected one of {", ".join(activation_funcs)}')
    spec = activation_funcs[act]
    if clamp is not None and clamp < 0:
        raise ValueError(f'clamp must be None (no clamping) or >= 0, got {clamp}')
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    return spec, alpha, gain, clamp

def _normalize_dim(x, b, dim):
    """Check `dim` and the bias shape against x; return dim as a non-negative index."""
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f'dim={dim} is out of range for a tensor of shape {list(x.shape)}')
    dim %= x.ndim
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f'Bias must be 1-D of length x.shape[{dim}] = {x.shape[dim]}, got shape {list(b.shape)}')
    return dim

def _memory_format_of(x):
    """The memory format x is laid out in (channels-last variants only when x is not also plain contiguous)."""
    if not x.is_contiguous():
        if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
        if x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
            return torch.channels_last_3d
    return torch.contiguous_format

def _sum_except(x, dim):
    """Sum over every dimension but `dim`: the gradient of a bias broadcast along `dim`."""
    other = [i for i in range(x.ndim) if i != dim]
    return x.sum(dim=other) if other else x

#----------------------------------------------------------------------------

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='cuda'):
    """Add a bias, apply an activation, scale and clamp: `clamp(act(x + b, alpha) * gain, -clamp, clamp)`.

    Args:
        x:     input tensor of any shape, floating point (float16/bfloat16/float32/float64 on the kernel path).
        b:     bias, 1-D of length `x.shape[dim]` (same dtype as x for the kernel path), or None.
        dim:   dimension of x the bias runs along (1 = channels of an NCHW tensor).
        act:   one of `activation_funcs` ('linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu',
               'softplus', 'swish').
        alpha: activation parameter (negative slope of 'lrelu'); None = `activation_funcs[act].def_alpha`.
        gain:  output scale; None = `activation_funcs[act].def_gain` (sqrt(2) for relu/lrelu/swish).
        clamp: output range [-clamp, clamp]; None = no clamping.
        impl:  'cuda' (kernel for CUDA tensors when it builds, reference otherwise) or 'ref'.
    Returns a tensor of x's shape and dtype (the reference path follows torch's type promotion with b).
    """
    if impl not in ('cuda', 'ref'):
        raise ValueError(f"impl must be 'cuda' or 'ref', got {impl!r}")
    dim = _normalize_dim(x, b, dim)
    kernel_ok = x.dtype in _KERNEL_DTYPES and (b is None or (b.dtype == x.dtype and b.device == x.device))
    if impl == 'cuda' and x.device.type == 'cuda' and kernel_ok and _init():
        x = x.contiguous(memory_format=_memory_format_of(x))  # The kernel needs a dense tensor.
        return _bias_act_cuda(dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp).apply(x, b)
    return _bias_act_ref(x=x, b=b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

@misc.profiled_function
def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Reference `bias_act` from plain PyTorch ops (differentiable to any order); same arguments as `bias_act`."""
    spec, alpha, gain, clamp = _resolve_params(act, alpha, gain, clamp)
    dim = _normalize_dim(x, b, dim)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------

_cuda_functions = dict()    # (dim, act, alpha, gain, clamp) -> autograd Function class.

def _bias_act_cuda(dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Autograd Function class running the kernel with these settings; use `.apply(x, b)`.

    x must be contiguous in the standard or a channels-last format; b None or 1-D of x's dtype.
    Classes are cached, one per distinct setting.
    """
    spec, alpha, gain, clamp = _resolve_params(act, alpha, gain, clamp)
    key = (dim, act, alpha, gain, clamp)
    if key not in _cuda_functions:
        _cuda_functions[key] = _make_cuda_function(dim, spec, alpha, gain, clamp)
    return _cuda_functions[key]

def _or_null(t):
    return _null_tensor if t is None else t

def _make_cuda_function(dim, spec, alpha, gain, clamp):
    settings = (spec.cuda_idx, alpha, gain, clamp)
    # x is kept for swish's derivatives and as the target of 2nd-order gradients; y for the others'.
    keep_x = spec.ref == 'x' or spec.has_2nd_grad
    keep_y = spec.ref == 'y' or (spec.ref == '' and clamp >= 0)

    def derivative(order, x, b, y, dy, d):
        x = x if spec.ref == 'x' else None
        return _plugin.bias_act(_null_tensor, _or_null(b), _or_null(x), _or_null(y), dy, order, d, *settings)

    class BiasActCudaGrad(torch.autograd.Function):
        """dx = dy * d(bias_act)/dx, itself differentiable w.r.t. dy (always) and x, b (has_2nd_grad)."""
        @staticmethod
        def forward(ctx, dy, x, b, y, d, memory_format):
            ctx.d, ctx.memory_format = d, memory_format
            ctx.save_for_backward(dy if spec.has_2nd_grad else None, x, b, y)
            return derivative(1, x, b, y, dy, d)

        @staticmethod
        def backward(ctx, ddx):
            ddx = ddx.contiguous(memory_format=ctx.memory_format)
            dy, x, b, y = ctx.saved_tensors
            d_dy = d_x = d_b = None
            if ctx.needs_input_grad[0]:
                d_dy = BiasActCudaGrad.apply(ddx, x, b, y, ctx.d, ctx.memory_format)
            if spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
                d_x = derivative(2, x, b, y, ddx * dy, ctx.d)
                d_b = _sum_except(d_x, ctx.d) if ctx.needs_input_grad[2] else None
            return d_dy, (d_x if ctx.needs_input_grad[1] else None), d_b, None, None, None

    class BiasActCuda(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, b):
            d = dim % x.ndim
            ctx.d, ctx.memory_format = d, _memory_format_of(x)
            x = x.contiguous(memory_format=ctx.memory_format)
            b = b.contiguous() if b is not None else None
            y = _plugin.bias_act(x, _or_null(b), _null_tensor, _null_tensor, _null_tensor, 0, d, *settings)
            ctx.save_for_backward(x if keep_x else None, b if keep_x else None, y if keep_y else None)
            return y

        @staticmethod
        def backward(ctx, dy):
            x, b, y = ctx.saved_tensors
            dy = dy.contiguous(memory_format=ctx.memory_format)
            dx = BiasActCudaGrad.apply(dy, x, b, y, ctx.d, ctx.memory_format)
            db = _sum_except(dx, ctx.d) if ctx.needs_input_grad[1] else None
            return (dx if ctx.needs_input_grad[0] else None), db

    return BiasActCuda

#----------------------------------------------------------------------------
