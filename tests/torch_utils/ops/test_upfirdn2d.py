"""torch_utils.ops.upfirdn2d: reference path against an independent NumPy/SciPy model, filter
setup, the wrappers' padding formulas, gradients, plugin fallback, and (GPU only) the CUDA kernel."""

import itertools
import warnings

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils.ops import upfirdn2d

#----------------------------------------------------------------------------
# Independent model: explicit zero insertion, pad/crop, scipy 2-D convolution, strided slicing.

def numpy_upfirdn2d(x, taps, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip=False, gain=1.0):
    """x: [N, C, H, W] array; taps: 2-D array (a separable filter passed as its outer product)."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pad
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    grown = np.zeros([n, c, h * upy, w * upx])
    grown[:, :, ::upy, ::upx] = x
    # Pad generously on every side, then cut the window the padding spec describes.
    margin = max(abs(p) for p in pad) + 1
    big = np.pad(grown, [(0, 0), (0, 0), (margin, margin), (margin, margin)])
    big = big[:, :, margin - py0 : margin + h * upy + py1, margin - px0 : margin + w * upx + px1]
    op = scipy.signal.correlate2d if flip else scipy.signal.convolve2d
    kernel = np.asarray(taps, dtype=np.float64) * gain
    out = np.stack([np.stack([op(plane, kernel, mode='valid') for plane in image]) for image in big])
    return out[:, :, ::downy, ::downx]


def as_2d(f):
    f = f.double().numpy()
    return np.outer(f, f) if f.ndim == 1 else f


def run_ref(x, f, **kwargs):
    return upfirdn2d.upfirdn2d(x, f, impl='ref', **kwargs)


@pytest.fixture(scope='module')
def image():
    return torch.randn([2, 3, 7, 10], dtype=torch.float64, generator=torch.Generator().manual_seed(1))


FILTER_2D = torch.tensor([[0.3, -1.0, 2.0, 0.5], [1.5, 0.2, -0.7, 1.0], [0.1, 0.9, 0.4, -0.3]]) # 3 x 4, asymmetric
FILTER_1D = torch.tensor([0.2, -0.5, 1.0, 0.7, 0.1])                                              # 5 taps, asymmetric

#----------------------------------------------------------------------------
# Reference implementation vs the model.

PADDINGS = [0, 2, [2, -1], [1, -2, 3, 0], [-1, 2, 0, -1]]


def expand_padding(padding):
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


@pytest.mark.slow
@pytest.mark.parametrize('up,down', list(itertools.product([1, 2, 4], [1, 2, 4])))
def test_ref_matches_model_all_combinations(image, up, down):
    for padding, flip, f in itertools.product(PADDINGS, [False, True], [FILTER_2D, FILTER_1D]):
        for gain in [1, 2.5]:
            got = run_ref(image, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
            want = numpy_upfirdn2d(image, as_2d(f), up=(up, up), down=(down, down), pad=expand_padding(padding),
                                   flip=flip, gain=gain)
            assert got.shape == want.shape, (padding, flip, f.ndim)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6,
                                       err_msg=f'padding={padding} flip={flip} ndim={f.ndim} gain={gain}')


@pytest.mark.parametrize('up,down,padding', [
    ([2, 1], [1, 3], [1, 2, -1, 0]),
    ([1, 4], [2, 1], [0, 3, 2, 1]),
    ([3, 2], [2, 3], [-1, 1, 2, -2]),
])
@pytest.mark.parametrize('f', [FILTER_2D, FILTER_1D], ids=['2d', '1d'])
def test_ref_anisotropic_scaling(image, up, down, padding, f):
    got = run_ref(image, f, up=up, down=down, padding=padding, gain=1.5)
    want = numpy_upfirdn2d(image, as_2d(f), up=up, down=down, pad=padding, gain=1.5)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


def test_ref_none_filter_is_pure_resampling(image):
    up = run_ref(image, None, up=2)
    assert up.shape == (2, 3, 14, 20)
    assert torch.equal(up[:, :, ::2, ::2], image)
    assert up[:, :, 1::2].abs().max() == 0 and up[:, :, :, 1::2].abs().max() == 0
    assert torch.equal(run_ref(image, None, down=[2, 3]), image[:, :, ::3, ::2])
    assert torch.equal(run_ref(image, None, padding=[-1, -2, -3, 0]), image[:, :, 3:, 1:-2])


def test_ref_keeps_dtype_and_float32_precision(image):
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    got = run_ref(image.float(), f, up=2, padding=[2, 1, 2, 1])
    assert got.dtype == torch.float32
    want = numpy_upfirdn2d(image, as_2d(f), up=(2, 2), pad=(2, 1, 2, 1))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_ref_channels_last_input(image):
    f = upfirdn2d.setup_filter([1, 2, 1])
    x = image.to(memory_format=torch.channels_last)
    assert torch.allclose(run_ref(x, f, up=2, down=2, padding=1), run_ref(image, f, up=2, down=2, padding=1))

#----------------------------------------------------------------------------
# setup_filter.

def test_setup_filter_none_and_scalar():
    assert torch.equal(upfirdn2d.setup_filter(None), torch.ones([1, 1]))
    assert torch.equal(upfirdn2d.setup_filter(2), torch.ones([1, 1]))
    assert torch.equal(upfirdn2d.setup_filter(2, normalize=False), torch.full([1, 1], 4.0))


def test_setup_filter_short_1d_becomes_outer_product():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.dtype == torch.float32 and f.shape == (4, 4)
    want = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64
    np.testing.assert_allclose(f.numpy(), want, rtol=0, atol=1e-8)


def test_setup_filter_long_1d_stays_separable():
    taps = [1, 2, 3, 4, 4, 3, 2, 1]
    f = upfirdn2d.setup_filter(taps)
    assert f.shape == (8,)
    np.testing.assert_allclose(f.numpy(), np.array(taps) / 20, atol=1e-8)
    assert upfirdn2d.setup_filter(taps, separable=False).shape == (8, 8)
    assert upfirdn2d.setup_filter([1, 2, 1], separable=True).shape == (3,)


def test_setup_filter_normalize_flip_gain():
    taps = [1.0, 2.0, 5.0]
    raw = upfirdn2d.setup_filter(taps, normalize=False)
    np.testing.assert_allclose(raw.numpy(), np.outer(taps, taps))
    assert abs(float(upfirdn2d.setup_filter(taps).sum()) - 1) < 1e-6
    flipped = upfirdn2d.setup_filter(taps, normalize=False, flip_filter=True)
    np.testing.assert_allclose(flipped.numpy(), np.outer(taps, taps)[::-1, ::-1])
    np.testing.assert_allclose(upfirdn2d.setup_filter(taps, gain=4).numpy(),
                               4 * upfirdn2d.setup_filter(taps).numpy(), rtol=1e-6)
    sep = upfirdn2d.setup_filter(taps, separable=True, gain=4) # 1-D: sqrt(gain) per pass
    np.testing.assert_allclose(sep.numpy(), 2 * np.array(taps) / 8, rtol=1e-6)


def test_setup_filter_2d_input_and_device():
    taps = [[1, 2], [3, 4]]
    f = upfirdn2d.setup_filter(taps, device=torch.device('cpu'))
    assert f.device.type == 'cpu' and f.shape == (2, 2)
    np.testing.assert_allclose(f.numpy(), np.array(taps) / 10, atol=1e-8)
    user = torch.tensor([1.0, 2.0, 1.0])
    upfirdn2d.setup_filter(user, separable=True)
    assert torch.equal(user, torch.tensor([1.0, 2.0, 1.0])), 'the caller tensor must not be modified'


@pytest.mark.parametrize('bad,kwargs', [([], {}), ([[1, 2], [3, 4]], {'separable': True}), (np.ones([2, 2, 2]), {})])
def test_setup_filter_rejects_bad_filters(bad, kwargs):
    with pytest.raises(ValueError, match='filter'):
        upfirdn2d.setup_filter(bad, **kwargs)

#----------------------------------------------------------------------------
# Private helpers other modules import.

def test_parse_helpers():
    assert upfirdn2d._parse_scaling(3) == (3, 3)
    assert upfirdn2d._parse_scaling([2, 4]) == (2, 4)
    assert upfirdn2d._parse_padding(1) == (1, 1, 1, 1)
    assert upfirdn2d._parse_padding([1, -2]) == (1, 1, -2, -2)
    assert upfirdn2d._parse_padding([1, 2, 3, 4]) == (1, 2, 3, 4)
    assert upfirdn2d._get_filter_size(None) == (1, 1)
    assert upfirdn2d._get_filter_size(torch.zeros([3, 5])) == (5, 3)
    assert upfirdn2d._get_filter_size(torch.zeros([6])) == (6, 6)
    for bad in [0, [1, 2, 3], 1.5]:
        with pytest.raises(ValueError, match='scaling'):
            upfirdn2d._parse_scaling(bad)
    for bad in [[1, 2, 3], 0.5]:
        with pytest.raises(ValueError, match='padding'):
            upfirdn2d._parse_padding(bad)
    with pytest.raises(ValueError, match='impl'):
        upfirdn2d.upfirdn2d(torch.zeros([1, 1, 4, 4]), None, impl='triton')
    with pytest.raises(ValueError, match='float32'):
        upfirdn2d.upfirdn2d(torch.zeros([1, 1, 4, 4]), torch.ones([2, 2], dtype=torch.float64))

#----------------------------------------------------------------------------
# filter2d / upsample2d / downsample2d.

@pytest.mark.parametrize('taps', [[1, 2, 1], [1, 3, 3, 1], list(range(1, 9))], ids=['3', '4', '8sep'])
def test_wrapper_sizes_and_values(image, taps):
    f = upfirdn2d.setup_filter(taps)
    fw, fh = upfirdn2d._get_filter_size(f)
    model = lambda **kw: numpy_upfirdn2d(image, as_2d(f), **kw)

    y = upfirdn2d.filter2d(image, f, gain=3)
    assert y.shape == image.shape
    np.testing.assert_allclose(y.numpy(), model(pad=(fw // 2, (fw - 1) // 2, fh // 2, (fh - 1) // 2), gain=3),
                               atol=1e-6)

    y = upfirdn2d.upsample2d(image, f, up=2)
    assert y.shape == (2, 3, 14, 20)
    pad = ((fw + 1) // 2, (fw - 2) // 2, (fh + 1) // 2, (fh - 2) // 2)
    np.testing.assert_allclose(y.numpy(), model(up=(2, 2), pad=pad, gain=4), atol=1e-6)

    y = upfirdn2d.downsample2d(image, f, down=2, padding=1)
    pad = (1 + (fw - 1) // 2, 1 + (fw - 2) // 2, 1 + (fh - 1) // 2, 1 + (fh - 2) // 2)
    want = model(down=(2, 2), pad=pad)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, atol=1e-6)


def test_wrappers_preserve_constant_images():
    # Unit-sum filters with the wrappers' gains keep flat regions flat, away from the borders.
    x = torch.full([1, 2, 8, 8], 3.0)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    up = upfirdn2d.upsample2d(x, f, up=[2, 1])
    assert up.shape == (1, 2, 8, 16)
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.tensor(3.0))
    down = upfirdn2d.downsample2d(x, f)
    assert down.shape == (1, 2, 4, 4)
    assert torch.allclose(down[:, :, 1:-1, 1:-1], torch.tensor(3.0))
    assert torch.allclose(upfirdn2d.filter2d(x, f)[:, :, 2:-2, 2:-2], torch.tensor(3.0))

#----------------------------------------------------------------------------
# Gradients of the reference path.

@pytest.mark.parametrize('f,kwargs', [
    (FILTER_2D, dict(up=2, down=1, padding=[2, 1, 1, 2])),
    (FILTER_1D, dict(up=1, down=2, padding=[2, -1, 3, 1], flip_filter=True, gain=2)),
    (FILTER_2D, dict(up=[1, 2], down=[2, 1], padding=1, gain=0.5)),
])
@pytest.mark.slow
def test_ref_gradcheck_and_gradgradcheck(f, kwargs):
    x = torch.randn([1, 2, 5, 6], dtype=torch.float64, requires_grad=True)
    fn = lambda t: run_ref(t, f, **kwargs)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))

#----------------------------------------------------------------------------
# CUDA wrapper logic, exercised on CPU with a stand-in plugin built from the reference.

class _ReferencePlugin:
    """Same call signature as the compiled plugin; counts calls."""
    def __init__(self):
        self.calls = 0

    def upfirdn2d(self, x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
        self.calls += 1
        assert f.ndim == 2 and f.dtype == torch.float32 and isinstance(flip, bool) and isinstance(gain, float)
        return upfirdn2d._upfirdn2d_ref(x, f, up=[upx, upy], down=[downx, downy],
                                        padding=[padx0, padx1, pady0, pady1], flip_filter=flip, gain=gain)


@pytest.mark.parametrize('f,kwargs', [
    (FILTER_2D, dict(up=2, down=1, padding=[2, 1, -1, 2])),
    (FILTER_1D, dict(up=[2, 1], down=[1, 2], padding=[1, 2, 3, -1], flip_filter=True, gain=2.0)),
    (FILTER_2D, dict(up=1, down=[3, 2], padding=[0, 2, 1, 1], gain=0.5)),
])
@pytest.mark.slow
def test_cuda_function_adjoint_on_cpu(monkeypatch, f, kwargs):
    plugin = _ReferencePlugin()
    monkeypatch.setattr(upfirdn2d, '_plugin', plugin)
    op = upfirdn2d._upfirdn2d_cuda(**kwargs)
    x = torch.randn([1, 2, 5, 7], dtype=torch.float64, requires_grad=True)
    assert torch.allclose(op.apply(x, f), run_ref(x, f, **kwargs))
    assert plugin.calls == (2 if f.ndim == 1 else 1)
    assert upfirdn2d._upfirdn2d_cuda(**kwargs) is op, 'Function classes are cached per argument set'
    assert torch.autograd.gradcheck(lambda t: op.apply(t, f), (x,))
    assert torch.autograd.gradgradcheck(lambda t: op.apply(t, f), (x,))

#----------------------------------------------------------------------------
# Plugin loading and fallback.

def test_cpu_tensors_never_touch_the_plugin(monkeypatch, image):
    def forbidden():
        raise AssertionError('_init() must not run for CPU tensors')
    monkeypatch.setattr(upfirdn2d, '_init', forbidden)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y = upfirdn2d.upfirdn2d(image, FILTER_2D, up=2, padding=1, impl='cuda')
    assert torch.equal(y, run_ref(image, FILTER_2D, up=2, padding=1))


def test_failed_build_warns_once_and_never_retries(monkeypatch):
    from torch_utils import custom_ops
    attempts = []
    def failing_get_plugin(*args, **kwargs):
        attempts.append((args, kwargs))
        raise RuntimeError('nvcc not found')
    monkeypatch.setattr(custom_ops, 'get_plugin', failing_get_plugin)
    monkeypatch.setattr(upfirdn2d, '_inited', False)
    monkeypatch.setattr(upfirdn2d, '_plugin', None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert upfirdn2d._init() is False
        assert upfirdn2d._init() is False
    assert len(attempts) == 1
    args, kwargs = attempts[0]
    assert (args[0] if args else kwargs['module_name']) == 'upfirdn2d_plugin'
    assert kwargs['extra_cuda_cflags'] == ['--use_fast_math']
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert messages[0].startswith('Failed to build CUDA kernels for upfirdn2d. Falling back to slow reference '
                                  'implementation. Details:')
    assert 'nvcc not found' in messages[0]

#----------------------------------------------------------------------------
# The CUDA kernel itself (needs a GPU).

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.fixture(scope='module')
def plugin_ready():
    if not upfirdn2d._init():
        pytest.fail('the upfirdn2d CUDA plugin failed to build')


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float16, 1e-2), (torch.float64, 1e-10)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_cuda_matches_ref(plugin_ready, dtype, tol, channels_last):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([2, 5, 9, 12], generator=gen).to('cuda', dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    for f, (up, down), padding, flip in itertools.product(
            [FILTER_2D, FILTER_1D, upfirdn2d.setup_filter([1, 3, 3, 1])], [(1, 1), (2, 1), (1, 2), ([2, 1], [1, 4])],
            [0, [2, -1, 3, 1]], [False, True]):
        f = f.cuda()
        kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip, gain=1.5)
        got = upfirdn2d.upfirdn2d(x, f, impl='cuda', **kwargs)
        want = upfirdn2d.upfirdn2d(x.double(), f, impl='ref', **kwargs)
        assert got.dtype == dtype and got.shape == want.shape
        scale = want.abs().max().item() + 1
        assert (got.double() - want).abs().max().item() <= tol * scale, (f.shape, up, down, padding, flip)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float16, 1e-2)])
def test_cuda_gradients_match_ref(plugin_ready, dtype, tol):
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=torch.device('cuda'))
    for kwargs in [dict(up=2, padding=[2, 1, 2, 1]), dict(down=2, padding=1), dict(up=[1, 2], down=[2, 1])]:
        x = torch.randn([2, 4, 8, 10], device='cuda').to(dtype).requires_grad_(True)
        grads = []
        for impl in ['cuda', 'ref']:
            y = upfirdn2d.upfirdn2d(x, f, impl=impl, **kwargs)
            dy = torch.linspace(-1, 1, y.numel(), device='cuda').reshape(y.shape).to(dtype)
            grads.append(torch.autograd.grad(y, x, dy)[0].double())
        assert (grads[0] - grads[1]).abs().max().item() <= tol * (grads[1].abs().max().item() + 1)


@cuda
@pytest.mark.cuda
def test_cuda_gradgradcheck(plugin_ready):
    f = upfirdn2d.setup_filter([1, 2, 1], device=torch.device('cuda'))
    x = torch.randn([1, 2, 5, 6], device='cuda', dtype=torch.float64, requires_grad=True)
    fn = lambda t: upfirdn2d.upfirdn2d(t, f, up=2, down=[1, 2], padding=[1, 2, 0, 1], impl='cuda')
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
