"""Data sets from scikit-learn's bundled handwritten digits (1 797 images of 8x8; no download).

The pixels come from the project's own `make_digits` tool (same scaling and bicubic upsampling
as `python -m stylegan_plus.cli.make_digits`), and the data sets are written with its writer,
so train.py reads exactly what a user would build.

- `halves`: a fixed random split into half A (what the GANs learn) and half B (what the
  evaluation classifier learns, and the held-out reals), so no evaluation uses training images.
- `stacked_digits`: "stacked digits 1K", three independently drawn digits as the R, G, B
  channels (the MNIST-1K protocol with bundled digits): 1 000 modes, 000 ... 999.
"""

import os

import numpy as np
import torch

from stylegan_plus.data import make_digits

SPLIT_SEED = 0


def load(resolution):
    """All digits: (pixels uint8 [1797, R, R], labels int64 [1797])."""
    images, labels = make_digits.load_digit_arrays()
    return make_digits.digits_to_pixels(images, resolution), np.asarray(labels, dtype=np.int64)


def halves(count, seed=SPLIT_SEED):
    """Index arrays (A, B) of a fixed random split of `count` items into two halves (A gets the odd one out)."""
    order = np.random.RandomState(seed).permutation(count)
    cut = (count + 1) // 2
    return np.sort(order[:cut]), np.sort(order[cut:])


def write_dataset(dest, pixels, labels=None):
    """Write uint8 [N, H, W] or [N, H, W, 3] images (+ int labels) as a train.py data set (folder or .zip).

    An existing `dest` is reused as is (the content is a pure function of the arguments the
    benchmarks pass); returns dest.
    """
    if os.path.exists(dest):
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    make_digits.write_digits(dest, pixels, labels)
    return dest


def stacked_digits(pixels, labels, count, seed):
    """Stacks of three independently drawn digits as channels.

    pixels: uint8 [N, R, R]; labels: int [N]. Returns (uint8 [count, R, R, 3], modes int64 [count]
    in 0..999 = 100 * red digit + 10 * green digit + blue digit).
    """
    rng = np.random.RandomState(seed)
    picks = rng.randint(0, len(pixels), size=[count, 3])
    stacks = np.stack([pixels[picks[:, k]] for k in range(3)], axis=-1)
    modes = labels[picks[:, 0]] * 100 + labels[picks[:, 1]] * 10 + labels[picks[:, 2]]
    return stacks, modes.astype(np.int64)


def to_tensor(pixels):
    """uint8 [N, H, W] or [N, H, W, C] -> float32 [N, C, H, W] in [-1, 1] (the trainer's scaling)."""
    arr = np.asarray(pixels)
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(arr.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)

