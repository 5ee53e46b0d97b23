"""Start-up check of an image dataset: every file's header, so bad files surface before training.

Only what PIL reads to identify a file is read (format, size, mode), plus, for PNG, the last few
KiB: a PNG ends with an IEND chunk, so a file cut short lacks it. Pixel data is not decoded, so
the check costs little even for large datasets; damage inside the pixel data is still found
when the image is decoded, and that error names the file too.

The common size and channel count (the most frequent among the readable files; the first file
decides a tie) is what the dataset holds; every other file is reported with its problem.
"""

import collections
import dataclasses
import io
import struct

import PIL.Image

from .base import DatasetError

PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'   # the IEND chunk: length 0, type, CRC
PNG_TAIL_BYTES = 4096                          # tolerates a little data after IEND

# Modes that `decode_image` converts, and the 8-bit modes a dataset can hold (with channel count).
CONVERT_MODES = {'1': 'L', 'P': 'RGB', 'PA': 'RGBA', 'CMYK': 'RGB', 'YCbCr': 'RGB', 'LAB': 'RGB', 'HSV': 'RGB'}
MODE_CHANNELS = {'L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What the check learned about one file; `problem` is '' when the header reads fine."""
    name: str
    width: int = 0
    height: int = 0
    mode: str = ''
    problem: str = ''

    @property
    def stored_mode(self):
        """Mode of the decoded pixels (after `CONVERT_MODES`)."""
        return CONVERT_MODES.get(self.mode, self.mode)

    @property
    def channels(self):
        """C of the decoded [C, H, W] array; 0 for modes a dataset cannot hold (16-bit, float)."""
        return MODE_CHANNELS.get(self.stored_mode, 0)


def stream_tail(stream, nbytes):
    """The last `nbytes` bytes of a seekable binary stream (all of it if shorter)."""
    end = stream.seek(0, io.SEEK_END)
    stream.seek(max(end - nbytes, 0))
    return stream.read()


def stored_member_tail(archive, info, nbytes):
    """The last `nbytes` bytes of an uncompressed zip member, read directly from the archive file.

    `zipfile` would read the whole member to seek to its end; for datasets of large PNGs that is
    the whole dataset. archive: the zip opened as a binary file; info: the member's ZipInfo
    (compress_type ZIP_STORED, not encrypted).
    """
    archive.seek(info.header_offset)
    local = archive.read(30)
    if len(local) < 30 or local[:4] != b'PK\x03\x04':
        raise OSError('bad local header in the zip archive')
    name_len, extra_len = struct.unpack('<HH', local[26:30])
    data_end = info.header_offset + 30 + name_len + extra_len + info.compress_size
    archive.seek(max(data_end - nbytes, info.header_offset + 30 + name_len + extra_len))
    return archive.read(data_end - archive.tell())


def read_header(stream, name, read_tail=None):
    """ImageHeader of the open binary `stream` (seekable); never raises for a bad file.

    read_tail(nbytes) -> the file's last bytes, for the PNG end check (default: seek `stream`).
    """
    try:
        with PIL.Image.open(stream) as img:
            width, height = img.size
            mode, kind = img.mode, img.format
        tail = (read_tail or (lambda n: stream_tail(stream, n)))(PNG_TAIL_BYTES) if kind == 'PNG' else PNG_END
        if PNG_END not in tail:
            return ImageHeader(name, problem='truncated/unreadable (the PNG end chunk is missing)')
    except Exception as err:   # PIL and zipfile raise many types; each means this file is unusable
        return ImageHeader(name, problem=f'truncated/unreadable ({type(err).__name__}: {err})')
    if not MODE_CHANNELS.get(CONVERT_MODES.get(mode, mode)):
        return ImageHeader(name, width, height, mode,
                           problem=f'mode {mode} is not 8-bit (accepted: L, RGB, RGBA, LA, palette)')
    return ImageHeader(name, width, height, mode)


def _most_common(values):
    # Counter keeps first-seen order among equal counts, so ties go to the earliest file.
    return collections.Counter(values).most_common(1)[0][0]


@dataclasses.dataclass
class CheckResult:
    """Outcome of `check_headers`: the usable files and the common format."""
    good: list          # names, in the order given
    bad: list           # (name, problem) pairs
    width: int
    height: int
    channels: int

    def describe_bad(self, indent='  '):
        """One line per bad file: '<indent><name>: <problem>'."""
        return '\n'.join(f'{indent}{name}: {problem}' for name, problem in self.bad)


def _reference(path, readable, resolution):
    """(width, height, channels, mode name) most files share; DatasetError if they cannot be used."""
    width, height = _most_common((h.width, h.height) for h in readable)
    channels = _most_common(h.channels for h in readable)
    mode = _most_common(h.stored_mode for h in readable if h.channels == channels)
    if width != height:
        example = next(h.name for h in readable if (h.width, h.height) == (width, height))
        raise DatasetError(f'{path}: images must be square, found {width}x{height} ({example})')
    if resolution is not None and width != resolution:
        raise DatasetError(f'{path}: images are {width}x{height} but resolution {resolution}x{resolution} '
                           f'was requested')
    return width, height, channels, mode


def _mismatch(header, width, height, channels, mode):
    problems = []
    if (header.width, header.height) != (width, height):
        problems.append(f'size {header.width}x{header.height}, expected {width}x{height}')
    if header.channels != channels:
        problems.append(f'mode {header.mode} among {mode} images')
    return '; '.join(problems)


def check_headers(path, headers, resolution=None):
    """Sort the files of dataset `path` into good and bad.

    headers: ImageHeader per image file. resolution: required side length, or None.
    Returns CheckResult. Raises DatasetError when no file is readable, or when the format most
    files share is not square or not `resolution`.
    """
    readable = [h for h in headers if not h.problem]
    if not readable:
        listing = '\n'.join(f'  {h.name}: {h.problem}' for h in headers)
        raise DatasetError(f'{path}: none of the {len(headers)} image files can be read:\n{listing}')
    width, height, channels, mode = _reference(path, readable, resolution)
    good, bad = [], []
    for header in headers:
        problem = header.problem or _mismatch(header, width, height, channels, mode)
        if problem:
            bad.append((header.name, problem))
        else:
            good.append(header.name)
    return CheckResult(good=good, bad=bad, width=width, height=height, channels=channels)


def bad_files_error(path, result):
    """DatasetError listing every bad file, with what to do about them."""
    total = len(result.good) + len(result.bad)
    return DatasetError(
        f'{path}: {len(result.bad)} of {total} image files cannot be used:\n{result.describe_bad()}\n'
        f'Fix or remove them, or pass --skip-bad (dataset option skip_bad=True) to use the other '
        f'{len(result.good)} image file(s).')


_announced = set()


def announce_skipped(path, result):
    """Tell the user, once per process and dataset, which files `skip_bad` leaves out."""
    key = (path, tuple(result.bad))
    if not result.bad or key in _announced:
        return
    _announced.add(key)
    total = len(result.good) + len(result.bad)
    print(f'{path}: skipping {len(result.bad)} of {total} image files (--skip-bad); '
          f'using {len(result.good)}:\n{result.describe_bad()}')
