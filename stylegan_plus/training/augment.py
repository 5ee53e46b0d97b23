"""Adaptive discriminator augmentation (ADA): a differentiable, stochastic augmentation pipeline.

`AugmentPipe` augments a batch of images [N, C, H, W] (float, roughly in [-1, 1]) on the fly.
Every transform is applied to each sample independently with probability `p * multiplier`,
where the scalar buffer `p` is the strength adjusted by the training loop and each multiplier
is a constructor argument (0 disables the transform). The stages run in this order:

1. pixel blitting: x-flip, 90-degree rotation, integer translation (lossless pixel moves);
2. general geometry: isotropic scale, pre-rotation, anisotropic scale, fractional translation,
   post-rotation, composed into one 3x3 matrix and resampled once (reflect padding, 2x
   upsampling with a Symlet-6 low-pass, bilinear sampling, 2x downsampling);
3. colour: brightness, contrast, luma flip, hue rotation, saturation, composed into one 4x4
   matrix acting on RGB (1-channel images use the luma part only);
4. image-space filtering: random gains of four frequency bands;
5. additive Gaussian noise; 6. cutout.

The class is persistent: this source is embedded in snapshot pickles and must also run inside
an official StyleGAN2-ADA checkout, so it imports only numpy, scipy, torch and the official
`torch_utils` names.
"""

import numpy as np
import scipy.signal
import torch
from torch_utils import persistence
from torch_utils import misc
from torch_utils.ops import upfirdn2d
from torch_utils.ops import grid_sample_gradfix
from torch_utils.ops import conv2d_gradfix

__all__ = ['AugmentPipe']  # --augpipe presets: stylegan_plus.training.choices

#----------------------------------------------------------------------------
# Wavelet filters.

# Symlet-6 decomposition low-pass filter (published coefficients; orthonormal, sum sqrt(2),
# 6 vanishing moments). Its energy peaks at tap 5, which `_warp` relies on.
_SYM6_LOWPASS = [
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
]

def _sym2_lowpass():
    """Symlet-2 (= Daubechies-2) decomposition low-pass filter, from its closed form."""
    r3 = np.sqrt(3)
    return np.array([1 - r3, 3 - r3, 3 + r3, 1 + r3]) / (4 * np.sqrt(2))

def _dilate(f, factor):
    """Insert `factor - 1` zeros between the taps of a 1-D filter (f(z) -> f(z^factor))."""
    out = np.zeros((len(f) - 1) * factor + 1)
    out[::factor] = f
    return out

def _octave_filter_bank(lowpass, num_bands=4):
    """Zero-phase octave filter bank [num_bands, taps] built from an orthogonal wavelet.

    Band 0 is the lowest octave, band num_bands-1 the highest. The bands are power-complementary
    halves of the wavelet's autocorrelation, so they add up to a centred unit impulse.
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    lo_auto = scipy.signal.convolve(lo, lo[::-1]) / 2                          # |H(w)|^2 / 2
    hi_auto = lo_auto * (-1.0) ** (np.arange(len(lo_auto)) - len(lo_auto) // 2)  # |H(w + pi)|^2 / 2
    levels = num_bands - 1
    bands = []
    for band in range(num_bands):
        # Band b: one high-pass at scale 2^(levels-b) (none for b=0), low-passes below it.
        top = levels if band == 0 else levels - band
        taps = np.ones(1) if band == 0 else _dilate(hi_auto, 2 ** top)
        for level in range(top):
            taps = scipy.signal.convolve(taps, _dilate(lo_auto, 2 ** level))
        bands.append(taps)
    width = max(len(b) for b in bands)
    return np.stack([np.pad(b, (width - len(b)) // 2) for b in bands])

#----------------------------------------------------------------------------
# Random parameters.

def _normal_quantile(u):
    """Quantile of the standard normal distribution at probability u in (0, 1)."""
    return float(np.sqrt(2) * torch.erfinv(torch.tensor(2 * u - 1, dtype=torch.float64)))

def _half_normal_quantile(u):
    """Quantile of |X|, X standard normal, at probability u in [0, 1)."""
    return float(np.sqrt(2) * torch.erfinv(torch.tensor(u, dtype=torch.float64)))

class _Draws:
    """Random parameters of one forward call, drawn on the images' device.

    `gate` keeps a drawn value for a sample with the given probability and substitutes the
    transform's neutral value otherwise. With a debug percentile, every sample instead gets the
    value at that percentile of the distribution (the random numbers are still consumed, so the
    stream does not depend on the debug setting).
    """

    def __init__(self, batch_size, device, percentile):
        self.n = batch_size
        self.device = device
        self.percentile = percentile

    def uniform(self, *shape):
        return torch.rand([self.n, *shape], device=self.device)

    def normal(self, *shape):
        return torch.randn([self.n, *shape], device=self.device)

    def gate(self, value, prob, neutral, at_percentile):
        """value: [N, ...] drawn parameter; prob: float or 0-dim tensor; at_percentile: u -> value."""
        keep = torch.rand([self.n] + [1] * (value.ndim - 1), device=self.device) < prob
        value = torch.where(keep, value, torch.full_like(value, neutral))
        if self.percentile is not None:
            value = torch.full_like(value, at_percentile(self.percentile))
        return value

#----------------------------------------------------------------------------
# Unit luma axis of RGB space, padded with the homogeneous coordinate.
_LUMA = np.array([1, 1, 1, 0]) / np.sqrt(3)

# Homogeneous matrices, batched: every argument is a Python number or an [N] tensor.

def _matrix(rows, n, device):
    """Stack a nested list of scalars / [N] tensors into an [N, R, C] float32 tensor."""
    elems = [torch.as_tensor(e, dtype=torch.float32, device=device).expand(n)
             if isinstance(e, torch.Tensor) else misc.constant(float(e), shape=[n], device=device)
             for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(n, len(rows), len(rows[0]))

def _translate2d(tx, ty, n, device):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, device)

def _scale2d(sx, sy, n, device):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, device)

def _rotate2d(theta, n, device):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n, device)

def _translate3d(t, n, device):
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], n, device)

def _scale3d(s, n, device):
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], n, device)

def _rotate_about_luma(theta, n, device):
    """Rotation by theta [N] about the luma axis (1, 1, 1) of RGB space, as [N, 4, 4] (Rodrigues)."""
    x, y, z = _LUMA[:3]
    cross = misc.constant(np.array([[0, -z, y, 0], [z, 0, -x, 0], [-y, x, 0, 0], [0, 0, 0, 0]]), device=device)
    along = misc.constant(np.outer(_LUMA, _LUMA), device=device)
    across = misc.constant(np.diag([1, 1, 1, 0]), device=device) - along
    fixed = misc.constant(np.diag([0, 0, 0, 1]), device=device)
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    return along + across * c + cross * s + fixed

#----------------------------------------------------------------------------
# Resampling helpers.

def _reflect_index(idx, size):
    """Map integer coordinates of any range into [0, size) by mirroring at the edge pixels."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx < size, idx, period - idx)

def _reflect_pad(x, pads):
    """Mirror-pad [..., H, W] by pads = [left, right, top, bottom] (any size, even > H or W)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    cols = _reflect_index(torch.arange(-left, w + right, device=x.device), w)
    rows = _reflect_index(torch.arange(-top, h + bottom, device=x.device), h)
    return x.index_select(-1, cols).index_select(-2, rows)

# On the CPU the 2x FIR resampling runs as two small matrix products per image (one per axis)
# instead of depthwise convolutions: with 3 channels and a 12-tap filter, oneDNN's depthwise
# kernels are slow (and re-built for every new padded size), while an [n_out, n] band matrix
# costs a few times more multiply-adds at many times the speed (0.2 vs 1-2 ms per pass for a
# 60-px axis, 1 thread). Above `_MATRIX_MAX_SIZE` samples the dense matrix stops paying off.
_MATRIX_MAX_SIZE = 256
_axis_matrices = {}     # (n, up, filter taps, pads, device, dtype) -> [n_out, n]; small, rebuilt if it grows


def _axis_matrix(n, taps, up, down, pad0, pad1, device, dtype):
    """[n_out, n] matrix of one axis of upfirdn2d: stuff `up - 1` zeros, pad (pad0, pad1; negative
    crops), correlate with `taps` (1-D, gain included), keep every `down`-th sample."""
    key = (n, up, down, pad0, pad1, tuple(taps.tolist()), device, dtype)
    matrix = _axis_matrices.get(key)
    if matrix is None:
        k = len(taps)
        n_out = (n * up + pad0 + pad1 - k) // down + 1
        out_idx = torch.arange(n_out)[:, None].expand(n_out, k)
        pos = out_idx * down + torch.arange(k)[None, :] - pad0   # position in the zero-stuffed signal
        hit = (pos >= 0) & (pos < n * up) & (pos % up == 0)
        matrix = torch.zeros([n_out, n], dtype=torch.float64)
        matrix.index_put_((out_idx[hit], pos[hit] // up), taps.double().expand(n_out, k)[hit], accumulate=True)
        matrix = matrix.to(device=device, dtype=dtype)
        if len(_axis_matrices) > 512:
            _axis_matrices.clear()
        _axis_matrices[key] = matrix
    return matrix


def _resample2x(images, filt, up, crop=0):
    """2x upsampling (up=True) or downsampling of [N, C, H, W] with the 1-D filter `filt`, centred as
    `upfirdn2d.upsample2d(x, filt, up=2)` / `downsample2d(x, filt, down=2, padding=-crop, flip_filter=True)`."""
    h, w = images.shape[2:]
    if images.device.type != 'cpu' or max(h, w) > _MATRIX_MAX_SIZE or images.dtype not in (torch.float32, torch.float64):
        if up:
            return upfirdn2d.upsample2d(x=images, f=filt, up=2)
        return upfirdn2d.downsample2d(x=images, f=filt, down=2, padding=-crop, flip_filter=True)
    k = filt.shape[0]
    # Per axis: upsample2d pads the stuffed signal by ((k + 1) // 2, (k - 1) // 2) and convolves
    # (flipped taps, gain 2 per axis); downsample2d pads by ((k - 1) // 2, (k - 1) // 2) and correlates.
    taps = filt.flip(0) * 2 if up else filt
    factor, pads = (2, 1), ((k + 1) // 2, (k - 1) // 2)
    if not up:
        factor, pads = (1, 2), ((k - 1) // 2 - crop, (k - 1) // 2 - crop)
    rows = _axis_matrix(h, taps, *factor, *pads, images.device, images.dtype)    # [H', H]
    cols = _axis_matrix(w, taps, *factor, *pads, images.device, images.dtype)    # [W', W]
    return rows @ (images @ cols.t())


def _warp(images, inv, filt):
    """Resample images [N, C, H, W] with the inverse transform inv [N, 3, 3].

    inv maps output pixel coordinates to input pixel coordinates, both measured from the image
    centre. filt is the 1-D low-pass (setup_filter output) used for 2x up- and downsampling.
    """
    n, c, h, w = images.shape
    dev = images.device
    margin = filt.shape[0] // 4  # the filter covers this many output pixels on each side
    cx, cy = (w - 1) / 2, (h - 1) / 2

    # Pad just enough for every sample's transformed frame plus the filter support.
    corners = misc.constant([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], device=dev)
    xy = (inv @ corners)[:, :2, :].permute(1, 0, 2).flatten(1)  # [2, N*4]
    reach = torch.cat([-xy, xy]).amax(dim=1)                    # left, top, right, bottom
    pads = reach + misc.constant([2 * margin - cx, 2 * margin - cy] * 2, device=dev)
    pads = pads.clamp(min=0).minimum(misc.constant([w - 1, h - 1] * 2, device=dev)).ceil()
    left, top, right, bottom = (int(v) for v in pads.tolist())
    images = _reflect_pad(images, [left, right, top, bottom])
    inv = _translate2d((left - right) / 2, (top - bottom) / 2, n, dev) @ inv

    # Work at twice the resolution. The 12-tap filter's effective centre is tap 5 rather than
    # 5.5, which offsets the upsampled grid by half a fine pixel from the plain 2x scaling.
    images = _resample2x(images, filt, up=True)
    to_fine = _translate2d(-0.5, -0.5, n, dev) @ _scale2d(2, 2, n, dev)
    to_coarse = _scale2d(0.5, 0.5, n, dev) @ _translate2d(0.5, 0.5, n, dev)
    inv = to_fine @ inv @ to_coarse

    # The output frame keeps `margin` extra pixels per side, cropped again by downsample2d.
    out_h, out_w = (h + 2 * margin) * 2, (w + 2 * margin) * 2
    in_h, in_w = images.shape[2:]
    theta = _scale2d(2 / in_w, 2 / in_h, n, dev) @ inv @ _scale2d(out_w / 2, out_h / 2, n, dev)
    grid = torch.nn.functional.affine_grid(theta[:, :2, :], [n, c, out_h, out_w], align_corners=False)
    images = grid_sample_gradfix.grid_sample(images, grid)
    return _resample2x(images, filt, up=False, crop=2 * margin)

#----------------------------------------------------------------------------

@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    """ADA augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks
    with Limited Data", Appendix B).

    Each multiplier argument (xflip ... cutout) scales the probability `p` with which its
    transform is applied to a sample; the remaining arguments set the parameter distributions.
    `p` is a scalar float32 buffer, initially 0, that the training loop updates in place.
    """

    def __init__(self,
        xflip=0, rotate90=0, xint=0, xint_max=0.125,      # Pixel blitting.
        scale=0, rotate=0, aniso=0, xfrac=0,              # General geometric transforms.
        scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
        brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,  # Colour transforms.
        brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
        imgfilter=0, imgfilter_bands=[1,1,1,1], imgfilter_std=1,    # Image-space filtering.
        noise=0, cutout=0, noise_std=0.1, cutout_size=0.5,          # Corruptions.
    ):
        super().__init__()
        multipliers = dict(xflip=xflip, rotate90=rotate90, xint=xint, scale=scale, rotate=rotate,
            aniso=aniso, xfrac=xfrac, brightness=brightness, contrast=contrast, lumaflip=lumaflip,
            hue=hue, saturation=saturation, imgfilter=imgfilter, noise=noise, cutout=cutout)
        for name, value in multipliers.items():
            if not float(value) >= 0:
                raise ValueError(f'AugmentPipe: {name}={value!r} is not accepted; '
                                 f'probability multipliers must be non-negative numbers')
            setattr(self, name, float(value))
        self.xint_max, self.scale_std, self.rotate_max = float(xint_max), float(scale_std), float(rotate_max)
        self.aniso_std, self.xfrac_std = float(aniso_std), float(xfrac_std)
        self.brightness_std, self.contrast_std = float(brightness_std), float(contrast_std)
        self.hue_max, self.saturation_std = float(hue_max), float(saturation_std)
        self.imgfilter_bands, self.imgfilter_std = list(imgfilter_bands), float(imgfilter_std)
        self.noise_std, self.cutout_size = float(noise_std), float(cutout_size)

        self.register_buffer('p', torch.zeros([]))
        self.register_buffer('Hz_geom', upfirdn2d.setup_filter(_SYM6_LOWPASS))
        self.register_buffer('Hz_fbank', torch.as_tensor(_octave_filter_bank(_sym2_lowpass()), dtype=torch.float32))
        if len(self.imgfilter_bands) != self.Hz_fbank.shape[0]:
            raise ValueError(f'AugmentPipe: imgfilter_bands={imgfilter_bands!r} is not accepted; '
                             f'expected {self.Hz_fbank.shape[0]} band strengths')

    def forward(self, images, debug_percentile=None):
        """Augment images [N, C, H, W] (C = 1 or 3 when colour transforms are on).

        Returns a tensor of the same shape and dtype (computed in float32), differentiable
        w.r.t. `images` to any order.
        With `debug_percentile` in [0, 1], every enabled transform is applied to every sample
        with its parameter at that percentile instead of a random draw (for visual checks).
        """
        if images.ndim != 4:
            raise ValueError(f'AugmentPipe expects images of shape [N, C, H, W], got {list(images.shape)}')
        if images.shape[0] == 0:
            return images
        dtype = images.dtype
        images = images.to(torch.float32)
        draws = _Draws(images.shape[0], images.device, debug_percentile)
        if self.xflip > 0 or self.rotate90 > 0 or self.xint > 0:
            images = self._blit(images, draws)
        if self.scale > 0 or self.rotate > 0 or self.aniso > 0 or self.xfrac > 0:
            images = _warp(images, self._geometry(images.shape, draws), self.Hz_geom)
        images = self._color(images, draws)
        if self.imgfilter > 0:
            images = self._filter(images, draws)
        if self.noise > 0:
            images = self._noise(images, draws)
        if self.cutout > 0:
            images = self._cutout(images, draws)
        return images.to(dtype)

    def _blit(self, images, draws):
        """Per-sample x-flip, then rotation by k*90 degrees, then integer translation (reflecting)."""
        n, c, h, w = images.shape
        dev = images.device
        flip = torch.zeros([n], device=dev)
        quarter = torch.zeros([n], device=dev)
        shift = torch.zeros([n, 2], device=dev)
        if self.xflip > 0:
            flip = draws.gate(torch.floor(draws.uniform() * 2), self.xflip * self.p, 0, lambda u: np.floor(u * 2))
        if self.rotate90 > 0:
            quarter = draws.gate(torch.floor(draws.uniform() * 4), self.rotate90 * self.p, 0, lambda u: np.floor(u * 4))
        if self.xint > 0:
            frac = (draws.uniform(2) * 2 - 1) * self.xint_max
            frac = draws.gate(frac, self.xint * self.p, 0, lambda u: (u * 2 - 1) * self.xint_max)
            shift = torch.round(frac * misc.constant([w, h], device=dev))

        # Trace every output pixel back to its source, in doubled centre-relative coordinates
        # (integers for any size): undo the translation, then the rotation, then the flip.
        ys, xs = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing='ij')
        x = (2 * xs - (w - 1))[None] - 2 * shift[:, 0, None, None].long()
        y = (2 * ys - (h - 1))[None] - 2 * shift[:, 1, None, None].long()
        k = quarter.long()[:, None, None]
        cos = misc.constant([1, 0, -1, 0], dtype=torch.int64, device=dev)[k]
        sin = misc.constant([0, 1, 0, -1], dtype=torch.int64, device=dev)[k]
        x, y = cos * x - sin * y, sin * x + cos * y  # output of torch.rot90(src, k, dims=[2, 3])
        x = torch.where(flip.long()[:, None, None] == 1, -x, x)
        src_x = _reflect_index(torch.div(x + (w - 1), 2, rounding_mode='floor'), w)
        src_y = _reflect_index(torch.div(y + (h - 1), 2, rounding_mode='floor'), h)
        index = (src_y * w + src_x).reshape(n, 1, h * w).expand(n, c, h * w)
        return images.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)

    def _geometry(self, shape, draws):
        """Draw the general geometric transforms; returns their inverse [N, 3, 3] (output -> input)."""
        n, _, h, w = shape
        dev = draws.device
        inv = misc.constant(np.eye(3), device=dev).expand(n, 3, 3)
        q = _normal_quantile
        if self.scale > 0:
            s = torch.exp2(draws.normal() * self.scale_std)
            s = draws.gate(s, self.scale * self.p, 1, lambda u: 2 ** (q(u) * self.scale_std))
            inv = inv @ _scale2d(1 / s, 1 / s, n, dev)
        # Two rotations, each with probability p_rot, so that some rotation happens with
        # probability rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            theta = (draws.uniform() * 2 - 1) * np.pi * self.rotate_max
            theta = draws.gate(theta, p_rot, 0, lambda u: (u * 2 - 1) * np.pi * self.rotate_max)
            inv = inv @ _rotate2d(-theta, n, dev)
        if self.aniso > 0:
            s = torch.exp2(draws.normal() * self.aniso_std)
            s = draws.gate(s, self.aniso * self.p, 1, lambda u: 2 ** (q(u) * self.aniso_std))
            inv = inv @ _scale2d(1 / s, s, n, dev)
        if self.rotate > 0:
            theta = (draws.uniform() * 2 - 1) * np.pi * self.rotate_max
            theta = draws.gate(theta, p_rot, 0, lambda u: 0)  # the pre-rotation shows the percentile
            inv = inv @ _rotate2d(-theta, n, dev)
        if self.xfrac > 0:
            t = draws.normal(2) * self.xfrac_std
            t = draws.gate(t, self.xfrac * self.p, 0, lambda u: q(u) * self.xfrac_std)
            inv = inv @ _translate2d(-t[:, 0] * w, -t[:, 1] * h, n, dev)
        return inv

    def _color(self, images, draws):
        """Brightness, contrast, luma flip, hue rotation and saturation as one affine colour map."""
        n, c, h, w = images.shape
        dev = images.device
        chroma = c > 1  # hue and saturation need colour channels
        if not (self.brightness > 0 or self.contrast > 0 or self.lumaflip > 0
                or (chroma and (self.hue > 0 or self.saturation > 0))):
            return images
        if c not in (1, 3):
            raise ValueError(f'AugmentPipe colour transforms support 1 or 3 channels, got {c}')
        q = _normal_quantile
        eye = misc.constant(np.eye(4), device=dev)
        mat = eye.expand(n, 4, 4)
        luma_proj = misc.constant(np.outer(_LUMA, _LUMA), device=dev)
        if self.brightness > 0:
            b = draws.normal() * self.brightness_std
            b = draws.gate(b, self.brightness * self.p, 0, lambda u: q(u) * self.brightness_std)
            mat = _translate3d(b, n, dev) @ mat
        if self.contrast > 0:
            s = torch.exp2(draws.normal() * self.contrast_std)
            s = draws.gate(s, self.contrast * self.p, 1, lambda u: 2 ** (q(u) * self.contrast_std))
            mat = _scale3d(s, n, dev) @ mat
        if self.lumaflip > 0:
            i = torch.floor(draws.uniform(1, 1) * 2)
            i = draws.gate(i, self.lumaflip * self.p, 0, lambda u: np.floor(u * 2))
            mat = (eye - 2 * luma_proj * i) @ mat  # Householder reflection of the luma axis
        if chroma and self.hue > 0:
            theta = (draws.uniform() * 2 - 1) * np.pi * self.hue_max
            theta = draws.gate(theta, self.hue * self.p, 0, lambda u: (u * 2 - 1) * np.pi * self.hue_max)
            mat = _rotate_about_luma(theta, n, dev) @ mat
        if chroma and self.saturation > 0:
            s = torch.exp2(draws.normal(1, 1) * self.saturation_std)
            s = draws.gate(s, self.saturation * self.p, 1, lambda u: 2 ** (q(u) * self.saturation_std))
            mat = (luma_proj + (eye - luma_proj) * s) @ mat

        flat = images.reshape(n, c, h * w)
        if c == 3:
            flat = mat[:, :3, :3] @ flat + mat[:, :3, 3:]
        else:
            # Grayscale: the average of the three RGB rows acting on (v, v, v).
            row = mat[:, :3, :].mean(dim=1, keepdim=True)
            flat = flat * row[:, :, :3].sum(dim=2, keepdim=True) + row[:, :, 3:]
        return flat.reshape(n, c, h, w)

    def _filter(self, images, draws):
        """Random per-band gains (lognormal), normalised to keep the expected image power."""
        n, c, h, w = images.shape
        dev = images.device
        num_bands, taps = self.Hz_fbank.shape
        # Relative power of the bands in natural images (roughly 1/f): mostly the lowest octave.
        band_power = misc.constant(np.array([10, 1, 1, 1]) / 13, device=dev)
        gains = torch.ones([n, num_bands], device=dev)
        for band, strength in enumerate(self.imgfilter_bands):
            g = torch.exp2(draws.normal() * self.imgfilter_std)
            at = (lambda u: 2 ** (_normal_quantile(u) * self.imgfilter_std)) if strength > 0 else (lambda u: 1)
            g = draws.gate(g, self.imgfilter * self.p * strength, 1, at)
            onehot = misc.constant(np.eye(num_bands)[band], device=dev)
            t = 1 + onehot * (g[:, None] - 1)
            gains = gains * t / (band_power * t.square()).sum(dim=1, keepdim=True).sqrt()

        kernel = (gains @ self.Hz_fbank).repeat_interleave(c, dim=0)  # [N*C, taps]
        x = _reflect_pad(images.reshape(1, n * c, h, w), [taps // 2] * 4)
        x = conv2d_gradfix.conv2d(input=x, weight=kernel[:, None, None, :], groups=n * c)
        x = conv2d_gradfix.conv2d(input=x, weight=kernel[:, None, :, None], groups=n * c)
        return x.reshape(n, c, h, w)

    def _noise(self, images, draws):
        """Additive Gaussian noise with a per-sample, half-normally distributed std."""
        sigma = draws.normal(1, 1, 1).abs() * self.noise_std
        sigma = draws.gate(sigma, self.noise * self.p, 0, lambda u: _half_normal_quantile(u) * self.noise_std)
        return images + torch.randn_like(images) * sigma

    def _cutout(self, images, draws):
        """Zero a rectangle of cutout_size * (W, H) at a uniformly random centre."""
        n, _, h, w = images.shape
        size = torch.full([n, 2, 1, 1, 1], self.cutout_size, device=images.device)
        size = draws.gate(size, self.cutout * self.p, 0, lambda u: self.cutout_size)
        centre = draws.uniform(2, 1, 1, 1)
        if draws.percentile is not None:
            centre = torch.full_like(centre, draws.percentile)
        # Pixel centres in [0, 1]; a pixel survives if it is outside the box along either axis.
        px = (torch.arange(w, device=images.device).reshape(1, 1, 1, w) + 0.5) / w
        py = (torch.arange(h, device=images.device).reshape(1, 1, h, 1) + 0.5) / h
        outside_x = (px - centre[:, 0]).abs() >= size[:, 0] / 2
        outside_y = (py - centre[:, 1]).abs() >= size[:, 1] / 2
        return images * (outside_x | outside_y).to(images.dtype)

#----------------------------------------------------------------------------
