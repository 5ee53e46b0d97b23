"""The conversion behind `dataset_tool.py`: read a source, transform, check, write PNGs + dataset.json.

Output layout (what `ImageFolderDataset` reads): image i is `{i:08d}[:5]/img{i:08d}.png`
(1000 per sub-folder), an uncompressed PNG in mode L or RGB, and the root `dataset.json` holds
`{"labels": [[name, label], ...]}`, or `{"labels": null}` when any image has no label.
"""

import io
import json
from collections import Counter

import numpy as np
import PIL.Image
from tqdm import tqdm

from .dataset_open import open_source
from .dataset_transforms import make_transform
from .dataset_writer import DatasetWriter
from .dataset_errors import BadImageError, DatasetToolError, OptionError


def archive_name(index):
    """Path of output image `index` inside the data set, e.g. 1000 -> '00001/img00001000.png'."""
    digits = f'{index:08d}'
    return f'{digits[:5]}/img{digits}.png'


def encode_png(img):
    """uint8 [H, W] or [H, W, 3] -> PNG bytes (mode L or RGB, compress_level=0)."""
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, format='png', compress_level=0, optimize=False)
    return buf.getvalue()


def _attrs(img):
    return {'width': img.shape[1], 'height': img.shape[0], 'channels': img.shape[2] if img.ndim == 3 else 1}


def check_image(img, name, expected):
    """Validate one transformed image against the first one (`expected`, None for the first).

    Returns the attributes {width, height, channels}; raises DatasetToolError naming `name`.
    """
    attrs = _attrs(img)
    if expected is None:
        w, h, c = attrs['width'], attrs['height'], attrs['channels']
        if w != h:
            raise DatasetToolError(f'{name}: images must be square after scaling/cropping, got {w}x{h}; '
                                   'use --transform=center-crop with --width/--height')
        if c not in (1, 3):
            raise DatasetToolError(f'{name}: images must be grayscale or RGB, got {c} channels')
        if w & (w - 1):
            raise DatasetToolError(f'{name}: image size {w}x{h} is not a power of two; '
                                   'resize with --width/--height (e.g. 64, 128, 256)')
    elif attrs != expected:
        found = ', '.join(f'{k} {expected[k]} vs {attrs[k]}' for k in expected if expected[k] != attrs[k])
        raise DatasetToolError(f'{name}: all images must share the size and channels of the first one '
                               f'({expected["width"]}x{expected["height"]}, {expected["channels"]} channels); '
                               f'first vs this: {found}')
    return attrs


def _label_kind(label):
    return f'vectors of length {len(label)}' if isinstance(label, list) else 'class indices'


def _jsonable(label, name):
    """A label as JSON: int class index, list of floats, or None; raises for anything else."""
    if label is None:
        return None
    try:
        if isinstance(label, (list, tuple, np.ndarray)):
            return [float(x) for x in label]
        if not isinstance(label, (bool, str)) and float(label) == int(label):
            return int(label)
    except (TypeError, ValueError):
        pass
    raise DatasetToolError(f'{name}: label {label!r} is neither a class index nor a list of numbers')


class ConversionReport:
    """Counts gathered during a conversion, turned into the final notices and summary line."""

    def __init__(self, dest):
        self.dest = dest
        self.written = 0
        self.dropped = 0            # center-crop-wide: smaller than the crop band
        self.skipped = []           # (name, reason)
        self.converted = Counter()  # original PIL mode -> count
        self.labels = []            # per written image
        self.class_names = None
        self.attrs = None
        self._first_label = None    # (kind, image name) of the first labelled image

    def add_label(self, label, name):
        """Record one written image's label; all labels must be of one kind (ints or same-length lists)."""
        if label is not None:
            kind = _label_kind(label)
            if self._first_label is None:
                self._first_label = (kind, name)
            elif kind != self._first_label[0]:
                raise DatasetToolError(f'{name}: label {label!r} is not like the first label '
                                       f'({self._first_label[0]}, from {self._first_label[1]})')
        self.labels.append(label)

    def label_summary(self):
        found = [label for label in self.labels if label is not None]
        if not found:
            return 'no labels'
        if len(found) < len(self.labels):
            return f'labels for {len(found)} of {len(self.labels)} images only, so none stored'
        if isinstance(found[0], list):
            return f'{len(found)} labels (vectors of length {len(found[0])})'
        return f'{len(found)} labels ({len(set(found))} classes)'

    def notices(self):
        lines = []
        if self.converted:
            modes = ', '.join(f'{mode}: {n}' for mode, n in sorted(self.converted.items()))
            lines.append(f'Notice: converted {sum(self.converted.values())} image(s) to RGB or L ({modes}); '
                         'alpha channels were dropped')
        if self.dropped:
            lines.append(f'Notice: center-crop-wide dropped {self.dropped} image(s) smaller than the crop')
        return lines

    def summary(self):
        a = self.attrs
        shape = f' ({a["width"]}x{a["height"]}, {"RGB" if a["channels"] == 3 else "L"})' if a else ''
        return (f'Done: {self.written} images written to {self.dest}{shape}; {len(self.skipped)} skipped, '
                f'{sum(self.converted.values())} converted; {self.label_summary()}.')


def _load(item, report, tolerate_bad, log):
    """Decoded image of `item`, or None when it is skipped as unreadable."""
    try:
        img, converted_from = item.load()
    except BadImageError as err:
        if not tolerate_bad:
            raise DatasetToolError(f'{err} (use --skip-bad to skip unreadable images)') from None
        report.skipped.append((err.name, err.reason))
        log(f'Skipped {err.name}: {err.reason}')
        return None
    if converted_from is not None:
        report.converted[converted_from] += 1
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def _convert_items(source, writer, transform, report, max_images, skip_bad, log):
    total = source.total if max_images is None else min(source.total, max_images)
    with tqdm(total=total, unit='img', dynamic_ncols=True) as bar:
        for item in source.items:
            if max_images is not None and report.written >= max_images:
                break
            img = _load(item, report, skip_bad or source.tolerant, log)
            if img is not None:
                img = transform(img)
                if img is None:
                    report.dropped += 1
                else:
                    report.attrs = check_image(img, item.name, report.attrs)
                    writer.add(archive_name(report.written), encode_png(img))
                    report.add_label(_jsonable(item.label, item.name), item.name)
                    report.written += 1
            bar.update(1)


def convert(source, dest, max_images=None, resize_filter='lanczos', transform=None, width=None, height=None,
            subfolders_as_labels=False, skip_bad=False, log=None, overwrite=False):
    """Convert `source` into an `ImageFolderDataset` at `dest` (folder or .zip); returns a ConversionReport.

    `log(line)` prints notices and skip reports (default: tqdm.write, which keeps the progress bar
    intact). Nothing appears at `dest` unless every step succeeds, and an existing zip at `dest` is
    replaced only with `overwrite`. Raises OptionError for bad option combinations and
    DatasetToolError (naming the offending file) for bad input or output.
    """
    if max_images is not None and max_images < 1:
        raise OptionError(f'--max-images {max_images} must be at least 1', param='--max-images')
    image_transform = make_transform(transform, width, height, resize_filter)
    log = log or tqdm.write
    report = ConversionReport(dest)
    with DatasetWriter(dest, overwrite=overwrite) as writer, open_source(source, subfolders_as_labels) as src:
        for line in src.notices:
            log(line)
        report.class_names = src.class_names
        _convert_items(src, writer, image_transform, report, max_images, skip_bad, log)
        if report.written == 0:
            raise DatasetToolError(f'--source {source}: no images were written '
                                   f'({len(report.skipped)} skipped, {report.dropped} dropped)')
        writer.add('dataset.json', json.dumps(_metadata(report)).encode('utf-8'))
        writer.commit()
    return report


def _metadata(report):
    labels = [[archive_name(i), label] for i, label in enumerate(report.labels)]
    complete = all(label is not None for _, label in labels)
    meta = {'labels': labels if complete else None}
    if report.class_names is not None:
        meta['class_names'] = list(report.class_names)
    return meta
