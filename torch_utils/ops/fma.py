"""Fused multiply-add `a * b + c` with broadcasting (official module path `torch_utils.ops.fma`).

Forward is one `torch.addcmul` call; the custom backward reduces each gradient to the shape of its
input, and is itself written in differentiable ops, so higher-order gradients work.
"""

import torch

#----------------------------------------------------------------------------

def fma(a, b, c):
    """Return `a * b + c` (tensors broadcast against each other; result has the broadcast shape)."""
    return _FusedMultiplyAdd.apply(a, b, c)

#----------------------------------------------------------------------------

class _FusedMultiplyAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, c):
        out = torch.addcmul(c, a, b)
        ctx.save_for_backward(a, b)
        ctx.c_shape = c.shape
        return out

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        da = db = dc = None
        if ctx.needs_input_grad[0]:
            da = _unbroadcast(dout * b, a.shape)
        if ctx.needs_input_grad[1]:
            db = _unbroadcast(dout * a, b.shape)
        if ctx.needs_input_grad[2]:
            dc = _unbroadcast(dout, ctx.c_shape)
        return da, db, dc

#----------------------------------------------------------------------------

def _unbroadcast(x, shape):
    """Sum `x` over the dimensions that broadcasting added or stretched, giving a tensor of `shape`."""
    shape = torch.Size(shape)
    lead = x.ndim - len(shape)
    assert lead >= 0, f'cannot reduce shape {list(x.shape)} to {list(shape)}'
    stretched = [i for i in range(x.ndim) if i < lead or (shape[i - lead] == 1 and x.shape[i] != 1)]
    if stretched:
        x = x.sum(dim=stretched, keepdim=True)
    return x.reshape(shape)

#----------------------------------------------------------------------------
