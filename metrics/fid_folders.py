"""FID of image folders and saved statistics (`.npz` with `mu`, `sigma`), outside a training run.

The command line is `python -m stylegan_plus.cli.fid_folders A B` (stylegan_plus/cli/fid_folders.py).

Folders are searched recursively for every image file PIL can read; images are converted to RGB
and may differ in size (the Inception detector resizes them itself). Uses the same detector file
and lookup as calc_metrics.py (--detector-dir, $STYLEGAN_PLUS_DETECTOR_DIR, download cache).
"""

import os

import numpy as np
import PIL.Image
import torch

from metrics import detectors
from stylegan_plus.data.datasets.image_folder import file_ext, image_extensions

from .feature_stats import FeatureStats
from .frechet_inception_distance import DETECTOR_KWARGS, DETECTOR_URL
from .progress import ProgressMonitor


class StatisticsSourceError(ValueError):
    """A path that cannot give feature statistics (too few images, not an npz, wrong shapes); names it."""


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
    """Inception feature statistics of every image in `folder`: (mu float64 [2048], sigma [2048, 2048]).

    device: torch.device of the detector. Raises StatisticsSourceError when fewer than 2 images are found.
    """
    paths = list_images(folder)
    if len(paths) < 2:
        raise StatisticsSourceError(f'{folder!r} holds {len(paths)} image(s); FID needs at least 2')
    detector = detectors.load_detector(DETECTOR_URL, device, verbose=verbose)
    stats = FeatureStats(capture_mean_cov=True)
    progress = ProgressMonitor(tag=os.path.basename(os.path.normpath(folder)), num_items=len(paths), verbose=verbose)
    for images in image_batches(paths, batch_size):
        stats.append_torch(detector(images.to(device), **DETECTOR_KWARGS))
        progress.update(stats.num_items)
    progress.finish()
    return stats.get_mean_cov()


def load_statistics(path):
    """(mu [F], sigma [F, F]) from an `.npz` with those keys; StatisticsSourceError names a bad file."""
    try:
        with np.load(path) as npz:
            mu, sigma = npz['mu'], npz['sigma']
    except Exception as err:  # not an npz, missing keys, unreadable
        raise StatisticsSourceError(f'cannot read "mu" and "sigma" from {path!r}: {type(err).__name__}: {err}') from err
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise StatisticsSourceError(f'{path!r}: mu {list(mu.shape)} and sigma {list(sigma.shape)} do not fit '
                                    f'([F] and [F, F])')
    return mu, sigma


def statistics_of(path, device, batch_size=64, verbose=True):
    """(mu, sigma) of an image folder (computed) or a statistics `.npz` (read); see the two readers."""
    if os.path.isdir(path):
        return folder_statistics(path, device, batch_size, verbose)
    if path.lower().endswith('.npz'):
        return load_statistics(path)
    raise StatisticsSourceError(f'{path!r} is neither an image folder nor a .npz statistics file')
