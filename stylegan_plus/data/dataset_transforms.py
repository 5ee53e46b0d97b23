"""Scaling and cropping of `dataset_tool.py` (`--transform`, `--width`, `--height`, `--resize-filter`).

Images are uint8 [H, W] or [H, W, 3] in and out.
"""

import functools
import re

import numpy as np
import PIL.Image

from .dataset_errors import OptionError

RESIZE_FILTERS = {'box': PIL.Image.Resampling.BOX, 'lanczos': PIL.Image.Resampling.LANCZOS}
TRANSFORMS = ('center-crop', 'center-crop-wide')


def _is_pow2(n):
    return n >= 1 and n & (n - 1) == 0


def check_transform_options(transform, width, height):
    """Reject option combinations that cannot produce square power-of-two images.

    Raises OptionError naming the offending option.
    """
    if transform is not None and (width is None or height is None):
        raise OptionError(f'--transform={transform} needs the output size: --resolution=WxH, or both --width and '
                          '--height', param='--transform')
    if transform == 'center-crop-wide':
        side = max(width, height)
        if not _is_pow2(side):
            raise OptionError(f'--transform=center-crop-wide makes {side}x{side} images; the larger of --width '
                              'and --height must be a power of two', param='--width')
        return
    if width is not None and height is not None and width != height:
        raise OptionError(f'--width {width} and --height {height} give non-square images; set them equal '
                          '(or use --transform=center-crop-wide, which letterboxes into a square)', param='--height')
    for param, value in (('--width', width), ('--height', height)):
        if value is not None and not _is_pow2(value):
            raise OptionError(f'{param} {value} is not a power of two (e.g. 32, 64, 128, 256)', param=param)


_RESOLUTION_RE = re.compile(r'^\s*(\d+)\s*(?:[xX,]\s*(\d+)\s*)?$')


def parse_resolution(value):
    """`--resolution` as StyleGAN3's dataset tool takes it: 'WxH' (or 'W,H'), or 'N' for NxN.

    Returns (width, height) ints >= 1; raises OptionError naming the value otherwise.
    """
    match = _RESOLUTION_RE.match(str(value))
    if match is None or int(match.group(1)) < 1 or (match.group(2) is not None and int(match.group(2)) < 1):
        raise OptionError(f'{value!r} is not a size; expected WIDTHxHEIGHT such as 256x256, or one number for a '
                          'square', param='--resolution')
    width = int(match.group(1))
    return width, width if match.group(2) is None else int(match.group(2))


def merge_resolution(resolution, width, height):
    """(width, height) from `--resolution` (a parsed pair or None) and `--width`/`--height`.

    The two spellings may be combined when they agree; raises OptionError when they do not.
    """
    if resolution is None:
        return width, height
    for flag, given, implied in (('--width', width, resolution[0]), ('--height', height, resolution[1])):
        if given is not None and given != implied:
            raise OptionError(f'--resolution={resolution[0]}x{resolution[1]} and {flag}={given} disagree; '
                              'give one of them', param='--resolution')
    return resolution


def _resize(img, width, height, resample):
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return np.asarray(PIL.Image.fromarray(img).resize((width, height), resample))


def _scale(width, height, resample, img):
    return _resize(img, width or img.shape[1], height or img.shape[0], resample)


def _center_crop(width, height, resample, img):
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return _resize(img[top:top + side, left:left + side], width, height, resample)


def _center_crop_wide(width, height, resample, img):
    # Keep a centred band of aspect width:height (e.g. LSUN cars, 4:3) and letterbox it into a
    # square canvas of side max(width, height); images smaller than the band are dropped.
    h, w = img.shape[:2]
    if w < width or h < height:
        return None
    if w * height > h * width:     # wider than the target aspect: trim the sides
        crop_w, crop_h = round(h * width / height), h
    else:                          # taller: trim top and bottom
        crop_w, crop_h = w, round(w * height / width)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    band = _resize(img[top:top + crop_h, left:left + crop_w], width, height, resample)
    side = max(width, height)
    canvas = np.zeros((side, side) + img.shape[2:], dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top:top + height, left:left + width] = band
    return canvas


def make_transform(transform=None, width=None, height=None, resize_filter='lanczos'):
    """Return `fn(img) -> img or None` (None = image dropped by center-crop-wide).

    Raises OptionError for options that cannot give square power-of-two images.
    Without `transform`, images are only scaled to `width` x `height` (each defaulting to the
    image's own size); `center-crop` crops the largest centred square first.
    """
    check_transform_options(transform, width, height)
    resample = RESIZE_FILTERS[resize_filter]
    if transform is None:
        return functools.partial(_scale, width, height, resample)
    fn = {'center-crop': _center_crop, 'center-crop-wide': _center_crop_wide}[transform]
    return functools.partial(fn, width, height, resample)
