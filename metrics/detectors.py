"""Where the TorchScript feature detectors of the metrics and the projector come from.

The official metrics use two TorchScript networks published by NVIDIA:

    inception-2015-12-05.pt   FID, KID, IS           img uint8 [N, 3, H, W] -> features / class probabilities
    vgg16.pt                  precision/recall, PPL,  img [N, 3, H, W] in [0, 255] -> features / LPIPS features
                              projector.py

A detector is named by its official URL (or by its file name, or by a local path). The file is
looked up, in this order:

1. the detector folder: `--detector-dir` of the tools, or `$STYLEGAN_PLUS_DETECTOR_DIR`; a local
   folder, or a `file://` / `http(s)://` base URL under which `<base>/<file name>` is fetched;
2. the dnnlib download cache, i.e. where the official code caches it
   (`<cache root>/downloads/<md5(url)>_<file name>`, cache root as in `dnnlib.make_cache_dir_path`);
3. a download from the official URL into that cache, unless `$STYLEGAN_PLUS_OFFLINE=1`.

When all fail, `DetectorNotFoundError` names the file and the exact places to put it.

SHA-256: this project records no official digests, because none has been verified here (see
`KNOWN_SHA256`). A digest is checked when one is known for the file name, from `KNOWN_SHA256` or
from `$STYLEGAN_PLUS_DETECTOR_SHA256` (`"inception-2015-12-05.pt=<hex>,vgg16.pt=<hex>"`). The
digest of every detector actually loaded is returned by `used_digests()`, and the metrics record it.
"""

import hashlib
import os
import urllib.parse

import torch

import dnnlib

DETECTOR_DIR_ENV = 'STYLEGAN_PLUS_DETECTOR_DIR'
DETECTOR_SHA256_ENV = 'STYLEGAN_PLUS_DETECTOR_SHA256'
OFFLINE_ENV = 'STYLEGAN_PLUS_OFFLINE'

_CDN = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics'
INCEPTION_URL = f'{_CDN}/inception-2015-12-05.pt'
VGG16_URL = f'{_CDN}/vgg16.pt'
OFFICIAL_URLS = {os.path.basename(url): url for url in (INCEPTION_URL, VGG16_URL)}

# File name -> lowercase hex SHA-256. Deliberately empty: a digest belongs here only once it has
# been computed from a file known to be the official one; a wrong digest would reject good files.
KNOWN_SHA256 = {}

_loaded = {}        # (path, device str) -> ScriptModule; each file is loaded once per device
_digests = {}       # path -> (mtime, size, sha256 hex)
_used = {}          # file name -> sha256 of every detector handed out since reset_used()


class DetectorNotFoundError(FileNotFoundError):
    """A detector file is in none of the places searched; the message says where to put it."""


class DetectorChecksumError(ValueError):
    """A detector file's SHA-256 differs from the expected digest."""


def set_detector_dir(path):
    """Make `path` (folder or base URL) the first place searched, also for child processes.

    The choice is stored in `$STYLEGAN_PLUS_DETECTOR_DIR` so that processes started later
    (one per GPU) inherit it. None leaves the current setting unchanged.
    """
    if path is not None:
        os.environ[DETECTOR_DIR_ENV] = str(path)


def detector_dir():
    """The configured detector folder or base URL, or None."""
    return os.environ.get(DETECTOR_DIR_ENV) or None


def detector_file_name(url):
    """`https://host/a/vgg16.pt` -> `vgg16.pt` (also for file names and local paths)."""
    return os.path.basename(urllib.parse.urlparse(url).path if '://' in url else url)


def expected_sha256(file_name):
    """Known digest of `file_name` (env var first, then KNOWN_SHA256), or None."""
    for entry in os.environ.get(DETECTOR_SHA256_ENV, '').split(','):
        name, _, digest = entry.strip().partition('=')
        if name.strip() == file_name and digest.strip():
            return digest.strip().lower()
    return KNOWN_SHA256.get(file_name)


def _official_url(url):
    """Map a bare official file name to its URL; URLs and paths pass through."""
    return OFFICIAL_URLS.get(url, url)


def _cache_candidates(url):
    """(existing cached file or None, path where the cache expects it) for an http(s) URL."""
    cache_dir = dnnlib.make_cache_dir_path('downloads')
    # dnnlib's own lookup, so that files cached by the official code are found as well.
    return dnnlib.util._find_cached(url, cache_dir), dnnlib.util._url_cache_path(url, cache_dir)


def _from_detector_dir(file_name, verbose):
    """Path of `file_name` in the detector folder/base URL, or None (with the reason)."""
    base = detector_dir()
    if base is None:
        return None, None
    if dnnlib.util.is_url(base, allow_file_urls=True):
        url = base.rstrip('/') + '/' + file_name
        try:
            return dnnlib.util.open_url(url, return_filename=True, verbose=verbose), None
        except (OSError, ValueError) as err:
            return None, f'{url}: {err}'
    path = os.path.join(base, file_name)
    return (path, None) if os.path.isfile(path) else (None, f'{path} does not exist')


def resolve_detector(url, verbose=False):
    """Local path of the detector named by `url` (official URL, official file name, or a path).

    Searches the detector folder, then the download cache, then downloads (see module doc).
    Raises DetectorNotFoundError listing the exact places where the file can be put.
    """
    url = _official_url(url)
    if not dnnlib.util.is_url(url, allow_file_urls=True):
        if os.path.isfile(url):
            return url
        raise DetectorNotFoundError(_not_found_message(detector_file_name(url), None, [f'{url} does not exist']))
    file_name = detector_file_name(url)
    path, dir_problem = _from_detector_dir(file_name, verbose)
    if path is not None:
        return path
    problems = [dir_problem] if dir_problem else []
    if url.startswith('file://'):
        try:
            return dnnlib.util.open_url(url, return_filename=True)
        except OSError as err:
            raise DetectorNotFoundError(_not_found_message(file_name, None, problems + [str(err)])) from None
    cached, cache_path = _cache_candidates(url)
    if cached is not None:
        return cached
    if os.environ.get(OFFLINE_ENV, '') not in ('', '0'):
        problems.append(f'not in the download cache, and downloads are off (${OFFLINE_ENV}=1)')
        raise DetectorNotFoundError(_not_found_message(file_name, url, problems, cache_path))
    try:
        return dnnlib.util.open_url(url, return_filename=True, verbose=verbose)
    except OSError as err:
        problems.append(f'download failed: {str(err).splitlines()[0]}')
        raise DetectorNotFoundError(_not_found_message(file_name, url, problems, cache_path)) from None


def _not_found_message(file_name, url, problems, cache_path=None):
    base = detector_dir()
    lines = [f'Feature detector {file_name!r} is not available.']
    lines += [f'  - {p}' for p in problems]
    lines.append('Place the file at one of:')
    if base is not None and not dnnlib.util.is_url(base, allow_file_urls=True):
        lines.append(f'  {os.path.join(os.path.abspath(base), file_name)}   (the detector folder)')
    else:
        lines.append(f'  <DIR>/{file_name}   and pass --detector-dir=<DIR> or set {DETECTOR_DIR_ENV}=<DIR>')
    if cache_path is not None:
        lines.append(f'  {cache_path}   (the dnnlib download cache; root set by $DNNLIB_CACHE_DIR)')
    if url is not None and not url.startswith('file://'):
        lines.append(f'The official file is {url}')
    return '\n'.join(lines)


def file_sha256(path):
    """Hex SHA-256 of a file, memoised by (path, mtime, size): detectors are hundreds of MB."""
    stat = os.stat(path)
    memo = _digests.get(path)
    if memo is not None and memo[:2] == (stat.st_mtime_ns, stat.st_size):
        return memo[2]
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 22), b''):
            digest.update(chunk)
    _digests[path] = (stat.st_mtime_ns, stat.st_size, digest.hexdigest())
    return digest.hexdigest()


def verified_sha256(path, file_name=None):
    """SHA-256 of the detector at `path`, checked against the expected digest when one is known."""
    file_name = file_name or os.path.basename(path)
    actual = file_sha256(path)
    expected = expected_sha256(file_name)
    if expected is not None and actual != expected:
        raise DetectorChecksumError(f'{path}: SHA-256 is {actual}, expected {expected} for {file_name}. '
                                    f'The file is corrupt or a different network; replace it.')
    return actual


def load_detector(url, device, verbose=False):
    """Load a TorchScript detector (see module doc for the lookup) onto `device`, in eval mode.

    Returns the cached module on later calls with the same file and device. The file's SHA-256
    is checked when known and recorded for `used_digests()`.
    """
    path = resolve_detector(url, verbose=verbose)
    file_name = detector_file_name(_official_url(url))
    sha256 = verified_sha256(path, file_name)
    key = (os.path.abspath(path), str(torch.device(device)))
    if key not in _loaded:
        if verbose:
            print(f'Loading detector {file_name} from {path} (sha256 {sha256})')
        _loaded[key] = torch.jit.load(path, map_location='cpu').eval().to(device)
    _used[file_name] = sha256
    return _loaded[key]


def reset_used():
    """Forget which detectors were handed out (start of one metric)."""
    _used.clear()


def used_digests():
    """{file name: sha256} of the detectors loaded since the last `reset_used()`."""
    return dict(sorted(_used.items()))
