r"""Standalone FID: two image folders, or a folder and saved statistics (`.npz` with `mu`, `sigma`).

    python -m stylegan_plus.cli.fid_folders datasets/real_images out/generated
    python -m stylegan_plus.cli.fid_folders out/generated real-stats.npz
    python -m stylegan_plus.cli.fid_folders datasets/real_images --save-stats=real-stats.npz

Folders are searched recursively for every image file PIL can read; images are converted to RGB
and may differ in size (the Inception detector resizes them itself). Uses the same detector file
and lookup as calc_metrics.py (--detector-dir, $STYLEGAN_PLUS_DETECTOR_DIR, download cache).
The computation lives in `metrics.fid_folders`; this module is its command line.
"""

import os

import click

from metrics import detectors
from metrics import fid_folders
from metrics.frechet_inception_distance import DETECTOR_URL, fid_from_stats
from stylegan_plus.cli import device as devices
from stylegan_plus.cli.cli_types import DEVICE_HELP
from stylegan_plus.io import images


def _check_paths(path_a, path_b, save_stats):
    """Usage errors for a combination of paths that cannot give an answer."""
    if path_b is None and save_stats is None:
        raise click.UsageError('give a second PATH to compare with, or --save-stats=FILE to store the statistics')
    if save_stats is not None and not os.path.isdir(path_a):
        raise click.BadParameter(f'--save-stats needs PATH_A to be an image folder, got {path_a!r}',
                                 param_hint='--save-stats')


def _save_statistics(path, mu, sigma):
    """Write mu and sigma to `path` atomically; '.npz' is appended when missing, as np.savez does."""
    path = path if path.endswith('.npz') else path + '.npz'
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    images.save_npz(path, mu=mu, sigma=sigma)
    return path


def _compare(path_a, path_b, save_stats, device, batch_size, verbose):
    """Statistics of PATH_A (saved when asked), then the FID against PATH_B when given."""
    mu_a, sigma_a = fid_folders.statistics_of(path_a, device, batch_size, verbose)
    if save_stats is not None:
        print(f'Saved statistics of {path_a} to {_save_statistics(save_stats, mu_a, sigma_a)}')
    if path_b is None:
        return
    mu_b, sigma_b = fid_folders.statistics_of(path_b, device, batch_size, verbose)
    if mu_a.shape != mu_b.shape:
        raise click.UsageError(f'the statistics have different feature sizes: {mu_a.shape[0]} and {mu_b.shape[0]}')
    print(f'FID: {fid_from_stats(mu_a, sigma_a, mu_b, sigma_b):.6f}')


@click.command()
@click.argument('path_a', metavar='PATH_A', type=click.Path(exists=True))
@click.argument('path_b', metavar='[PATH_B]', type=click.Path(exists=True), required=False)
@click.option('--save-stats', help='Write the statistics of PATH_A (a folder) to this .npz (keys mu, sigma)',
              metavar='FILE')
@click.option('--batch', 'batch_size', help='Images per detector call', type=click.IntRange(min=1), default=64,
              show_default=True)
@click.option('--device', 'device_name', help=DEVICE_HELP, metavar='DEVICE')
@click.option('--detector-dir', help=f'Folder or base URL searched first for inception-2015-12-05.pt  '
              f'[default: ${detectors.DETECTOR_DIR_ENV}]', metavar='DIR')
@click.option('--verbose', help='Show progress and throughput', type=bool, default=True, show_default=True,
              metavar='BOOL')
def main(path_a, path_b, save_stats, batch_size, device_name, detector_dir, verbose):
    """FID between PATH_A and PATH_B, each an image folder or a statistics .npz."""
    _check_paths(path_a, path_b, save_stats)
    device = devices.resolve_device(device_name)
    detectors.set_detector_dir(detector_dir)
    try:
        if any(os.path.isdir(p) for p in (path_a, path_b) if p is not None):
            detectors.resolve_detector(DETECTOR_URL, verbose=verbose)  # fail before reading any image
        _compare(path_a, path_b, save_stats, device, batch_size, verbose)
    except fid_folders.StatisticsSourceError as err:
        raise click.BadParameter(str(err), param_hint='PATH') from None
    except (detectors.DetectorNotFoundError, detectors.DetectorChecksumError) as err:
        raise click.ClickException(str(err)) from None


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
