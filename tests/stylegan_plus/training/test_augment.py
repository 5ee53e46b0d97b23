"""Tests of the ADA augmentation pipeline (training.augment.AugmentPipe), CPU, 16-32 px images."""

import ast
import pickle

import numpy as np
import pytest
import scipy.stats
import torch

from stylegan_plus.training import augment as augment_impl
from training.augment import AugmentPipe, augpipe_specs

#----------------------------------------------------------------------------
# Helpers.

def _images(n=2, c=3, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand([n, c, size, size], generator=gen) * 2 - 1

def _smooth_images(n=1, c=3, size=32, seed=0):
    """Band-limited test images, for transforms that resample."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn([n, c, size // 4, size // 4], generator=gen)
    return torch.nn.functional.interpolate(coarse, size=size, mode='bicubic', align_corners=False)

def _pipe(p=1.0, **kwargs):
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe

def _normal_cdf(z):
    return float(scipy.stats.norm.cdf(z))

#----------------------------------------------------------------------------
# Buffers and presets.

def test_state_dict_layout():
    sd = AugmentPipe().state_dict()
    assert list(sd.keys()) == ['p', 'Hz_geom', 'Hz_fbank']
    assert sd['p'].shape == () and sd['p'].dtype == torch.float32 and sd['p'].item() == 0
    assert sd['Hz_geom'].shape == (12,) and sd['Hz_geom'].dtype == torch.float32
    assert sd['Hz_fbank'].shape == (4, 43) and sd['Hz_fbank'].dtype == torch.float32


def test_geom_filter_is_normalised_symlet6():
    h = AugmentPipe().Hz_geom.double().numpy()
    assert h.sum() == pytest.approx(1, abs=1e-6)
    assert np.argmax(h) == 5
    # Orthogonal to its even shifts (what makes 2x up- then downsampling an identity).
    for shift in range(1, 6):
        assert abs(np.dot(h[:-2 * shift], h[2 * shift:])) < 1e-7
    # Six vanishing moments of the matching high-pass.
    k = np.arange(12)
    high = (-1.0) ** k * h[::-1]
    for order in range(6):
        assert abs((k ** order * high).sum()) < 1e-5 * 11 ** order


def test_filter_bank_partitions_unity():
    fbank = AugmentPipe().Hz_fbank.double().numpy()
    impulse = np.zeros(43)
    impulse[21] = 1
    np.testing.assert_allclose(fbank.sum(axis=0), impulse, atol=1e-7)
    np.testing.assert_allclose(fbank, fbank[:, ::-1], atol=1e-7)    # zero phase
    np.testing.assert_allclose(fbank.sum(axis=1), [1, 0, 0, 0], atol=1e-7)  # only band 0 passes DC
    nyquist = (fbank * (-1.0) ** np.arange(43)).sum(axis=1)
    np.testing.assert_allclose(np.abs(nyquist), [0, 0, 0, 1], atol=1e-7)  # highest band at Nyquist
    nonzero = [np.flatnonzero(np.abs(row) > 1e-12) for row in fbank]
    assert [len(range(i[0], i[-1] + 1)) for i in nonzero] == [43, 43, 19, 7]


def test_presets_match_train_py():
    blit = dict(xflip=1, rotate90=1, xint=1)
    geom = dict(scale=1, rotate=1, aniso=1, xfrac=1)
    color = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    expected = {
        'blit': blit, 'geom': geom, 'color': color,
        'filter': dict(imgfilter=1), 'noise': dict(noise=1), 'cutout': dict(cutout=1),
        'bg': {**blit, **geom},
        'bgc': {**blit, **geom, **color},
        'bgcf': {**blit, **geom, **color, 'imgfilter': 1},
        'bgcfn': {**blit, **geom, **color, 'imgfilter': 1, 'noise': 1},
        'bgcfnc': {**blit, **geom, **color, 'imgfilter': 1, 'noise': 1, 'cutout': 1},
    }
    assert augpipe_specs == expected
    assert list(augpipe_specs) == list(expected)
    for name, spec in expected.items():
        assert list(augpipe_specs[name]) == list(spec), name  # key order lands in training_options.json

#----------------------------------------------------------------------------
# Whole-pipeline properties.

@pytest.mark.parametrize('preset', list(augpipe_specs))
@pytest.mark.parametrize('channels', [1, 3])
def test_p_zero_is_identity(preset, channels):
    x = _images(c=channels)
    y = _pipe(p=0, **augpipe_specs[preset])(x)
    resamples = any(augpipe_specs[preset].get(k, 0) for k in ('scale', 'rotate', 'aniso', 'xfrac'))
    if resamples:
        torch.testing.assert_close(y, x, atol=2e-5, rtol=0)
    else:
        assert torch.equal(y, x)


@pytest.mark.parametrize('preset', list(augpipe_specs))
def test_shape_dtype_and_gradients(preset):
    torch.manual_seed(1)
    pipe = _pipe(p=1, **augpipe_specs[preset])
    for shape, dtype in [([3, 3, 16, 16], torch.float32), ([1, 1, 32, 32], torch.float32), ([2, 3, 16, 16], torch.float64)]:
        x = (torch.rand(shape, dtype=dtype) * 2 - 1).requires_grad_(True)
        y = pipe(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.isfinite(y).all()
        (y * torch.randn_like(y)).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_second_order_gradients():
    # R1 on augmented reals differentiates the pipe twice.
    torch.manual_seed(2)
    x = _images(n=2).requires_grad_(True)
    y = _pipe(p=1, **augpipe_specs['bgcfnc'])(x)
    grad, = torch.autograd.grad(torch.tanh(y).sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_empty_batch():
    x = torch.zeros([0, 3, 16, 16])
    assert _pipe(**augpipe_specs['bgcfnc'])(x).shape == x.shape


def test_debug_percentile_is_deterministic():
    pipe = _pipe(p=0, **augpipe_specs['bgcf'], cutout=1)  # noise is random even in debug mode
    x = _images()
    torch.manual_seed(3)
    a = pipe(x, debug_percentile=0.3)
    torch.manual_seed(4)
    b = pipe(x, debug_percentile=0.3)
    assert torch.equal(a, b)
    assert (a - x).abs().max() > 0.01  # applied although p = 0

#----------------------------------------------------------------------------
# Pixel blitting: exact pixel moves.

def test_xflip_mirrors_exactly():
    x = _images()
    pipe = _pipe(xflip=1)
    assert torch.equal(pipe(x, debug_percentile=0.75), torch.flip(x, dims=[3]))
    assert torch.equal(pipe(x, debug_percentile=0.25), x)


@pytest.mark.parametrize('percentile, quarter_turns', [(0.1, 0), (0.3, 1), (0.6, 2), (0.9, 3)])
def test_rotate90_by_percentile(percentile, quarter_turns):
    x = _images(c=1)
    y = _pipe(rotate90=1)(x, debug_percentile=percentile)
    assert torch.equal(y, torch.rot90(x, quarter_turns, dims=[2, 3]))


def test_integer_translation_moves_pixels():
    x = _images(size=16)
    # shift = round((2u - 1) * xint_max * 16) = 2 pixels right and down; edges reflect.
    y = _pipe(xint=1, xint_max=0.25)(x, debug_percentile=0.75)
    assert torch.equal(y[..., 2:, 2:], x[..., :-2, :-2])
    assert torch.equal(y[..., 2:, 0], x[..., :-2, 2])
    assert torch.equal(y[..., 2:, 1], x[..., :-2, 1])


@pytest.mark.parametrize('p', [0.5, 1.0])
def test_xflip_probability(p):
    # A sample is picked with probability p; a picked sample flips with probability 1/2.
    torch.manual_seed(5)
    n = 2000
    x = torch.arange(4.0).expand(n, 1, 1, 4).contiguous()
    y = _pipe(p=p, xflip=1)(x)
    flipped = (y != x).any(dim=3).flatten().float().mean().item()
    assert abs(flipped - p / 2) < 0.05


def test_gate_probability_of_brightness():
    torch.manual_seed(6)
    x = torch.zeros([2000, 3, 2, 2])
    y = _pipe(p=0.3, brightness=1)(x)
    changed = (y != 0).flatten(1).any(dim=1).float().mean().item()
    assert abs(changed - 0.3) < 0.05

#----------------------------------------------------------------------------
# General geometric transforms: one resampling.

def test_geometry_at_median_is_identity():
    x = _images(size=16)
    y = _pipe(**augpipe_specs['geom'])(x, debug_percentile=0.5)
    torch.testing.assert_close(y, x, atol=2e-5, rtol=0)


def test_fractional_translation_by_one_pixel():
    x = _smooth_images()
    u = _normal_cdf(1)  # translation = 1 * xfrac_std * size = 1 pixel right and down
    y = _pipe(xfrac=1, xfrac_std=1 / 32)(x, debug_percentile=u)
    torch.testing.assert_close(y[..., 1:, 1:], x[..., :-1, :-1], atol=2e-5, rtol=0)


def test_isotropic_and_anisotropic_scale():
    ramp = torch.arange(32.0) - 15.5
    x_ramp = ramp.expand(1, 1, 32, 32)
    u = _normal_cdf(1 / 0.2)  # scale factor 2**(quantile * scale_std) = 2
    y = _pipe(scale=1)(x_ramp, debug_percentile=u)[0, 0, 8:24, 8:24]
    torch.testing.assert_close(y.diff(dim=1), torch.full([16, 15], 0.5), atol=1e-3, rtol=0)  # magnified 2x
    y = _pipe(aniso=1)(x_ramp + x_ramp.transpose(2, 3), debug_percentile=u)[0, 0, 12:20, 12:20]
    torch.testing.assert_close(y.diff(dim=1), torch.full([8, 7], 0.5), atol=1e-3, rtol=0)  # x stretched
    torch.testing.assert_close(y.diff(dim=0), torch.full([7, 8], 2.0), atol=1e-3, rtol=0)  # y squeezed


def test_rotation_by_quarter_turn_pivots_on_centre():
    x = _smooth_images()
    # theta = (2u - 1) * pi = pi/2 at u = 0.75 (the post-rotation stays 0 in debug mode).
    y = _pipe(rotate=1)(x, debug_percentile=0.75)
    err = (y - torch.rot90(x, -1, dims=[2, 3]))[..., 4:-4, 4:-4].abs()
    assert err.mean() < 0.05 * x.abs().mean()

#----------------------------------------------------------------------------
# Colour transforms.

def test_brightness_adds_constant():
    x = _images()
    y = _pipe(brightness=1)(x, debug_percentile=_normal_cdf(1))  # b = 1 * brightness_std = 0.2
    torch.testing.assert_close(y, x + 0.2, atol=1e-5, rtol=0)


def test_contrast_scales_about_mid_grey():
    # Images are centred on 0 (mid-grey of [-1, 1]); contrast multiplies by c = 2**(q * 0.5).
    x = _images()
    y = _pipe(contrast=1)(x, debug_percentile=_normal_cdf(2))  # c = 2
    torch.testing.assert_close(y, x * 2, atol=1e-5, rtol=0)


@pytest.mark.parametrize('channels', [1, 3])
def test_lumaflip_negates_luma_only(channels):
    x = _images(c=channels)
    y = _pipe(lumaflip=1)(x, debug_percentile=0.75)
    luma = x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(y, x - 2 * luma, atol=1e-5, rtol=0)


def test_hue_rotation_keeps_luma_and_third_turn_permutes_channels():
    x = _images()
    y = _pipe(hue=1)(x, debug_percentile=0.6)
    torch.testing.assert_close(y.mean(dim=1), x.mean(dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1), atol=1e-5, rtol=0)
    y = _pipe(hue=1)(x, debug_percentile=5 / 6)  # theta = 2 pi / 3 about the grey axis
    torch.testing.assert_close(y, x.roll(1, dims=1), atol=1e-5, rtol=0)


def test_saturation_scales_chroma():
    x = _images()
    y = _pipe(saturation=1)(x, debug_percentile=_normal_cdf(1))  # s = 2
    luma = x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(y, luma + 2 * (x - luma), atol=1e-5, rtol=0)


def test_grayscale_skips_hue_and_saturation():
    x = _images(c=1)
    torch.manual_seed(7)
    assert torch.equal(_pipe(hue=1, saturation=1)(x), x)


def test_color_rejects_two_channels():
    with pytest.raises(ValueError, match='1 or 3 channels'):
        _pipe(brightness=1)(_images(c=2))

#----------------------------------------------------------------------------
# Filtering, noise, cutout.

@pytest.mark.parametrize('size', [16, 32])
def test_imgfilter_at_median_is_identity(size):
    x = _images(size=size)
    y = _pipe(imgfilter=1)(x, debug_percentile=0.5)
    torch.testing.assert_close(y, x, atol=2e-5, rtol=0)


def test_imgfilter_keeps_expected_power():
    # Boosting only the top band by g renormalises all gains by sqrt(13 / (12 + g^2)); a flat
    # image (band 0 only) shows that factor once per axis of the separable filter.
    u = _normal_cdf(1)  # g = 2
    x = torch.full([1, 3, 16, 16], 0.5)
    y = _pipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 1])(x, debug_percentile=u)
    torch.testing.assert_close(y, x * 13 / 16, atol=1e-5, rtol=0)


def test_noise_std_follows_percentile():
    torch.manual_seed(8)
    x = torch.zeros([1, 3, 64, 64])
    u = 0.5
    sigma = 0.1 * scipy.stats.halfnorm.ppf(u)
    y = _pipe(noise=1)(x, debug_percentile=u)
    assert y.std().item() == pytest.approx(sigma, rel=0.05)
    assert torch.equal(_pipe(noise=1)(x, debug_percentile=0), x)


def test_cutout_zeroes_centred_box():
    x = _images(size=16)
    y = _pipe(cutout=1)(x, debug_percentile=0.5)
    inside = torch.zeros([16, 16], dtype=torch.bool)
    inside[4:12, 4:12] = True
    assert (y[..., inside] == 0).all()
    assert torch.equal(y[..., ~inside], x[..., ~inside])

#----------------------------------------------------------------------------
# Arguments, persistence and the embedded source.

def test_invalid_arguments_are_reported():
    with pytest.raises(ValueError, match='imgfilter_bands'):
        AugmentPipe(imgfilter=1, imgfilter_bands=[1, 1, 1])
    with pytest.raises(ValueError, match='xflip=-1'):
        AugmentPipe(xflip=-1)
    with pytest.raises(ValueError, match=r'\[N, C, H, W\]'):
        AugmentPipe()(torch.zeros([3, 16, 16]))


def test_pickle_round_trip_keeps_p_and_output():
    pipe = _pipe(p=0.37, **augpipe_specs['bgcfnc'])
    loaded = pickle.loads(pickle.dumps(pipe))
    assert type(loaded).__name__ == 'AugmentPipe'
    assert loaded.p.item() == pytest.approx(0.37)
    assert dict(loaded.init_kwargs) == augpipe_specs['bgcfnc']
    x = _images(n=4)
    torch.manual_seed(9)
    expected = pipe(x)
    torch.manual_seed(9)
    assert torch.equal(loaded(x), expected)


def test_embedded_source_imports_only_official_modules():
    src = AugmentPipe._orig_module_src
    with open(augment_impl.__file__, encoding='utf-8') as f:
        assert src == f.read()
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f'{node.module}.{alias.name}' for alias in node.names)
    allowed = {'numpy', 'scipy.signal', 'torch', 'torch_utils.persistence', 'torch_utils.misc',
               'torch_utils.ops.upfirdn2d', 'torch_utils.ops.grid_sample_gradfix', 'torch_utils.ops.conv2d_gradfix'}
    assert imported <= allowed, imported - allowed

#----------------------------------------------------------------------------
# The CPU resampling of the geometric stage: band matrices instead of depthwise convolutions.

@pytest.mark.parametrize('size', [(5, 7), (19, 40), (44, 44), (76, 61)])
def test_matrix_resampling_equals_upfirdn2d(size):
    from torch_utils.ops import upfirdn2d
    filt = upfirdn2d.setup_filter(augment_impl._SYM6_LOWPASS)
    gen = torch.Generator().manual_seed(sum(size))
    x = torch.randn([2, 3, *size], generator=gen, dtype=torch.float64)
    up = augment_impl._resample2x(x, filt, up=True)
    torch.testing.assert_close(up, upfirdn2d.upsample2d(x, filt, up=2), rtol=0, atol=1e-12)
    for crop in (0, 3):
        if min(size) * 2 > 2 * crop + len(augment_impl._SYM6_LOWPASS):
            down = augment_impl._resample2x(up, filt, up=False, crop=crop)
            want = upfirdn2d.downsample2d(up, filt, down=2, padding=-crop, flip_filter=True)
            torch.testing.assert_close(down, want, rtol=0, atol=1e-12)


def test_matrix_resampling_float32_and_large_images():
    from torch_utils.ops import upfirdn2d
    filt = upfirdn2d.setup_filter(augment_impl._SYM6_LOWPASS)
    x = _smooth_images(n=2, size=40)
    diff = (augment_impl._resample2x(x, filt, up=True) - upfirdn2d.upsample2d(x, filt, up=2)).abs().max()
    assert diff < 1e-5                                          # float32 rounding only
    big = torch.randn([1, 1, 8, augment_impl._MATRIX_MAX_SIZE + 1])  # past the dense-matrix limit: upfirdn2d itself
    assert torch.equal(augment_impl._resample2x(big, filt, up=True), upfirdn2d.upsample2d(big, filt, up=2))
    before = len(augment_impl._axis_matrices)
    augment_impl._resample2x(x, filt, up=True)
    assert len(augment_impl._axis_matrices) == before            # built once per size, then reused

#----------------------------------------------------------------------------
