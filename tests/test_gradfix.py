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
    torch.testing.assert_close(w1.grad, w1_ref.grad)
    torch.testing.assert_close(w2.grad, w2_ref.grad)


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
