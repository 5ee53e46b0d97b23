"""torch_utils.ops.fma: values and gradients of a*b + c under broadcasting."""

import pytest
import torch

from torch_utils.ops import fma as fma_mod

SHAPES = [  # (a, b, c)
    ([2, 3], [2, 3], [2, 3]),
    ([2, 1, 4], [3, 1], [4]),
    ([5], [2, 5], [1]),
    ([], [3, 2], [3, 1]),
]

def _inputs(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]

@pytest.mark.parametrize('shapes', SHAPES)
def test_values_match_multiply_add(shapes):
    a, b, c = _inputs(shapes)
    out = fma_mod.fma(a, b, c)
    want = a * b + c
    assert out.shape == want.shape
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)

@pytest.mark.parametrize('shapes', SHAPES)
def test_gradients_have_input_shapes_and_match_autograd(shapes):
    a, b, c = _inputs(shapes, seed=1)
    dout = torch.randn(torch.broadcast_shapes(*shapes), dtype=torch.float64)
    got = torch.autograd.grad(fma_mod.fma(a, b, c), (a, b, c), dout)
    want = torch.autograd.grad(a * b + c, (a, b, c), dout)
    for g, w, s in zip(got, want, shapes):
        assert list(g.shape) == s
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)

@pytest.mark.parametrize('shapes', SHAPES)
def test_gradcheck_and_gradgradcheck(shapes):
    inputs = _inputs(shapes, seed=2)
    assert torch.autograd.gradcheck(fma_mod.fma, inputs)
    assert torch.autograd.gradgradcheck(fma_mod.fma, inputs)

def test_only_requested_gradients_are_computed():
    a, b, c = _inputs(SHAPES[1], seed=3)
    b = b.detach()
    ga, gc = torch.autograd.grad(fma_mod.fma(a, b, c).sum(), (a, c))
    torch.testing.assert_close(ga, (torch.ones(2, 3, 4, dtype=torch.float64) * b).sum(dim=1, keepdim=True))
    assert torch.equal(gc, torch.full([4], 6.0, dtype=torch.float64))

def test_unbroadcast_reduces_added_and_stretched_dims():
    x = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
    assert torch.equal(fma_mod._unbroadcast(x, [3, 4]), x.sum(0))
    assert torch.equal(fma_mod._unbroadcast(x, [3, 1]), x.sum(0).sum(1, keepdim=True))
    assert torch.equal(fma_mod._unbroadcast(x, [1, 1, 1]), x.sum().reshape(1, 1, 1))
    assert fma_mod._unbroadcast(x, []).shape == torch.Size([])
    assert torch.equal(fma_mod._unbroadcast(x, x.shape), x)
