"""Project photos into a generator's latent space W (or W+): the library behind `projector.py`.

The optimisation follows the StyleGAN2 paper (Karras et al., 2020, appendix D) with the official
defaults: start from the mean w, minimise the LPIPS distance (VGG16 detector) between G's image
and the target, jointly over w and every `noise_const` buffer, with
- Gaussian noise on w that fades out quadratically over the first `noise_ramp_length` of the run,
- a learning rate that ramps up linearly for `lr_rampup_length` and down along a cosine for the
  last `lr_rampdown_length`,
- a penalty on the autocorrelation of the noise maps at every scale down to 8x8, and after each
  step the noise maps re-normalised to zero mean and unit variance.
`w_plus=True` optimises one w per synthesis layer instead of a single broadcast vector.
"""

import copy
import os
import time

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

from metrics import detectors
from stylegan_plus.sampling import memory_budget
from stylegan_plus.networks.inference import describe_generator, has_mapping_synthesis, prepare_generator

W_STATS_SEED = 123        # RandomState seed of the z samples that define the mean w
_W_STATS_CHUNK = 1000     # most z per mapping-network call when estimating w statistics (fewer if memory is short)
_LPIPS_MAX_SIZE = 256     # images larger than this are area-downsampled before the VGG16 detector

# ---------------------------------------------------------------------------------------------------
# Targets.


def _without_alpha(img):
    """Composite a transparent image over white (cut-out photos would otherwise show hidden pixels)."""
    if img.mode in ('RGBA', 'LA') or (img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        background = PIL.Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert('RGB')
    return img


def prepare_target(img, resolution, channels):
    """FFHQ/AFHQ-style target: centre crop to a square, Lanczos resize to `resolution`.

    img: PIL image of any size and mode (EXIF rotation applied, transparency over white, grayscale
    or palette converted). channels: 1 (mode L) or 3 (RGB). Returns uint8 [resolution, resolution, channels].
    """
    img = PIL.ImageOps.exif_transpose(img)
    img = _without_alpha(img).convert('L' if channels == 1 else 'RGB')
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    img = img.resize((resolution, resolution), PIL.Image.LANCZOS)
    pixels = np.array(img, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def load_target(path, resolution, channels):
    """`prepare_target` of the image file at `path`; ValueError naming the file if it is no image."""
    try:
        with PIL.Image.open(path) as img:
            img.load()
            return prepare_target(img, resolution, channels)
    except (OSError, PIL.Image.DecompressionBombError) as err:
        raise ValueError(f'{path!r} is not a readable image: {err}') from err

# ---------------------------------------------------------------------------------------------------
# Pieces of the optimisation.


@torch.no_grad()
def w_statistics(G, num_samples, device, seed=W_STATS_SEED):
    """Mean and spread of w over `num_samples` z drawn with RandomState(seed).

    The mapping network runs on chunks sized by `memory_budget.generation_chunk`.
    Returns (w_avg float32 [1, 1, w_dim] numpy, w_std float = sqrt(E|w - w_avg|^2)).
    """
    z = np.random.RandomState(seed).randn(num_samples, G.z_dim)
    per_call = memory_budget.generation_chunk(G.mapping, device, limit=_W_STATS_CHUNK)
    ws = []
    for chunk in np.array_split(z, max(1, -(-num_samples // per_call))):
        z_chunk = torch.from_numpy(chunk).to(device=device, dtype=torch.float32)
        c = torch.zeros([chunk.shape[0], G.c_dim], device=device)
        ws.append(G.mapping(z_chunk, c)[:, :1, :].cpu().numpy().astype(np.float32))
    w = np.concatenate(ws)
    w_avg = w.mean(axis=0, keepdims=True)
    return w_avg, float((np.sum((w - w_avg) ** 2) / num_samples) ** 0.5)


def learning_rate(t, initial_learning_rate=0.1, lr_rampdown_length=0.25, lr_rampup_length=0.05):
    """Learning rate at progress t = step / num_steps in [0, 1)."""
    down = min(1.0, (1.0 - t) / lr_rampdown_length)
    down = 0.5 - 0.5 * np.cos(down * np.pi)
    return initial_learning_rate * down * min(1.0, t / lr_rampup_length)


def w_noise_scale(t, w_std, initial_noise_factor=0.05, noise_ramp_length=0.75):
    """Standard deviation of the exploration noise added to w at progress t."""
    return w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2


def noise_regularization(noise_bufs):
    """Sum over noise maps and scales (halving down to 8x8) of squared shift-by-one autocorrelations."""
    loss = 0.0
    for buf in noise_bufs:
        noise = buf[None, None, :, :]
        while True:
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return loss


def lpips_input(img):
    """[N, C, H, W] float in [0, 255] -> [N, 3, <=256, <=256] for vgg16(..., resize_images=False)."""
    if img.shape[1] == 1:
        img = img.repeat([1, 3, 1, 1])
    if img.shape[2] > _LPIPS_MAX_SIZE:
        img = F.interpolate(img, size=(_LPIPS_MAX_SIZE, _LPIPS_MAX_SIZE), mode='area')
    return img

# ---------------------------------------------------------------------------------------------------
# Projection.


def _step_reporter(num_steps, verbose, progress, log):
    """(report(step, dist, loss), close()) printing per-step lines and/or a tqdm bar."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num_steps, unit='step', leave=False, dynamic_ncols=True)
        log = tqdm.write if log is print else log  # keep the bar below the lines

    def report(step, dist, loss):
        if verbose:
            log(f'step {step + 1:>4d}/{num_steps}: dist {dist:.4f} loss {loss:.4f}')
        if bar is not None:
            bar.set_postfix(dist=f'{dist:.4f}', refresh=False)
            bar.update(1)

    return report, (bar.close if bar is not None else (lambda: None))


def project(G, target, *, num_steps=1000, w_avg_samples=10000, initial_learning_rate=0.1, initial_noise_factor=0.05,
            lr_rampdown_length=0.25, lr_rampup_length=0.05, noise_ramp_length=0.75, regularize_noise_weight=1e5,
            verbose=False, device, w_plus=False, vgg16=None, progress=False, log=print):
    """Find the w whose image matches `target`.

    G:      generator (not modified; a copy is optimised). target: [C, H, W] tensor, values in
            [0, 255] (uint8 range), C = G.img_channels, H = W = G.img_resolution.
    vgg16:  the LPIPS detector (default: loaded via metrics.detectors).
    w_plus: optimise one w per layer instead of one broadcast w.
    verbose prints one line per step (dist = LPIPS distance); progress shows a tqdm bar; both end
    with the throughput in steps/s. Returns float32 [num_steps, num_ws, w_dim]: w after each step.
    """
    if not has_mapping_synthesis(G):
        raise ValueError(f'projection needs a generator with a mapping/synthesis split (StyleGAN2); '
                         f'got {describe_generator(G)}')
    expected = (G.img_channels, G.img_resolution, G.img_resolution)
    if tuple(target.shape) != expected:
        raise ValueError(f'target must have shape {list(expected)}, got {list(target.shape)}')
    G = prepare_generator(copy.deepcopy(G), torch.device(device), log=log if verbose else (lambda *a: None))
    w_avg, w_std = w_statistics(G, w_avg_samples, device)
    if vgg16 is None:
        vgg16 = detectors.load_detector(detectors.VGG16_URL, device, verbose=verbose)
    target_features = vgg16(lpips_input(target.unsqueeze(0).to(device, torch.float32)), resize_images=False,
                            return_lpips=True)

    num_ws = G.mapping.num_ws
    w_init = np.repeat(w_avg, num_ws, axis=1) if w_plus else w_avg
    w_opt = torch.tensor(w_init, dtype=torch.float32, device=device, requires_grad=True)
    noise_bufs = [buf for name, buf in G.synthesis.named_buffers() if 'noise_const' in name]
    for buf in noise_bufs:
        buf[:] = torch.randn_like(buf)
        buf.requires_grad = True
    optimizer = torch.optim.Adam([w_opt] + noise_bufs, betas=(0.9, 0.999), lr=initial_learning_rate)

    w_out = torch.zeros([num_steps, num_ws, w_opt.shape[2]], dtype=torch.float32, device=device)
    report, close = _step_reporter(num_steps, verbose, progress, log)
    start = time.time()
    for step in range(num_steps):
        t = step / num_steps
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(t, initial_learning_rate, lr_rampdown_length, lr_rampup_length)
        w_noise = torch.randn_like(w_opt) * w_noise_scale(t, w_std, initial_noise_factor, noise_ramp_length)
        ws = (w_opt + w_noise).expand([1, num_ws, -1])
        synth = (G.synthesis(ws, noise_mode='const') + 1) * (255 / 2)
        dist = (target_features - vgg16(lpips_input(synth), resize_images=False, return_lpips=True)).square().sum()
        loss = dist + noise_regularization(noise_bufs) * regularize_noise_weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        report(step, float(dist.detach()), float(loss.detach()))
        w_out[step] = w_opt.detach()[0]
        with torch.no_grad():
            for buf in noise_bufs:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
    close()
    if verbose or progress:
        elapsed = max(time.time() - start, 1e-9)
        log(f'{num_steps} steps in {elapsed:.1f} s ({num_steps / elapsed:.2f} steps/s)')
    return w_out

# ---------------------------------------------------------------------------------------------------
# Outputs.


@torch.no_grad()
def render(G, ws):
    """Images of ws [N, num_ws, w_dim] with constant noise -> uint8 numpy [N, H, W, C]."""
    img = G.synthesis(ws, noise_mode='const')
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


def video_support():
    """(True, '') if proj.mp4 can be written, else (False, what to install)."""
    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False, 'proj.mp4 needs the packages imageio and imageio-ffmpeg: pip install imageio imageio-ffmpeg'
    return True, ''


def write_video(path, target, frames, fps=10):
    """proj.mp4: target and each frame side by side (libx264, 16 Mbit/s, `fps` frames per second).

    target: uint8 [H, W, C]; frames: iterable of uint8 [H, W, C]; C = 1 is written as gray RGB.
    The video is written under a temporary name and renamed when complete.
    """
    import imageio
    rgb = lambda x: np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x  # noqa: E731
    folder, name = os.path.split(os.path.abspath(path))
    partial = os.path.join(folder, f'.{name}.partial.mp4')  # imageio picks the format from the extension
    try:
        with imageio.get_writer(partial, mode='I', fps=fps, codec='libx264', bitrate='16M') as writer:
            for frame in frames:
                writer.append_data(np.concatenate([rgb(target), rgb(frame)], axis=1))
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
