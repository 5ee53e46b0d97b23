"""Are a generator's digits recognisable? A classifier trained on scikit-learn's digits judges.

    python -m stylegan_plus.cli.digits_check --network=<run>/network-snapshot-000100.pkl

prints the share of 256 generated samples that the classifier assigns to one digit with
probability >= 0.9, and the same share for real digits it never saw, as the reference (here for
the main job's conditional DCGAN after 40 kimg):

    generated: 90.2 % of 256 samples classified with p >= 0.9  (per class 0-9: 30 25 18 ...;
               not a digit: 11), drawn as the class asked for 94.1 %
    reals:     92.2 % of 449 held-out real digits classified with p >= 0.9  (...), accuracy 96.0 %

The classifier is a one-hidden-layer perceptron (scikit-learn `MLPClassifier`) on the pixel
intensities of the digits at the network's resolution, made by `make_digits` exactly as the
training set was (so real and generated digits have the same scale and upsampling). It learns
from a fixed 75 % of the 1 797 digits; the other 25 % give the reals' figure. Any image has an
argmax class, noise included, and a plain 10-class model is confident on some non-digits (an
untrained generator's flat grey images came out as a "4" with p > 0.9), so the model has an
eleventh class, "not a digit", trained on flat images, pixel noise, smooth random scribbles and
blends of two different digits. A sample counts when one digit class gets p >= 0.9.
"""

import dataclasses
import functools

import numpy as np
import scipy.ndimage
import torch

from stylegan_plus.data import make_digits
from stylegan_plus.sampling import prior

THRESHOLD = 0.9         # the confidence a sample must reach to count as recognised
HELDOUT_SHARE = 0.25    # digits kept away from the classifier, for the reals' figure
SPLIT_SEED = 0
NUM_CLASSES = 10
REJECT = NUM_CLASSES    # label of the "not a digit" class


@dataclasses.dataclass
class DigitsChecker:
    """A fitted classifier for digits of `resolution` px and the real digits it never saw.

    heldout: uint8 [M, R, R] real digits; heldout_labels: int64 [M] in 0..9.
    """
    model: object
    resolution: int
    heldout: np.ndarray
    heldout_labels: np.ndarray


@dataclasses.dataclass
class CheckResult:
    """How many of `count` images the classifier assigned with probability >= `threshold`."""
    count: int
    confident: int
    threshold: float
    class_counts: np.ndarray        # int [10]: confident images per predicted class
    rejected: int = 0               # images whose most likely class is "not a digit"
    accuracy: float = None          # share predicted correctly (only when labels are known)

    @property
    def share(self):
        """Share of the images recognised, in [0, 1] (0 for no images)."""
        return self.confident / max(self.count, 1)


def _features(pixels):
    """uint8 [N, R, R] or [N, R, R, 1] -> float64 [N, R*R] in [0, 1] (the classifier's input)."""
    arr = np.asarray(pixels)
    if arr.ndim == 4:
        if arr.shape[-1] != 1:
            raise ValueError(f'digits are grayscale; got images with {arr.shape[-1]} channels')
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f'expected images [N, R, R]; got an array of shape {arr.shape}')
    return arr.reshape(len(arr), -1).astype(np.float64) / 255.0


def split_indices(count, heldout_share=HELDOUT_SHARE, seed=SPLIT_SEED):
    """(train, heldout) index arrays of a fixed random split of `count` items."""
    order = np.random.RandomState(seed).permutation(count)
    cut = count - int(round(count * heldout_share))
    return np.sort(order[:cut]), np.sort(order[cut:])


def non_digits(pixels, labels, count, rng):
    """4 * count float64 images [M, R, R] in [0, 1] that are not one digit: flat, noise, scribbles, blends.

    pixels: float64 digits [N, R, R] in [0, 1] with int labels [N] (the blends mix two of them).
    """
    size = pixels.shape[1]
    flat = np.ones([count, size, size]) * rng.uniform(0, 1, [count, 1, 1])
    noise = rng.uniform(0, 0.6, [count, 1, 1]) + rng.uniform(0.05, 0.5, [count, 1, 1]) * rng.randn(count, size, size)
    # Smoothed noise at about a stroke's width: blobs and strokes that form no digit.
    blobs = scipy.ndimage.gaussian_filter(rng.randn(count, size, size), sigma=(0, size / 10, size / 10))
    blobs = (blobs - blobs.mean(axis=(1, 2), keepdims=True)) / blobs.std(axis=(1, 2), keepdims=True)
    scribbles = 0.4 * blobs + 0.2
    first = rng.randint(len(pixels), size=4 * count)
    second = rng.randint(len(pixels), size=4 * count)
    differ = np.flatnonzero(labels[first] != labels[second])[:count]
    weight = rng.uniform(0.35, 0.65, [len(differ), 1, 1])
    blends = weight * pixels[first[differ]] + (1 - weight) * pixels[second[differ]]
    return np.clip(np.concatenate([flat, noise, scribbles, blends]), 0, 1)


@functools.lru_cache(maxsize=4)
def fit_checker(resolution, seed=SPLIT_SEED):
    """Train the classifier on 75 % of the digits at `resolution` px (8, 16, 32 or 64); a few seconds on one core.

    Deterministic, so the result is cached for the process. Raises DatasetToolError (from
    `make_digits.load_digit_arrays`) when scikit-learn is missing.
    """
    images, labels = make_digits.load_digit_arrays()     # says how to install scikit-learn when it is missing
    from sklearn.neural_network import MLPClassifier  # pylint: disable=import-outside-toplevel
    pixels = make_digits.digits_to_pixels(images, resolution)
    labels = np.asarray(labels, dtype=np.int64)
    train, heldout = split_indices(len(pixels), seed=seed)
    digits = _features(pixels[train]).reshape(len(train), resolution, resolution)
    # About one digit class's worth of each kind of non-digit.
    others = non_digits(digits, labels[train], len(train) // NUM_CLASSES, np.random.RandomState(seed))
    inputs = np.concatenate([digits, others]).reshape(len(digits) + len(others), -1)
    targets = np.concatenate([labels[train], np.full(len(others), REJECT)])
    # Small weight decay keeps the probabilities from saturating on every input, so the 0.9 bar
    # separates clear digits from blurred or mixed ones.
    model = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=500, random_state=seed)
    model.fit(inputs, targets)
    return DigitsChecker(model=model, resolution=resolution, heldout=pixels[heldout], heldout_labels=labels[heldout])


def probabilities(checker, pixels):
    """Class probabilities float64 [N, 11] of uint8 digits [N, R, R] (R = the checker's resolution).

    Columns 0-9 are the digits, column 10 (`REJECT`) "not a digit".
    """
    features = _features(pixels)
    if features.shape[1] != checker.resolution ** 2:
        side = int(round(np.sqrt(features.shape[1])))
        raise ValueError(f'the classifier was trained at {checker.resolution} px; got {side} px images')
    return checker.model.predict_proba(features)


def check(checker, pixels, labels=None, threshold=THRESHOLD):
    """CheckResult of uint8 digits [N, R, R]; `labels` (int [N]) adds the accuracy."""
    probs = probabilities(checker, pixels)
    predicted = probs.argmax(axis=1)
    sure = probs[:, :NUM_CLASSES].max(axis=1) >= threshold
    accuracy = None if labels is None else float(np.mean(predicted == np.asarray(labels)))
    return CheckResult(count=len(probs), confident=int(sure.sum()), threshold=threshold,
                       class_counts=np.bincount(predicted[sure], minlength=NUM_CLASSES),
                       rejected=int(np.sum(predicted == REJECT)), accuracy=accuracy)


def check_reals(checker, threshold=THRESHOLD):
    """CheckResult of the held-out real digits (the reference for a generator's figure)."""
    return check(checker, checker.heldout, checker.heldout_labels, threshold)


@torch.no_grad()
def sample_digits(G, count, seed=0, batch=64, device='cpu', return_labels=False, z_dist='normal'):
    """uint8 [count, R, R] grayscale samples of G (z from `seed` in the snapshot's prior `z_dist`,
    N(0, I) by default; noise_mode const).

    A conditional G (c_dim > 0) gets one-hot labels drawn uniformly (from `seed`, apart from the
    latents); `return_labels` also returns them (int64 [count], or None for an unconditional G).
    The pixels are rounded as generate.py writes them (x * 127.5 + 128, clamped to 0..255).
    """
    if G.img_channels != 1:
        raise ValueError(f'the digits check needs a grayscale generator; this one draws {G.img_channels} channels')
    z = torch.from_numpy(prior.draw_z_numpy(z_dist, np.random.RandomState(seed), count, G.z_dim)).to(torch.float32)
    # A stream of its own, so the first k samples are the same whatever `count` is.
    labels = np.random.RandomState([seed, 1]).randint(G.c_dim, size=count) if G.c_dim > 0 else None
    c = torch.zeros([count, G.c_dim])
    if labels is not None:
        c[torch.arange(count), torch.from_numpy(labels)] = 1
    chunks = []
    for start in range(0, count, batch):
        img = G(z[start:start + batch].to(device), c[start:start + batch].to(device), noise_mode='const')
        chunks.append((img[:, 0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy())
    pixels = np.concatenate(chunks)
    return (pixels, labels) if return_labels else pixels


def describe(result, what, accuracy_text='accuracy'):
    """One line: '88.3 % of 256 <what> classified with p >= 0.9  (per class 0-9: ...; not a digit: 9)'.

    With labels, ', <accuracy_text> 97.0 %' follows (the share whose most likely class is the label).
    """
    per_class = ' '.join(str(int(n)) for n in result.class_counts)
    line = f'{100 * result.share:.1f} % of {result.count} {what} classified with p >= {result.threshold:g}'
    line += f'  (per class 0-9: {per_class}; not a digit: {result.rejected})'
    if result.accuracy is not None:
        line += f', {accuracy_text} {100 * result.accuracy:.1f} %'
    return line


def save_verdict_grid(pixels, probs, path, threshold=THRESHOLD, cols=8, scale=4):
    """PNG of uint8 digits [N, R, R] on a grid, each framed green (recognised: p >= threshold) or red."""
    import PIL.Image  # pylint: disable=import-outside-toplevel
    from stylegan_plus.io import atomic  # pylint: disable=import-outside-toplevel
    count, size = len(pixels), pixels.shape[1]
    rows = -(-count // cols)
    cell = size + 4
    canvas = np.zeros([rows * cell, cols * cell, 3], dtype=np.uint8)
    sure = probs[:, :NUM_CLASSES].max(axis=1) >= threshold
    for i in range(count):
        y, x = (i // cols) * cell, (i % cols) * cell
        canvas[y + 1:y + cell - 1, x + 1:x + cell - 1] = (40, 170, 40) if sure[i] else (210, 40, 40)
        canvas[y + 2:y + 2 + size, x + 2:x + 2 + size] = pixels[i][:, :, None]
    image = PIL.Image.fromarray(canvas).resize((cols * cell * scale, rows * cell * scale), PIL.Image.NEAREST)
    atomic.write_atomic(path, lambda f: image.save(f, format='png'))
    return path
