r"""Standalone FID: two image folders, or a folder and saved statistics (`.npz` with `mu`, `sigma`).

    python -m metrics.fid_folders datasets/real_images out/generated
    python -m metrics.fid_folders out/generated real-stats.npz
    python -m metrics.fid_folders datasets/real_images --save-stats=real-stats.npz

Folders are searched recursively for every image file PIL can read; images are converted to RGB
and may differ in size (the Inception detector resizes them itself). Uses the same detector file
and lookup as calc_metrics.py (--detector-dir, $STYLEGAN_PLUS_DETECTOR_DIR, download cache).
"""

import os

import click
import numpy as np
import PIL.Image
import torch

from metrics import detectors
from stylegan_plus.cli import device as devices
from stylegan_plus.data.datasets.image_folder import file_ext, image_extensions

from .feature_stats import FeatureStats
from .frechet_inception_distance import DETECTOR_KWARGS, DETECTOR_URL, fid_from_stats
from .progress import ProgressMonitor


def list_images(folder):
    """Sorted paths of every image file under `folder` (recursive)."""
    exts = image_extensions()
    paths = [os.path.join(root, name) for root, _dirs, names in os.walk(folder) for name in names
             if file_ext(name) in exts]
    return sorted(paths)


def _read_rgb(path):
    with PIL.Image.open(path) as img:
        return np.asarray(img.convert('RGB'), dtype=np.uint8)


def image_batches(paths, batch_size):
    """uint8 [N, 3, H, W] batches of consecutive images; a change of size starts a new batch."""
    batch = []
    for path in paths:
        pixels = _read_rgb(path)
        if batch and (len(batch) == batch_size or pixels.shape != batch[0].shape):
            yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
            batch = []
        batch.append(pixels)
    if batch:
        yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)


@torch.no_grad()
def folder_statistics(folder, device, batch_size=64, verbose=True):
    """Inception feature statistics of every image in `folder`: (mu float64 [2048], sigma [2048, 2048])."""
    paths = list_images(folder)
    if len(paths) < 2:
        raise click.BadParameter(f'{folder!r} holds {len(paths)} image(s); FID needs at least 2',
                                 param_hint='PATH')
    detector = detectors.load_detector(DETECTOR_URL, device, verbose=verbose)
    stats = FeatureStats(capture_mean_cov=True)
    progress = ProgressMonitor(tag=os.path.basename(os.path.normpath(folder)), num_items=len(paths), verbose=verbose)
    for images in image_batches(paths, batch_size):
        stats.append_torch(detector(images.to(device), **DETECTOR_KWARGS))
        progress.update(stats.num_items)
    progress.finish()
    return stats.get_mean_cov()


def load_statistics(path):
    """(mu, sigma) from an `.npz` with keys `mu` [F] and `sigma` [F, F]."""
    try:
        with np.load(path) as npz:
            mu, sigma = npz['mu'], npz['sigma']
    except Exception as err:  # not an npz, missing keys, unreadable
        raise click.BadParameter(f'cannot read "mu" and "sigma" from {path!r}: {type(err).__name__}: {err}',
                                 param_hint='PATH') from err
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise click.BadParameter(f'{path!r}: mu {list(mu.shape)} and sigma {list(sigma.shape)} do not fit '
                                 f'([F] and [F, F])', param_hint='PATH')
    return mu, sigma


def _statistics(path, device, batch_size, verbose):
    if os.path.isdir(path):
        return folder_statistics(path, device, batch_size, verbose)
    if path.lower().endswith('.npz'):
        return load_statistics(path)
    raise click.BadParameter(f'{path!r} is neither an image folder nor a .npz statistics file', param_hint='PATH')


@click.command()
@click.argument('path_a', metavar='PATH_A', type=click.Path(exists=True))
@click.argument('path_b', metavar='[PATH_B]', type=click.Path(exists=True), required=False)
@click.option('--save-stats', help='Write the statistics of PATH_A (a folder) to this .npz (keys mu, sigma)',
              metavar='FILE')
@click.option('--batch', 'batch_size', help='Images per detector call', type=click.IntRange(min=1), default=64,
              show_default=True)
@click.option('--device', 'device_name', help=devices.DEVICE_HELP, metavar='DEVICE')
@click.option('--detector-dir', help=f'Folder or base URL searched first for inception-2015-12-05.pt  '
              f'[default: ${detectors.DETECTOR_DIR_ENV}]', metavar='DIR')
@click.option('--verbose', help='Show progress and throughput', type=bool, default=True, show_default=True,
              metavar='BOOL')
def main(path_a, path_b, save_stats, batch_size, device_name, detector_dir, verbose):
    """FID between PATH_A and PATH_B, each an image folder or a statistics .npz."""
    if path_b is None and save_stats is None:
        raise click.UsageError('give a second PATH to compare with, or --save-stats=FILE to store the statistics')
    if save_stats is not None and not os.path.isdir(path_a):
        raise click.BadParameter(f'--save-stats needs PATH_A to be an image folder, got {path_a!r}',
                                 param_hint='--save-stats')
    device = devices.resolve_device(device_name)
    detectors.set_detector_dir(detector_dir)
    try:
        if any(os.path.isdir(p) for p in (path_a, path_b) if p is not None):
            detectors.resolve_detector(DETECTOR_URL, verbose=verbose)  # fail before reading any image
        mu_a, sigma_a = _statistics(path_a, device, batch_size, verbose)
        if save_stats is not None:
            os.makedirs(os.path.dirname(os.path.abspath(save_stats)), exist_ok=True)
            np.savez(save_stats, mu=mu_a, sigma=sigma_a)
            print(f'Saved statistics of {path_a} to {save_stats}')
        if path_b is not None:
            mu_b, sigma_b = _statistics(path_b, device, batch_size, verbose)
            if mu_a.shape != mu_b.shape:
                raise click.UsageError(f'the statistics have different feature sizes: {mu_a.shape[0]} and '
                                       f'{mu_b.shape[0]}')
            print(f'FID: {fid_from_stats(mu_a, sigma_a, mu_b, sigma_b):.6f}')
    except (detectors.DetectorNotFoundError, detectors.DetectorChecksumError) as err:
        raise click.ClickException(str(err)) from None


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
