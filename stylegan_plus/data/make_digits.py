"""Build a small image data set from the handwritten digits that scikit-learn ships (no download).

    python -m stylegan_plus.data.make_digits --dest=datasets/digits32 --resolution=32

`sklearn.datasets.load_digits` holds 1 797 grayscale digits of 8x8 pixels with 17 intensity levels
(0 = background, 16 = ink). Each is scaled to 0..255, upsampled to the requested resolution and
written in the layout `dataset_tool.py` produces (PNG files `00000/img00000000.png`, ..., and a
`dataset.json` with the digit class as label), so `train.py --data=...` reads it directly
(`--cond=1` trains a class-conditional model).
"""

import json

import click
import numpy as np
import PIL.Image

from stylegan_plus.data.dataset_convert import archive_name, encode_png
from stylegan_plus.data.dataset_errors import DatasetToolError
from stylegan_plus.data.dataset_writer import DatasetWriter

RESOLUTIONS = (8, 16, 32, 64)
_MAX_INTENSITY = 16


def load_digit_arrays():
    """(images float [N, 8, 8] in 0..16, labels int [N]) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits # pylint: disable=import-outside-toplevel
    except ImportError:
        raise click.ClickException('scikit-learn is needed for the digits: pip install scikit-learn') from None
    digits = load_digits()
    return digits.images, digits.target


def digits_to_pixels(images, resolution):
    """Digit intensities [N, 8, 8] (0..16) -> uint8 [N, resolution, resolution], bicubic upsampling."""
    pixels = np.clip(np.rint(np.asarray(images, dtype=np.float64) * (255 / _MAX_INTENSITY)), 0, 255).astype(np.uint8)
    if pixels.shape[1] == resolution:
        return pixels
    out = np.empty([len(pixels), resolution, resolution], dtype=np.uint8)
    for i, img in enumerate(pixels):
        out[i] = np.asarray(PIL.Image.fromarray(img, 'L').resize((resolution, resolution), PIL.Image.BICUBIC))
    return out


def write_digits(dest, pixels, labels=None):
    """Write uint8 [N, H, W] images (+ optional int labels) to `dest` (folder or .zip), all or nothing."""
    with DatasetWriter(dest) as writer:
        for idx, img in enumerate(pixels):
            writer.add(archive_name(idx), encode_png(img))
        entries = None if labels is None else [[archive_name(i), int(label)] for i, label in enumerate(labels)]
        writer.add('dataset.json', json.dumps({'labels': entries}).encode('utf-8'))
        writer.commit()


@click.command()
@click.option('--dest', help='Output folder (empty or absent) or .zip file', required=True, metavar='PATH')
@click.option('--resolution', help='Output size in pixels', type=click.Choice([str(r) for r in RESOLUTIONS]),
              default='32', show_default=True)
@click.option('--labels/--no-labels', help='Store the digit class (0-9) in dataset.json', default=True,
              show_default=True)
@click.option('--max-images', help='Keep only the first N digits', type=click.IntRange(min=1), metavar='INT')
def main(dest, resolution, labels, max_images):
    """Write scikit-learn's 8x8 digits as a training data set of upsampled grayscale PNGs."""
    images, targets = load_digit_arrays()
    if max_images is not None:
        images, targets = images[:max_images], targets[:max_images]
    pixels = digits_to_pixels(images, int(resolution))
    try:
        write_digits(dest, pixels, targets if labels else None)
    except DatasetToolError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f'Wrote {len(pixels)} digits of {resolution}x{resolution} px to {dest}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
