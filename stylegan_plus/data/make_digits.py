"""Build a small image data set from the handwritten digits that scikit-learn ships (no download).

    python -m stylegan_plus.cli.make_digits --dest=datasets/digits32 --resolution=32

`sklearn.datasets.load_digits` holds 1 797 grayscale digits of 8x8 pixels with 17 intensity levels
(0 = background, 16 = ink). Each is scaled to 0..255, upsampled to the requested resolution and
written in the layout `dataset_tool.py` produces (PNG files `00000/img00000000.png`, ..., and a
`dataset.json` with the digit class as label), so `train.py --data=...` reads it directly
(`--cond=1` trains a class-conditional model).
"""

import json

import numpy as np
import PIL.Image

from stylegan_plus.data.dataset_convert import archive_name, encode_png
from stylegan_plus.data.dataset_errors import DatasetToolError
from stylegan_plus.data.dataset_writer import DatasetWriter

RESOLUTIONS = (8, 16, 32, 64)
_MAX_INTENSITY = 16


def load_digit_arrays():
    """(images float64 [N, 8, 8] in 0..16, labels int [N] in 0..9) from scikit-learn.

    Raises DatasetToolError saying how to install scikit-learn when it is missing.
    """
    try:
        from sklearn.datasets import load_digits # pylint: disable=import-outside-toplevel
    except ImportError:
        raise DatasetToolError('scikit-learn is needed for the digits: pip install scikit-learn') from None
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
