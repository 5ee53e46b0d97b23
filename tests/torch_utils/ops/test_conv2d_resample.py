"""torch_utils.ops.conv2d_resample: each of the six op sequences is taken in the documented case
and equals an independent computation (explicit upsample/filter, plain conv, filter/decimate)."""

import numpy as np
import pytest
import torch

from tests.torch_utils.ops.test_upfirdn2d import as_2d, expand_padding, numpy_upfirdn2d
from torch_utils.ops import conv2d_gradfix, conv2d_resample, upfirdn2d


def explicit_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """The meaning of conv2d_resample written out step by step, in float64."""
    taps = np.ones([1, 1]) if f is None else as_2d(f)
    fh, fw = taps.shape
    px0, px1, py0, py1 = expand_padding(padding)
    if up > 1:
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    grown = numpy_upfirdn2d(x.detach(), taps if up > 1 else np.ones([1, 1]), up=(up, up), pad=(px0, px1, py0, py1),
                            flip=flip_filter, gain=up * up)
    kernel = w.detach().double()
    if not flip_weight:
        kernel = kernel.flip([2, 3])
    y = torch.nn.functional.conv2d(torch.from_numpy(grown), kernel, groups=groups).numpy()
    if down > 1:
        y = numpy_upfirdn2d(y, taps, down=(down, down), flip=flip_filter)
    return y


@pytest.fixture
def trace(monkeypatch):
    """Record the primitive ops conv2d_resample calls, in order."""
    calls = []
    inside_fir = []  # upfirdn2d's own grouped convs are not conv2d_resample's choice: skip them
    real_fir, real_conv, real_convt = upfirdn2d.upfirdn2d, conv2d_gradfix.conv2d, conv2d_gradfix.conv_transpose2d

    def fir(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
        calls.append(('fir', up, down, f is None, gain))
        inside_fir.append(True)
        try:
            return real_fir(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)
        finally:
            inside_fir.pop()

    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if not inside_fir:
            calls.append(('conv', stride, padding))
        return real_conv(input, weight, bias, stride, padding, dilation, groups)

    def convt(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        if not inside_fir:  # the reference FIR upsamples with a depthwise transposed convolution
            calls.append(('convT', stride))
        return real_convt(input, weight, bias, stride, padding, output_padding, groups, dilation)

    monkeypatch.setattr(upfirdn2d, 'upfirdn2d', fir)
    monkeypatch.setattr(conv2d_gradfix, 'conv2d', conv)
    monkeypatch.setattr(conv2d_gradfix, 'conv_transpose2d', convt)
    return calls


def _ops(calls):
    return [c[0] for c in calls]


# (name, kernel size, up, down, padding, expected op sequence)
PATHS = [
    ('1_pointwise_down', 1, 1, 2, 0, ['fir', 'conv']),
    ('2_pointwise_up', 1, 2, 1, 0, ['conv', 'fir']),
    ('3_down', 3, 1, 2, 1, ['fir', 'conv']),
    ('4_up', 3, 2, 1, 1, ['convT', 'fir']),
    ('4_up_down', 3, 2, 2, [1, 0, 2, 1], ['convT', 'fir', 'fir']),
    ('4_pointwise_up_down', 1, 2, 2, 0, ['convT', 'fir', 'fir']),
    ('5_plain', 3, 1, 1, [1, 2], ['conv']),
    ('6_generic_asymmetric', 3, 1, 1, [1, 0, 2, 1], ['fir', 'conv']),
    ('6_generic_negative', 3, 1, 1, -1, ['fir', 'conv']),
]


@pytest.mark.parametrize('name,k,up,down,padding,expected', PATHS, ids=[p[0] for p in PATHS])
@pytest.mark.parametrize('groups,flip_weight,flip_filter', [(1, True, False), (2, False, True)])
def test_paths_match_explicit_computation(trace, name, k, up, down, padding, expected, groups, flip_weight,
                                          flip_filter):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn([2, 4, 9, 8], dtype=torch.float64, generator=gen)
    w = torch.randn([6, 4 // groups, k, k], dtype=torch.float64, generator=gen)
    f = upfirdn2d.setup_filter([1, 2, 4, 1], flip_filter=False) # asymmetric, so flip_filter matters
    y = conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                        flip_weight=flip_weight, flip_filter=flip_filter)
    assert _ops(trace) == expected
    want = explicit_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-9, atol=1e-9)


def test_path_details(trace):
    x = torch.randn([1, 2, 6, 6], dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    conv2d_resample.conv2d_resample(x, torch.randn([3, 2, 1, 1], dtype=torch.float64), f=f, up=2)
    assert trace[-1][1:] == (2, 1, False, 4), 'path 2 upsamples with gain up**2'
    trace.clear()
    conv2d_resample.conv2d_resample(x, torch.randn([3, 2, 3, 3], dtype=torch.float64), f=f, down=2)
    assert trace[0][1:3] == (1, 1) and trace[1][1] == 2, 'path 3 filters, then convolves with stride=down'
    trace.clear()
    conv2d_resample.conv2d_resample(x, torch.randn([3, 2, 3, 3], dtype=torch.float64), f=f, padding=[1, 0, 1, 1])
    assert trace[0][3] is True, 'path 6 without upsampling pads with the identity filter'
    trace.clear()
    conv2d_resample.conv2d_resample(x, torch.randn([3, 2, 3, 3], dtype=torch.float64), padding=1)
    assert trace == [('conv', 1, [1, 1])]


def test_no_filter_means_box_resampling():
    x = torch.randn([1, 3, 8, 8], dtype=torch.float64)
    w = torch.randn([2, 3, 3, 3], dtype=torch.float64)
    y = conv2d_resample.conv2d_resample(x, w, f=None, down=2, padding=1)
    want = explicit_conv2d_resample(x, w, None, 1, 2, 1, 1, True, False)
    np.testing.assert_allclose(y.numpy(), want, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize('up,down,k', [(2, 1, 3), (1, 2, 3), (1, 1, 3), (2, 1, 1)])
def test_gradcheck(up, down, k):
    x = torch.randn([1, 2, 5, 5], dtype=torch.float64, requires_grad=True)
    w = torch.randn([2, 2, k, k], dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    fn = lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=1)
    assert torch.autograd.gradcheck(fn, (x, w))


@pytest.mark.parametrize('out_channels,groups', [(3, 1), (8, 2)])
def test_pointwise_channels_last_special_case(out_channels, groups):
    x = torch.randn([2, 8, 5, 6]).to(memory_format=torch.channels_last)
    w = torch.randn([out_channels, 8 // groups, 1, 1])
    y = conv2d_resample._conv2d_wrapper(x, w, groups=groups)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, groups=groups), rtol=1e-5, atol=1e-5)
    y = conv2d_resample._conv2d_wrapper(x, w, groups=groups, flip_weight=False) # 1x1: flipping changes nothing
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, groups=groups), rtol=1e-5, atol=1e-5)


def test_wrapper_transpose_and_flip():
    x = torch.randn([1, 4, 5, 5], dtype=torch.float64)
    w = torch.randn([4, 3, 3, 3], dtype=torch.float64)
    y = conv2d_resample._conv2d_wrapper(x, w, stride=2, padding=1, transpose=True, flip_weight=False)
    torch.testing.assert_close(y, torch.nn.functional.conv_transpose2d(x, w.flip([2, 3]), stride=2, padding=1))
    assert conv2d_resample._get_weight_shape(w) == [4, 3, 3, 3]


@pytest.mark.parametrize('kwargs,match', [
    (dict(w=torch.zeros([2, 3, 3, 3], dtype=torch.float64)), 'dtype'),
    (dict(f=torch.ones([2, 2], dtype=torch.float64)), 'float32'),
    (dict(up=0), 'up'),
    (dict(down=1.5), 'down'),
])
def test_rejects_bad_arguments(kwargs, match):
    args = dict(x=torch.zeros([1, 3, 4, 4]), w=torch.zeros([2, 3, 3, 3]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        conv2d_resample.conv2d_resample(**args)
