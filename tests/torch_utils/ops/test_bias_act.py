"""torch_utils.ops.bias_act: reference values against hand-written formulas, gradients of 1st and
2nd order, argument checks, and (with a GPU) the CUDA kernel against the reference.

The kernel math itself can also be checked without a GPU: with BIAS_ACT_TEST_CPU_KERNEL=1 the
plugin's C++ file is compiled for the CPU (about a minute) and the kernel's autograd path is run on
CPU tensors against the reference, including gradcheck/gradgradcheck in float64.
"""

import math
import os

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import custom_ops
from torch_utils.ops import bias_act as ba

ALL_ACTS = list(ba.activation_funcs)
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

def expected_activation(act, p, alpha):
    """The activations written from their formulas with elementary ops only."""
    sig = 1 / (1 + torch.exp(-p))
    return {
        'linear':   p,
        'relu':     torch.where(p > 0, p, torch.zeros_like(p)),
        'lrelu':    torch.where(p > 0, p, alpha * p),
        'tanh':     (torch.exp(2 * p) - 1) / (torch.exp(2 * p) + 1),
        'sigmoid':  sig,
        'elu':      torch.where(p > 0, p, torch.exp(p) - 1),
        'selu':     SELU_SCALE * torch.where(p > 0, p, SELU_ALPHA * (torch.exp(p) - 1)),
        'softplus': torch.log(1 + torch.exp(p)),
        'swish':    p * sig,
    }[act]

def expected_bias_act(x, b, dim, act, alpha, gain, clamp):
    spec = ba.activation_funcs[act]
    alpha = spec.def_alpha if alpha is None else alpha
    gain = spec.def_gain if gain is None else gain
    p = x if b is None else x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    y = expected_activation(act, p, alpha) * gain
    return y if clamp is None else torch.minimum(torch.maximum(y, torch.full_like(y, -clamp)), torch.full_like(y, clamp))

def make_inputs(shape=(2, 3, 4, 5), dim=1, dtype=torch.float64, seed=0, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype) * scale
    b = torch.randn([shape[dim]], generator=gen, dtype=dtype)
    return x, b

#----------------------------------------------------------------------------
# The activation table is part of the public contract.

def test_activation_table_matches_contract():
    table = {  # name: (def_alpha, def_gain, cuda_idx, ref, has_2nd_grad)
        'linear': (0, 1, 1, '', False), 'relu': (0, np.sqrt(2), 2, 'y', False),
        'lrelu': (0.2, np.sqrt(2), 3, 'y', False), 'tanh': (0, 1, 4, 'y', True), 'sigmoid': (0, 1, 5, 'y', True),
        'elu': (0, 1, 6, 'y', True), 'selu': (0, 1, 7, 'y', True), 'softplus': (0, 1, 8, 'y', True),
        'swish': (0, np.sqrt(2), 9, 'x', True),
    }
    assert list(ba.activation_funcs) == list(table)
    for name, (def_alpha, def_gain, cuda_idx, ref, has_2nd_grad) in table.items():
        spec = ba.activation_funcs[name]
        assert isinstance(spec, dnnlib.EasyDict)
        assert (spec.def_alpha, spec.def_gain, spec.cuda_idx, spec.ref, spec.has_2nd_grad) == \
            (def_alpha, def_gain, cuda_idx, ref, has_2nd_grad), name
        assert callable(spec.func)
    assert isinstance(ba.activation_funcs['lrelu'].def_gain, np.float64)

def test_module_state_names_exist():
    assert ba._null_tensor.numel() == 0
    assert isinstance(ba._inited, bool)
    assert callable(ba._init) and callable(ba._bias_act_ref) and callable(ba._bias_act_cuda)

#----------------------------------------------------------------------------
# Reference values.

@pytest.mark.parametrize('act', ALL_ACTS)
def test_reference_defaults_match_formulas(act):
    x, b = make_inputs()
    got = ba.bias_act(x, b, act=act)
    assert got.shape == x.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, expected_bias_act(x, b, 1, act, None, None, None), rtol=1e-10, atol=1e-10)

@pytest.mark.parametrize('act', ALL_ACTS)
@pytest.mark.parametrize('alpha,gain,clamp', [(0.1, 1.0, None), (0.3, 0.5, 1.0), (None, 3.0, 0.25), (0.0, -2.0, 2.0)])
def test_reference_alpha_gain_clamp(act, alpha, gain, clamp):
    x, b = make_inputs(seed=1)
    got = ba.bias_act(x, b, act=act, alpha=alpha, gain=gain, clamp=clamp)
    torch.testing.assert_close(got, expected_bias_act(x, b, 1, act, alpha, gain, clamp), rtol=1e-10, atol=1e-10)
    if clamp is not None:
        assert got.abs().max() <= clamp

@pytest.mark.parametrize('dim', [0, 2, 3, -1])
def test_reference_other_dims(dim):
    x, b = make_inputs(dim=dim % 4, seed=2)
    got = ba.bias_act(x, b, dim=dim, act='lrelu', gain=1.5)
    torch.testing.assert_close(got, expected_bias_act(x, b, dim % 4, 'lrelu', None, 1.5, None))

def test_reference_without_bias_and_1d():
    x, _ = make_inputs(seed=3)
    torch.testing.assert_close(ba.bias_act(x, None, act='tanh', clamp=0.5),
                               expected_bias_act(x, None, 1, 'tanh', None, None, 0.5))
    v = torch.linspace(-2, 2, 7, dtype=torch.float64)
    torch.testing.assert_close(ba.bias_act(v, v.flip(0), dim=0, act='relu', gain=1), torch.relu(v + v.flip(0)))

def test_default_linear_is_identity_and_ref_impl_equals_cuda_impl_on_cpu():
    x, b = make_inputs(seed=4)
    assert torch.equal(ba.bias_act(x), x)
    for act in ALL_ACTS:
        assert torch.equal(ba.bias_act(x, b, act=act, impl='ref'), ba.bias_act(x, b, act=act, impl='cuda'))

def test_order_is_bias_act_gain_clamp():
    x = torch.tensor([[-3.0, 0.5, 4.0]], dtype=torch.float64).T.reshape(1, 1, 3)   # [1, 1, 3]
    b = torch.tensor([1.0], dtype=torch.float64)
    got = ba.bias_act(x, b, act='relu', gain=2.0, clamp=6.0)   # relu(x+1)*2 = [0, 3, 10] -> clamp 6
    assert got.flatten().tolist() == [0.0, 3.0, 6.0]

def test_half_precision_reference_keeps_dtype():
    x, b = make_inputs(dtype=torch.float32, seed=5)
    got = ba.bias_act(x.half(), b.half(), act='lrelu', clamp=2.0)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), ba.bias_act(x, b, act='lrelu', clamp=2.0), atol=1e-2, rtol=1e-2)

#----------------------------------------------------------------------------
# Gradients of the reference path.

@pytest.mark.parametrize('act', ALL_ACTS)
@pytest.mark.parametrize('clamp', [None, 0.8])
def test_reference_gradcheck_and_gradgradcheck(act, clamp):
    x, b = make_inputs(shape=(2, 3, 2), seed=6, scale=1.0)
    x.requires_grad_(True)
    b.requires_grad_(True)
    fn = lambda x, b: ba.bias_act(x, b, act=act, alpha=0.3, gain=1.3, clamp=clamp)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))

#----------------------------------------------------------------------------
# Argument checks and the CPU path never touching the plugin.

@pytest.mark.parametrize('kwargs,match', [
    (dict(act='gelu'), 'gelu'), (dict(dim=4), 'dim=4'), (dict(impl='triton'), 'triton'), (dict(clamp=-1.0), 'clamp'),
])
def test_bad_arguments_are_named(kwargs, match):
    x, b = make_inputs()
    with pytest.raises(ValueError, match=match):
        ba.bias_act(x, b, **kwargs)

def test_bias_of_wrong_length_is_rejected():
    x, _ = make_inputs()
    with pytest.raises(ValueError, match='length'):
        ba.bias_act(x, torch.zeros(4, dtype=x.dtype))

def test_cpu_tensors_never_build_the_plugin(monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError('get_plugin must not be called for CPU tensors')
    monkeypatch.setattr(custom_ops, 'get_plugin', no_build)
    monkeypatch.setattr(ba, '_inited', False)
    monkeypatch.setattr(ba, '_plugin', None)
    x, b = make_inputs()
    for act in ALL_ACTS:
        ba.bias_act(x, b, act=act, impl='cuda').sum()
    assert ba._inited is False and ba._plugin is None

#----------------------------------------------------------------------------
# The kernel's autograd path, run with a CPU build of bias_act.cpp (opt-in, compiles C++).

@pytest.fixture(scope='module')
def cpu_kernel_plugin(tmp_path_factory):
    if os.environ.get('BIAS_ACT_TEST_CPU_KERNEL') != '1':
        pytest.skip('set BIAS_ACT_TEST_CPU_KERNEL=1 to compile bias_act.cpp for the CPU and test the kernel math')
    src_dir = os.path.dirname(ba.__file__)
    return torch.utils.cpp_extension.load(
        name='bias_act_cpu_test_plugin', sources=[os.path.join(src_dir, 'bias_act.cpp')],
        extra_cflags=['-DBIAS_ACT_CPU_ONLY', '-O2'], build_directory=str(tmp_path_factory.mktemp('bias_act_cpu')))

@pytest.mark.parametrize('act', ALL_ACTS)
@pytest.mark.parametrize('clamp', [None, 0.7])
@pytest.mark.parametrize('dim,channels_last', [(1, False), (1, True), (2, False)])
def test_kernel_math_on_cpu(cpu_kernel_plugin, monkeypatch, act, clamp, dim, channels_last):
    monkeypatch.setattr(ba, '_plugin', cpu_kernel_plugin)
    x, b = make_inputs(shape=(2, 3, 4, 2), dim=dim, seed=7, scale=1.5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    b.requires_grad_(True)
    kernel = lambda x, b: ba._bias_act_cuda(dim=dim, act=act, alpha=0.3, gain=1.7, clamp=clamp).apply(x, b)
    ref = lambda x, b: ba._bias_act_ref(x, b, dim=dim, act=act, alpha=0.3, gain=1.7, clamp=clamp)
    torch.testing.assert_close(kernel(x, b), ref(x, b), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(kernel, (x, b))
    assert torch.autograd.gradgradcheck(kernel, (x, b))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xl, bl = x.detach().to(dtype), b.detach().to(dtype)
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(kernel(xl, bl).double(), ref(x, b).detach(), rtol=tol, atol=tol)

#----------------------------------------------------------------------------
# The CUDA kernel against the reference (needs a GPU).

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')

def _grads(fn, x, b, dy, second_order):
    """Output, 1st-order grads and (where the activation has them) grads of a function of the grads."""
    y = fn(x, b)
    gx, gb = torch.autograd.grad(y, (x, b), dy, create_graph=second_order)
    if not second_order:
        return dict(y=y, dx=gx, db=gb)
    ggx, ggb = torch.autograd.grad((gx * gx).sum() + (gb * gb).sum(), (x, b))
    return dict(y=y, dx=gx, db=gb, ddx=ggx, ddb=ggb)

@cuda_only
@pytest.mark.cuda
@pytest.mark.parametrize('act', ALL_ACTS)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('clamp', [None, 1.0])
def test_cuda_kernel_matches_reference(act, dtype, clamp):
    assert ba._init(), 'the bias_act plugin did not build'
    x, b = make_inputs(shape=(4, 8, 6, 6), dtype=dtype, seed=8, scale=1.0)
    if clamp is not None:
        # Outputs landing on the clamp bound get a gradient in the reference but not in the kernel
        # (which only sees the clamped output); move such elements to a pre-activation of -0.25,
        # where every activation is smooth and well inside the bound.
        near = (ba.bias_act(x.double(), b.double(), act=act).abs() - clamp).abs() < 0.05
        x = torch.where(near, -0.25 - b.reshape(1, -1, 1, 1).expand_as(x), x)
    x, b = x.cuda().requires_grad_(True), b.cuda().requires_grad_(True)
    dy = torch.randn_like(x)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    second = ba.activation_funcs[act].has_2nd_grad
    got = _grads(lambda x, b: ba.bias_act(x, b, act=act, clamp=clamp, impl='cuda'), x, b, dy, second)
    want = _grads(lambda x, b: ba.bias_act(x, b, act=act, clamp=clamp, impl='ref'), x, b, dy, second)
    assert got['y'].dtype == dtype
    for name, w in want.items():
        torch.testing.assert_close(got[name].float(), w.float(), rtol=tol, atol=tol * max(1.0, w.abs().max().item()),
                                   msg=lambda m: f'{act} {name}: {m}')

@cuda_only
@pytest.mark.cuda
@pytest.mark.parametrize('act', ['lrelu', 'linear'])
def test_cuda_grad_of_grad_reaches_dy(act):
    # R1-style penalties differentiate dx w.r.t. the upstream gradient even where f'' = 0.
    assert ba._init()
    x, b = make_inputs(shape=(2, 4, 3, 3), dtype=torch.float32, seed=11)
    x, b = x.cuda().requires_grad_(True), b.cuda()
    dy = torch.randn_like(x).requires_grad_(True)
    grads = []
    for impl in ('cuda', 'ref'):
        gx, = torch.autograd.grad(ba.bias_act(x, b, act=act, clamp=1.0, impl=impl), x, dy, create_graph=True)
        grads.append(torch.autograd.grad(gx.square().sum(), dy)[0])
    torch.testing.assert_close(grads[0], grads[1])

@cuda_only
@pytest.mark.cuda
def test_cuda_kernel_channels_last_and_dim():
    assert ba._init()
    x, b = make_inputs(shape=(2, 5, 4, 3), dtype=torch.float32, seed=9)
    x = x.cuda().contiguous(memory_format=torch.channels_last)
    got = ba.bias_act(x, b.cuda(), act='lrelu', clamp=2.0)
    torch.testing.assert_close(got, ba.bias_act(x, b.cuda(), act='lrelu', clamp=2.0, impl='ref'))
    x2, b2 = make_inputs(shape=(2, 5, 4, 3), dim=3, dtype=torch.float32, seed=10)
    torch.testing.assert_close(ba.bias_act(x2.cuda(), b2.cuda(), dim=3, act='swish'),
                               ba.bias_act(x2.cuda(), b2.cuda(), dim=3, act='swish', impl='ref'), rtol=1e-4, atol=1e-4)

#----------------------------------------------------------------------------
# The fused path of the piecewise-linear activations (CPU, default impl).

FUSED_SETTINGS = [
    dict(act='lrelu'), dict(act='lrelu', alpha=0.3, gain=0.7), dict(act='relu', gain=2.0),
    dict(act='linear', gain=0.5), dict(act='lrelu', clamp=0.9), dict(act='relu', dim=2),
]


def _fused_and_ref(x, b, settings, dy):
    """(y, dx, db) through bias_act's default path and through the reference composition."""
    results = []
    for fn in (ba.bias_act, ba._bias_act_ref):
        xi, bi = x.detach().requires_grad_(True), None if b is None else b.detach().requires_grad_(True)
        y = fn(xi, bi, **settings)
        grads = torch.autograd.grad(y, [xi] + ([bi] if bi is not None else []), dy)
        results.append((y.detach(),) + tuple(grads))
    return results


@pytest.mark.parametrize('settings', FUSED_SETTINGS)
@pytest.mark.parametrize('layout', ['nchw', 'nhwc', 'nobias'])
def test_fused_path_is_bitwise_the_reference(settings, layout):
    dim = settings.get('dim', 1)
    x, b = make_inputs(shape=(3, 5, 4, 6), dim=dim, dtype=torch.float32, seed=11)
    if layout == 'nhwc':
        x = x.contiguous(memory_format=torch.channels_last)
    b = None if layout == 'nobias' else b
    dy = torch.randn_like(x)
    (y, *grads), (y_ref, *grads_ref) = _fused_and_ref(x, b, settings, dy)
    assert ba._fused_accepts(x, b, ba._settings(dim, settings['act'], settings.get('alpha'), settings.get('gain'),
                                                settings.get('clamp')))
    assert torch.equal(y, y_ref) and y.is_contiguous(memory_format=torch.channels_last) == (layout == 'nhwc')
    for g, g_ref in zip(grads, grads_ref):
        assert torch.equal(g, g_ref)


def test_fused_double_backward_is_linear_in_dy_only():
    # The second derivative of lrelu is zero: the gradient of dx w.r.t. x and b is zero, and the
    # fused path builds no graph back into the forward pass for it.
    x, b = make_inputs(seed=12)
    x.requires_grad_(True)
    b.requires_grad_(True)
    y = ba.bias_act(x, b, act='lrelu', gain=1.3)
    dy = torch.randn_like(y).requires_grad_(True)
    dx, db = torch.autograd.grad(y, [x, b], dy, create_graph=True)
    ddx = torch.randn_like(dx)
    (ddy,) = torch.autograd.grad(dx, [dy], ddx, retain_graph=True)
    torch.testing.assert_close(ddy, torch.where(y > 0, ddx, 0.2 * ddx) * 1.3)
    assert torch.autograd.grad(dx, [x, b], ddx, allow_unused=True) == (None, None)
    dx_plain, = torch.autograd.grad(ba.bias_act(x, b, act='lrelu'), [x], torch.ones_like(x), create_graph=True)
    assert not dx_plain.requires_grad


def test_paths_outside_the_fused_one_use_the_reference():
    x, b = make_inputs(seed=13)
    negative = ba._settings(1, 'lrelu', None, -1.0, None)
    assert not ba._fused_accepts(x, b, negative)              # y's sign no longer tells the slope
    assert not ba._fused_accepts(x, b.float(), ba._settings(1, 'relu', None, None, None))  # type promotion
    assert not ba._fused_accepts(x, None, ba._settings(1, 'linear', None, 1, None))      # the identity
    assert not ba._fused_accepts(x, b, ba._settings(1, 'tanh', None, None, None))
    torch.testing.assert_close(ba.bias_act(x, b, act='lrelu', gain=-1.0),
                               expected_bias_act(x, b, 1, 'lrelu', None, -1.0, None))
    assert ba.bias_act(x, None) is x
