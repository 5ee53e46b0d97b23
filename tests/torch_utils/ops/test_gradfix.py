"""torch_utils.ops.conv2d_gradfix and grid_sample_gradfix: same values and gradients as
torch.nn.functional, weight gradients really skipped inside no_weight_gradients(), double backward
for R1-style penalties, and no warnings."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix


@pytest.fixture
def gradfix_on(monkeypatch):
    monkeypatch.setattr(conv2d_gradfix, 'enabled', True)
    monkeypatch.setattr(conv2d_gradfix, 'weight_gradients_disabled', False)


def _tensors(seed, *shapes):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen).requires_grad_(True) for shape in shapes]


CONV_CASES = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=1, groups=2),
    dict(stride=[1, 2], padding=[2, 1], dilation=2),
]
TRANSPOSE_CASES = [
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=[2, 1], padding=0, groups=2),
]


def _conv_pair(kind, kwargs, seed=0):
    groups = kwargs.get('groups', 1)
    if kind == 'conv2d':
        x, w, b = _tensors(seed, [2, 4, 9, 8], [6, 4 // groups, 3, 3], [6])
        return x, w, b, conv2d_gradfix.conv2d, F.conv2d
    x, w, b = _tensors(seed, [2, 4, 5, 6], [4, 6 // groups, 3, 3], [6])
    return x, w, b, conv2d_gradfix.conv_transpose2d, F.conv_transpose2d


ALL_CASES = [('conv2d', c) for c in CONV_CASES] + [('conv_transpose2d', c) for c in TRANSPOSE_CASES]


@pytest.mark.parametrize('kind,kwargs', ALL_CASES)
@pytest.mark.parametrize('use_custom', [False, True])
def test_values_and_gradients_equal_functional(monkeypatch, kind, kwargs, use_custom):
    monkeypatch.setattr(conv2d_gradfix, 'enabled', use_custom)
    x, w, b, ours, theirs = _conv_pair(kind, kwargs)
    y = ours(x, w, b, **kwargs)
    y_ref = theirs(x, w, b, **kwargs)
    assert torch.equal(y, y_ref)
    assert ('ConvWithOptionalWeightGrad' in type(y.grad_fn).__name__) == use_custom
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, w, b], dy)
    grads_ref = torch.autograd.grad(y_ref, [x, w, b], dy)
    for g, g_ref in zip(grads, grads_ref):
        assert torch.equal(g, g_ref)


@pytest.mark.parametrize('kind,kwargs', ALL_CASES)
def test_no_weight_gradients_skips_weight_grad(gradfix_on, kind, kwargs):
    x, w, b, ours, theirs = _conv_pair(kind, kwargs)
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled
        ours(x, w, b, **kwargs).square().sum().backward()
    assert not conv2d_gradfix.weight_gradients_disabled
    assert w.grad is None, 'weight gradient must be skipped inside no_weight_gradients()'
    assert x.grad is not None and b.grad is not None
    x_ref, w_ref, b_ref = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    theirs(x_ref, w_ref, b_ref, **kwargs).square().sum().backward()
    assert torch.equal(x.grad, x_ref.grad) and torch.equal(b.grad, b_ref.grad)

    # Outside the block the weight gradient is back.
    ours(x, w, b, **kwargs).square().sum().backward()
    assert w.grad is not None and torch.equal(w.grad, w_ref.grad)


def test_flag_restored_after_exception():
    with pytest.raises(RuntimeError):
        with conv2d_gradfix.no_weight_gradients():
            raise RuntimeError('boom')
    assert conv2d_gradfix.weight_gradients_disabled is False


def test_r1_style_double_backward(gradfix_on):
    # Gradient w.r.t. the input under no_weight_gradients(), penalty backpropagated outside it:
    # weights must receive exactly the gradient plain torch gives.
    x, w1, w2 = _tensors(1, [2, 3, 8, 8], [5, 3, 3, 3], [4, 5, 3, 3])

    def run(conv, x, w1, w2):
        h = F.leaky_relu(conv(x, w1, padding=1), 0.2)
        return conv(h, w2, stride=2, padding=1).sum()

    with conv2d_gradfix.no_weight_gradients():
        (g,) = torch.autograd.grad(run(conv2d_gradfix.conv2d, x, w1, w2), [x], create_graph=True)
    g.square().sum().backward()

    x_ref, w1_ref, w2_ref = (t.detach().clone().requires_grad_(True) for t in (x, w1, w2))
    (g_ref,) = torch.autograd.grad(run(F.conv2d, x_ref, w1_ref, w2_ref), [x_ref], create_graph=True)
    g_ref.square().sum().backward()
    torch.testing.assert_close(g, g_ref, rtol=0, atol=0)
    # The weight gradients go through a different (transposed) convolution than plain autograd's,
    # so they agree to float32 rounding only; how much rounding depends on the CPU's kernels.
    torch.testing.assert_close(w1.grad, w1_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w2.grad, w2_ref.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('op,kwargs', [
    (conv2d_gradfix.conv2d, dict(stride=2, padding=1, groups=2)),
    (conv2d_gradfix.conv_transpose2d, dict(stride=[2, 1], padding=1, groups=2)),
])
@pytest.mark.slow
def test_gradgradcheck_wrt_input_without_weight_grads(gradfix_on, op, kwargs):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn([1, 2, 4, 4], dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn([2, 1, 3, 3], dtype=torch.float64, generator=gen, requires_grad=True)
    with conv2d_gradfix.no_weight_gradients():
        assert torch.autograd.gradcheck(lambda t: op(t, w, **kwargs), (x,))
        assert torch.autograd.gradgradcheck(lambda t: op(t, w, **kwargs), (x,))
    assert torch.autograd.gradgradcheck(lambda t, v: op(t, v, **kwargs), (x, w))


def test_no_warnings_on_any_path(monkeypatch):
    x, w, b = _tensors(2, [1, 2, 6, 6], [3, 2, 3, 3], [3])
    grid = torch.rand([1, 4, 4, 2]) * 2 - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for enabled in [False, True]:
            monkeypatch.setattr(conv2d_gradfix, 'enabled', enabled)
            monkeypatch.setattr(grid_sample_gradfix, 'enabled', enabled)
            for _ in range(3):
                with conv2d_gradfix.no_weight_gradients():
                    y = conv2d_gradfix.conv2d(x, w, b, padding=1)
                    y = conv2d_gradfix.conv_transpose2d(y, w, stride=2)
                    y = grid_sample_gradfix.grid_sample(y, grid)
                    torch.autograd.grad(y.sum(), [x], create_graph=True)
    assert [str(c.message) for c in caught] == []


def test_helpers():
    assert conv2d_gradfix._tuple_of_ints(3, 2) == (3, 3)
    assert conv2d_gradfix._tuple_of_ints([1, 2], 2) == (1, 2)
    with pytest.raises(ValueError, match='2 ints'):
        conv2d_gradfix._tuple_of_ints([1, 2, 3], 2)
    op = conv2d_gradfix._conv2d_gradfix(transpose=False, weight_shape=(3, 2, 3, 3), stride=1, padding=[1, 1],
                                        output_padding=0, dilation=1, groups=1)
    assert op is conv2d_gradfix._conv2d_gradfix(False, torch.Size([3, 2, 3, 3]), (1, 1), 1, 0, [1, 1], 1)
    assert not conv2d_gradfix._should_use_custom_op(torch.zeros([1, 1, 2, 2])) # disabled by default


def test_custom_op_rejects_mismatched_weight():
    op = conv2d_gradfix._conv2d_gradfix(False, (3, 2, 3, 3), 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match='weight shape'):
        op.apply(torch.zeros([1, 2, 5, 5]), torch.zeros([3, 2, 1, 1]), None)

#----------------------------------------------------------------------------
# grid_sample_gradfix.

def _grid_inputs(dtype=torch.float32):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn([2, 3, 5, 6], generator=gen, dtype=dtype)
    grid = torch.rand([2, 4, 3, 2], generator=gen, dtype=dtype) * 2.4 - 1.2 # some samples fall outside
    return x, grid


@pytest.mark.parametrize('enabled', [False, True])
def test_grid_sample_equals_functional(monkeypatch, enabled):
    monkeypatch.setattr(grid_sample_gradfix, 'enabled', enabled)
    x, grid = _grid_inputs()
    y = grid_sample_gradfix.grid_sample(x, grid)
    want = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    assert y.shape == (2, 3, 4, 3) and torch.equal(y, want)
    far = torch.full([2, 1, 1, 2], 5.0)
    assert torch.equal(grid_sample_gradfix.grid_sample(x, far), torch.zeros([2, 3, 1, 1]))


def test_grid_sample_gradgradcheck():
    x, grid = _grid_inputs(torch.float64)
    x = x[:1, :2].requires_grad_(True)
    grid = grid[:1].requires_grad_(True)
    assert torch.autograd.gradcheck(grid_sample_gradfix.grid_sample, (x, grid))
    assert torch.autograd.gradgradcheck(lambda t: grid_sample_gradfix.grid_sample(t, grid.detach()), (x,))

#----------------------------------------------------------------------------
# The custom ops' own higher-order gradients (conv_data / conv_weight products).

def _penalty_grads(conv, x, w, kwargs, layout):
    """R1-style: d/d(x, w) of |d sum(lrelu(conv(x, w)) * t) / dx|^2, with a fixed random t."""
    x = x.detach().to(memory_format=layout).requires_grad_(True)
    w = w.detach().requires_grad_(True)
    y = torch.nn.functional.leaky_relu(conv(x, w, **kwargs), 0.2)
    t = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (gx,) = torch.autograd.grad((y * t).sum(), [x], create_graph=True)
    gx_value = gx.detach().clone()
    gx.square().sum().backward()
    return gx_value, x.grad, w.grad


@pytest.mark.parametrize('kind,kwargs', ALL_CASES)
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_second_order_matches_torch(gradfix_on, kind, kwargs, layout):
    x, w, _b, ours, theirs = _conv_pair(kind, kwargs, seed=7)
    x, w = x.double(), w.double()
    got = _penalty_grads(ours, x, w, kwargs, layout)
    want = _penalty_grads(theirs, x, w, kwargs, layout)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)        # first order: torch's own kernel
    for g, g_ref in zip(got[1:], want[1:]):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)


def test_float32_second_order_differs_by_rounding_only(gradfix_on):
    x, w, _b, ours, theirs = _conv_pair('conv2d', dict(stride=1, padding=1), seed=8)
    got = _penalty_grads(ours, x, w, dict(padding=1), torch.channels_last)
    want = _penalty_grads(theirs, x, w, dict(padding=1), torch.channels_last)
    assert torch.equal(got[0], want[0])
    for g, g_ref in zip(got[1:], want[1:]):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5 * float(g_ref.abs().max()))


class _CountProducts:
    """Counts the weight-gradient and data-gradient products the custom ops compute."""

    def __init__(self, monkeypatch):
        self.calls = {'weight': 0, 'data': 0}
        for name in self.calls:
            original = getattr(conv2d_gradfix._ConvSpec, name)

            def counted(spec, *args, _name=name, _original=original):
                self.calls[_name] += 1
                return _original(spec, *args)
            monkeypatch.setattr(conv2d_gradfix._ConvSpec, name, counted)


def test_input_only_gradient_computes_no_weight_gradient(gradfix_on, monkeypatch):
    # torch.autograd.grad(..., inputs=[x]) must not pay for the weight gradient, even though w
    # requires grad and no_weight_gradients() is not used.
    counter = _CountProducts(monkeypatch)
    x, w, b, ours, _theirs = _conv_pair('conv2d', dict(padding=1))
    (gx,) = torch.autograd.grad(ours(x, w, b, padding=1).square().sum(), [x])
    assert counter.calls == {'weight': 0, 'data': 1} and gx.shape == x.shape
    ours(x, w, b, padding=1).square().sum().backward()
    assert counter.calls == {'weight': 1, 'data': 2} and w.grad is not None


def test_constant_kernel_gets_no_gradient_in_double_backward(gradfix_on, monkeypatch):
    # upfirdn2d's FIR taps never require grad: torch's own double backward still computes their
    # gradient group by group; the custom ops compute no weight product at all.
    counter = _CountProducts(monkeypatch)
    x = torch.randn([2, 8, 10, 10], requires_grad=True)
    taps = torch.rand([8, 1, 4, 4])
    y = conv2d_gradfix.conv2d(x, taps, padding=1, groups=8)
    (gx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
    gx.square().sum().backward()
    assert counter.calls['weight'] == 0 and x.grad is not None


def test_channels_last_input_keeps_weight_gradients_of_every_order(gradfix_on):
    x, w = _tensors(9, [2, 4, 8, 8], [6, 4, 3, 3])
    x_cl = x.detach().to(memory_format=torch.channels_last).requires_grad_(True)
    y = conv2d_gradfix.conv2d(x_cl, w, padding=1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    (gx,) = torch.autograd.grad(y.square().sum(), [x_cl], create_graph=True)
    gx.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0, 'the second-order weight gradient must arrive'
    w_ref = w.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    (gx_ref,) = torch.autograd.grad(F.conv2d(x_ref, w_ref, padding=1).square().sum(), [x_ref], create_graph=True)
    gx_ref.sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-4, atol=1e-4)


def test_plain_call_without_a_graph(gradfix_on):
    x, w, b = (t.detach() for t in _tensors(10, [1, 2, 5, 5], [3, 2, 3, 3], [3]))
    assert conv2d_gradfix.conv2d(x, w, b).grad_fn is None
    with torch.no_grad():
        assert conv2d_gradfix.conv2d(x.requires_grad_(True), w, b).grad_fn is None
    assert conv2d_gradfix.higher_order_is_cheap()


def test_second_order_under_bf16_autocast_reaches_the_weights(gradfix_on):
    # The ops cast x and w to the autocast dtype outside themselves, so a penalty's second-order
    # weight gradient still arrives at the float32 weight (about as fp32 computes it).
    x, w = _tensors(11, [2, 4, 8, 8], [5, 4, 3, 3])
    grads = {}
    for name, ctx in (('fp32', torch.autocast('cpu', enabled=False)), ('bf16', torch.autocast('cpu', torch.bfloat16))):
        w.grad = None
        with ctx:
            y = conv2d_gradfix.conv2d(x, w, padding=1)
        (gx,) = torch.autograd.grad(y.float().square().sum(), [x], create_graph=True)
        gx.square().sum().backward()
        grads[name] = w.grad.clone()
    assert grads['bf16'].dtype == torch.float32 and grads['bf16'].abs().sum() > 0
    torch.testing.assert_close(grads['bf16'], grads['fp32'], rtol=0.05, atol=0.05 * float(grads['fp32'].abs().max()))
