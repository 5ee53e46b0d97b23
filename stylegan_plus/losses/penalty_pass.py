"""A gradient penalty's D pass without the backward on zeros that torch's double backward adds.

The penalty differentiates grad_x D(x) (built with create_graph=True) w.r.t. D's weights. Two
ops of a conv/leaky-ReLU D record, in that first-order graph, an edge back into D's forward graph
whose derivative is zero everywhere: the leaky ReLU's slope read from its input (torch declares
that derivative `zeros_like`), and a convolution's data gradient, which depends on the weight
and the output gradient but not on the input it saved. When the penalty is backpropagated, torch
sends zero tensors along those edges, and every layer of the forward graph runs a full backward
(weight and data gradients) on zeros: on DCGAN's D one D backward of the four in the D step, all
of it adding exact zeros. The two Functions here compute the same values with the same kernels
(`leaky_relu`, `leaky_relu_backward`, `convolution_backward`), but give those first-order results
no edge to the saved input, so the zero paths do not exist and every non-zero term, hence every
gradient, stays bit-for-bit what it was (tests/stylegan_plus/losses/test_loss_dist.py compares
one iteration with the earlier code). Ops that do carry second-order terms (StyleGAN2's
minibatch stddev, ...) are untouched. StyleGAN2's layers mostly avoid the zeros already
(`bias_act`'s fused path, `conv2d_gradfix` while the loop enables it); DCGAN's and the MLP's
torch.nn layers do not.

Used by Dist-GAN's penalty (dist.py). Needs `torch.autograd.graph.get_gradient_edge` (torch >= 2.2);
on an older torch `without_zero_backward` changes nothing and the pass runs as plain torch.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from torch_utils.ops import conv2d_gradfix


def without_zero_backward(enabled=True):
    """A context in which D's F.conv2d / F.leaky_relu calls skip the zero-derivative edges above.

    enabled=False, or a torch without `get_gradient_edge`, gives a context that changes nothing.
    """
    if not enabled or not hasattr(torch.autograd.graph, 'get_gradient_edge'):
        return contextlib.nullcontext()
    return _PenaltyPassMode()


class _ConstantSlopeLeakyReLU(torch.autograd.Function):
    """F.leaky_relu(x, slope) whose backward treats the slope pattern sign(x) as a constant.

    x: any shape and floating dtype; returns what F.leaky_relu returns. Values, first-order
    gradients and the derivative of the first-order gradient w.r.t. the upstream gradient are
    torch's (same kernels); only the everywhere-zero term w.r.t. x is absent.
    """

    @staticmethod
    def forward(ctx, x, negative_slope):
        ctx.negative_slope = negative_slope
        ctx.save_for_backward(x)
        return F.leaky_relu(x, negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # torch's LeakyReluBackward0 kernel; x detached: the result's derivative in x is zero.
        return torch.ops.aten.leaky_relu_backward(grad, x.detach(), ctx.negative_slope, False), None


class _InputFreeDataGradConv2d(torch.autograd.Function):
    """F.conv2d(x, w, b, stride, padding, dilation, groups) (x [N, C_in, H, W], w [C_out, C_in / groups,
    kh, kw], b [C_out] or None) whose data gradient has no graph edge to x.

    Backward is one `aten.convolution_backward` call with the mask of the gradients the running
    pass needs, the call torch's ConvolutionBackward0 makes; x is passed detached unless the weight
    gradient (which does depend on x) is wanted.
    """

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        ctx.conf = (list(stride), list(padding), list(dilation), groups)
        ctx.bias_sizes = None if b is None else [w.shape[0]]
        ctx.edges = conv2d_gradfix.gradient_edges(x, w, b)
        ctx.save_for_backward(x, w)
        return F.conv2d(x, w, b, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        # Only the gradients the running pass uses, as torch's own convolution does.
        mask = [conv2d_gradfix.gradient_wanted(edge, needed) for edge, needed in zip(ctx.edges, ctx.needs_input_grad)]
        if not any(mask):
            return (None,) * 7
        stride, padding, dilation, groups = ctx.conf
        grads = torch.ops.aten.convolution_backward(grad, x if mask[1] else x.detach(), w, ctx.bias_sizes, stride,
                                                    padding, dilation, False, [0, 0], groups, mask)
        return (*(g if m else None for g, m in zip(grads, mask)), None, None, None, None)


def _pair(value):
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def _conv2d_call(args, kwargs):
    """F.conv2d's arguments as (x, w, b, stride, padding, dilation, groups), or None where the
    Function does not apply (string padding, other argument forms, autocast)."""
    names = ('input', 'weight', 'bias', 'stride', 'padding', 'dilation', 'groups')
    values = dict(zip(names, (None, None, None, 1, 0, 1, 1)))
    if len(args) > len(names) or set(kwargs) - set(names):
        return None
    values.update(zip(names, args))
    values.update(kwargs)
    x, w = values['input'], values['weight']
    if (not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or x.ndim != 4
            or isinstance(values['padding'], str)):
        return None
    if torch.is_autocast_enabled(x.device.type):    # (--precision=bf16) autocast casts inside the call
        return None                                 # and the Function would save the uncast tensors
    return (x, w, values['bias'], _pair(values['stride']), _pair(values['padding']), _pair(values['dilation']),
            int(values['groups']))


class _PenaltyPassMode(TorchFunctionMode):
    """Inside: F.leaky_relu (not in place) and F.conv2d calls that autograd records use the two
    Functions above; every other call runs unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if torch.is_grad_enabled():
            if func is F.leaky_relu and len(args) == 1 and not kwargs.get('inplace', False):
                x = args[0]
                if isinstance(x, torch.Tensor) and x.requires_grad:
                    return _ConstantSlopeLeakyReLU.apply(x, kwargs.get('negative_slope', 0.01))
            elif func is F.conv2d:
                call = _conv2d_call(args, kwargs)
                if call is not None and any(isinstance(t, torch.Tensor) and t.requires_grad for t in call[:3]):
                    return _InputFreeDataGradConv2d.apply(*call)
        return func(*args, **kwargs)
