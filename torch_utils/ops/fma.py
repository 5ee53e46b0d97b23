"""Fused multiply-add with broadcasting: `fma(a, b, c) = a * b + c` in one `torch.addcmul`.

The forward is a single kernel with no `a * b` temporary. Gradients are written by hand so that
each one is produced directly in its input's shape: the full-size product `dout * other` is
reduced with `Tensor.sum_to_size`, which undoes broadcasting. All backward ops are ordinary
differentiable torch ops, so gradients of any order work.
"""

import torch

#----------------------------------------------------------------------------

def fma(a, b, c):
    """Return `a * b + c`.

    a, b, c: floating tensors of any shapes that broadcast together (0-d allowed), same dtype.
    Returns a tensor of the broadcast shape. Differentiable to any order w.r.t. all three.
    """
    return _MulAdd.apply(a, b, c)

#----------------------------------------------------------------------------

def _unbroadcast(x, shape):
    """Sum `x` down to `shape` (a shape `x`'s shape was broadcast from): the adjoint of `expand`."""
    if x.ndim < len(shape):
        raise ValueError(f'a tensor of shape {list(x.shape)} was not broadcast from shape {list(shape)}')
    return x.sum_to_size(shape) if tuple(x.shape) != tuple(shape) else x


class _MulAdd(torch.autograd.Function):
    """out = c + a * b. Saves a and b (each one's gradient is `dout` times the other)."""

    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b)
        ctx.in_shapes = (a.shape, b.shape, c.shape)
        return torch.addcmul(c, a, b)

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        partials = (lambda: dout * b, lambda: dout * a, lambda: dout)
        return tuple(_unbroadcast(partial(), shape) if wanted else None
                     for partial, shape, wanted in zip(partials, ctx.in_shapes, ctx.needs_input_grad))

#----------------------------------------------------------------------------
