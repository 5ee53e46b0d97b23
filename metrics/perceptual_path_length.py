"""Perceptual Path Length (Karras et al., 2019, arXiv:1812.04948, section 3).

PPL measures how much the image changes, in LPIPS terms, for a small step `epsilon` along a
latent interpolation path: E[ d(G(l(t)), G(l(t + eps))) / eps^2 ], with l a spherical (z space)
or linear (w space) interpolation between two random latents, t uniform in [0, 1] ("full") or
t = 0 ("end"). Distances outside the 1st..99th percentile are discarded before averaging.
"""

import numpy as np
import torch

from metrics.detectors import VGG16_URL
from stylegan_plus.networks.inference import describe_generator, has_mapping_synthesis
from stylegan_plus.sampling import prior

from . import metric_utils
from .feature_stats import all_gather_interleaved

DETECTOR_URL = VGG16_URL
SPACES = ('z', 'w')
SAMPLINGS = ('full', 'end')


class PathLengthUnsupportedError(ValueError):
    """PPL asked of a generator without a mapping network (DCGAN, MLP).

    `calc_metrics.py` checks the generator before any work and shows this as a usage error.
    """


def check_generator(G):
    """Raise PathLengthUnsupportedError unless G has the `mapping`/`synthesis` split PPL interpolates through."""
    if not has_mapping_synthesis(G):
        raise PathLengthUnsupportedError(
            f'path-length metrics (ppl*) interpolate latents through G.mapping and render them with G.synthesis; '
            f'this pickle\'s {describe_generator(G)} has no mapping/synthesis split (StyleGAN2 only). '
            f'Image metrics (fid*, kid*, pr*, is*) work with it.')


def slerp(a, b, t):
    """Spherical interpolation between the directions of a and b [N, D] at t [N, 1]; unit-norm [N, D]."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(dim=-1, keepdim=True)
    angle = t * torch.acos(cos)
    ortho = b - cos * a
    ortho = ortho / ortho.norm(dim=-1, keepdim=True)
    out = a * torch.cos(angle) + ortho * torch.sin(angle)
    return out / out.norm(dim=-1, keepdim=True)


def _path_endpoints(G, c, epsilon, space, sampling, z_dist='normal'):
    """ws [2N, num_ws, w_dim]: the first N at t, the last N at t + epsilon along random paths.

    The path ends are drawn from the snapshot's prior `z_dist`; in z space the path is the
    official slerp between their directions, whatever the prior.
    """
    n = c.shape[0]
    t = torch.rand([n], device=c.device) * (1 if sampling == 'full' else 0)
    z0, z1 = prior.draw_z(z_dist, n * 2, G.z_dim, c.device).chunk(2)
    if space == 'w':
        w0, w1 = G.mapping(z=torch.cat([z0, z1]), c=torch.cat([c, c])).chunk(2)
        t = t[:, None, None]
        return torch.cat([w0.lerp(w1, t), w0.lerp(w1, t + epsilon)])
    t = t[:, None]
    z_pair = torch.cat([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)])
    return G.mapping(z=z_pair, c=torch.cat([c, c]))


def _lpips_ready(img, G, crop):
    """Synthesis output [2N, C, H, W] in [-1, 1] -> [2N, 3, <=256, <=256] in [0, 255] for the VGG16 detector.

    crop keeps the central face region (rows 3/8..7/8, columns 2/8..6/8), as for FFHQ; images
    larger than 256 px are box-downsampled by an integer factor.
    """
    if crop:
        if img.shape[2] != img.shape[3]:
            raise ValueError(f'PPL cropping needs square images, got {img.shape[2]}x{img.shape[3]}')
        eighth = img.shape[2] // 8
        img = img[:, :, eighth * 3:eighth * 7, eighth * 2:eighth * 6]
    factor = G.img_resolution // 256
    if factor > 1:
        n, ch, h, w = img.shape
        img = img.reshape([n, ch, h // factor, factor, w // factor, factor]).mean([3, 5])
    img = (img + 1) * (255 / 2)
    return img.repeat([1, 3, 1, 1]) if img.shape[1] == 1 else img


def path_length_samples(G, vgg16, c, *, epsilon, space, sampling, crop, G_kwargs=None, z_dist='normal'):
    """One PPL sample per label row: float32 [N] of squared LPIPS distance / epsilon^2.

    G: generator (its noise_const buffers are re-randomised, so pass a private copy);
    c: labels [N, c_dim]; vgg16: detector called as vgg16(img, resize_images=False, return_lpips=True).
    """
    for name, buf in G.named_buffers():
        if name.endswith('.noise_const'):
            buf.copy_(torch.randn_like(buf))  # fresh noise per pair, shared by both ends of the pair
    ws = _path_endpoints(G, c, epsilon, space, sampling, z_dist)
    img = G.synthesis(ws=ws, noise_mode='const', force_fp32=True, **(G_kwargs or {}))
    lpips_t0, lpips_t1 = vgg16(_lpips_ready(img, G, crop), resize_images=False, return_lpips=True).chunk(2)
    return (lpips_t0 - lpips_t1).square().sum(dim=1) / epsilon ** 2


def ppl_from_samples(dist):
    """Mean of the samples between the 1st (lower) and 99th (higher) percentile; float."""
    dist = np.asarray(dist, dtype=np.float64)
    lo = np.percentile(dist, 1, method='lower')
    hi = np.percentile(dist, 99, method='higher')
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


@torch.no_grad()
def compute_ppl(opts, num_samples, epsilon, space, sampling, crop, batch_size, jit=False):
    """PPL of opts.G over `num_samples` pairs (each process draws `batch_size` pairs per round).

    space: 'z' or 'w'; sampling: 'full' or 'end'; crop: center crop for faces. NaN off rank 0.
    `jit` is accepted for the official signature; the sampler is not traced (it mutates buffers).
    """
    del jit
    if space not in SPACES or sampling not in SAMPLINGS:
        raise ValueError(f'space must be one of {SPACES} and sampling one of {SAMPLINGS}, got {space!r}, {sampling!r}')
    check_generator(opts.G)
    num_samples = opts.capped(num_samples)
    G = metric_utils.prepare_metric_generator(opts)
    labels = metric_utils.LabelSampler(opts, G.c_dim)
    vgg16 = metric_utils.get_feature_detector(DETECTOR_URL, device=opts.device, num_gpus=opts.num_gpus,
                                              rank=opts.rank, verbose=opts.progress.verbose)
    progress = opts.progress.sub(tag='ppl sampling', num_items=num_samples, unit='samples')
    samples, done = [], 0
    while done < num_samples:
        dist = path_length_samples(G, vgg16, labels(batch_size), epsilon=epsilon, space=space, sampling=sampling,
                                   crop=crop, G_kwargs=opts.G_kwargs, z_dist=opts.z_dist)
        samples.append(all_gather_interleaved(dist, opts.num_gpus))
        done += batch_size * opts.num_gpus
        progress.update(min(done, num_samples))
    progress.finish()
    if opts.rank != 0:
        return float('nan')
    return ppl_from_samples(torch.cat(samples)[:num_samples].cpu().numpy())
