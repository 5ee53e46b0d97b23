"""General helpers used across the code base: attribute dicts, logging, name lookup, files, downloads.

The public names and signatures match the official `dnnlib.util` (see docs/compat.md section 2) because
pickles reference `dnnlib.util.EasyDict` and option dicts name their components by dotted
`class_name` strings resolved here. The implementation is independent and needs no `distutils`.
"""

import ctypes
import fnmatch
import hashlib
import importlib
import inspect
import io
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

import numpy as np
import requests

# ---------------------------------------------------------------------------------------------------
# Containers and console helpers.


class EasyDict(dict):
    """A dict whose items can also be read, written and deleted as attributes (`d.key`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class Logger:
    """Tee everything printed to stdout and stderr into an optional log file.

    While open, `sys.stdout` and `sys.stderr` both point at this object; text goes to the file (if
    any) and to the stdout that was active at construction time. `close()` (or leaving a `with`
    block) restores both streams and closes the file.
    """

    def __init__(self, file_name=None, file_mode='w', should_flush=True):
        self.file = open(file_name, file_mode) if file_name is not None else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        sys.stdout = self
        sys.stderr = self

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def write(self, text):
        """Write `text` (str, or bytes decoded as UTF-8) to the log file and the console."""
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode('utf-8', errors='replace')
        if not text:  # some libraries issue empty writes purely to probe the stream
            return
        if self.file is not None:
            self.file.write(text)
        self.stdout.write(text)
        if self.should_flush:
            self.flush()

    def flush(self):
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()

    def isatty(self):
        # Progress bars ask this to decide on carriage-return updates; answer for the real console.
        return bool(getattr(self.stdout, 'isatty', lambda: False)())

    def close(self):
        """Flush, give the original streams back to `sys`, and close the log file."""
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None


# ---------------------------------------------------------------------------------------------------
# Cache directory.

_cache_dir_override = None


def set_cache_dir(path):
    """Force the cache root used by `make_cache_dir_path` (None restores the default lookup)."""
    global _cache_dir_override
    _cache_dir_override = path


def make_cache_dir_path(*paths):
    """Return a path under the dnnlib cache root (the directory is not created).

    Root precedence: `set_cache_dir()` > $DNNLIB_CACHE_DIR > $HOME/.cache/dnnlib >
    $USERPROFILE/.cache/dnnlib > <system temp dir>/.cache/dnnlib.
    """
    if _cache_dir_override is not None:
        return os.path.join(_cache_dir_override, *paths)
    if os.environ.get('DNNLIB_CACHE_DIR'):
        return os.path.join(os.environ['DNNLIB_CACHE_DIR'], *paths)
    for home_var in ('HOME', 'USERPROFILE'):
        if os.environ.get(home_var):
            return os.path.join(os.environ[home_var], '.cache', 'dnnlib', *paths)
    return os.path.join(tempfile.gettempdir(), '.cache', 'dnnlib', *paths)


# ---------------------------------------------------------------------------------------------------
# Small utilities.

_TRUE_WORDS = ('y', 'yes', 't', 'true', 'on', '1')
_FALSE_WORDS = ('n', 'no', 'f', 'false', 'off', '0')


def _parse_bool(text):
    """Map a yes/no style word to a bool; ValueError for anything else (replaces distutils' strtobool)."""
    word = str(text).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f'expected one of {_TRUE_WORDS + _FALSE_WORDS}, got {text!r}')


def format_time(seconds):
    """Render a duration compactly: '12s', '3m 05s', '2h 03m 04s', '1d 02h 03m'."""
    s = int(np.rint(seconds))
    if s < 60:
        return f'{s}s'
    if s < 60 * 60:
        return f'{s // 60}m {s % 60:02d}s'
    if s < 24 * 60 * 60:
        return f'{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s'
    return f'{s // 86400}d {s // 3600 % 24:02d}h {s // 60 % 60:02d}m'


def ask_yes_no(question):
    """Prompt on the console until the user answers yes or no; returns the answer as a bool."""
    while True:
        try:
            return _parse_bool(input(f'{question} [y/n] '))
        except ValueError:
            pass


def tuple_product(t):
    """Product of all elements of a tuple (1 for an empty tuple), e.g. the element count of a shape."""
    result = 1
    for value in t:
        result *= value
    return result


_CTYPES_BY_DTYPE_NAME = {
    'uint8': ctypes.c_ubyte, 'uint16': ctypes.c_uint16, 'uint32': ctypes.c_uint32, 'uint64': ctypes.c_uint64,
    'int8': ctypes.c_byte, 'int16': ctypes.c_int16, 'int32': ctypes.c_int32, 'int64': ctypes.c_int64,
    'float32': ctypes.c_float, 'float64': ctypes.c_double,
}


def get_dtype_and_ctype(type_obj):
    """Return `(numpy dtype, ctypes type)` for a type name, a type (e.g. np.float32) or a dtype."""
    if isinstance(type_obj, str):
        name = type_obj
    elif isinstance(type_obj, np.dtype):
        name = type_obj.name
    elif hasattr(type_obj, '__name__'):
        name = type_obj.__name__
    elif hasattr(type_obj, 'name'):
        name = type_obj.name
    else:
        raise TypeError(f'get_dtype_and_ctype: cannot tell the type name of {type_obj!r}')
    if name not in _CTYPES_BY_DTYPE_NAME:
        raise ValueError(f'get_dtype_and_ctype: unsupported type {name!r}; accepted: {sorted(_CTYPES_BY_DTYPE_NAME)}')
    dtype, ctype = np.dtype(name), _CTYPES_BY_DTYPE_NAME[name]
    assert dtype.itemsize == ctypes.sizeof(ctype)
    return dtype, ctype


def is_pickleable(obj):
    """True if `pickle` can serialise `obj` (the bytes are thrown away)."""
    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------------
# Resolving dotted names such as 'training.networks.Generator' or 'np.random.RandomState'.

_NAME_PREFIX_ALIASES = (('np.', 'numpy.'), ('tf.', 'tensorflow.'))


def _expand_prefix(obj_name):
    for alias, full in _NAME_PREFIX_ALIASES:
        if obj_name.startswith(alias):
            return full + obj_name[len(alias):]
    return obj_name


def get_obj_from_module(module, obj_name):
    """Follow the dotted attribute path `obj_name` inside `module` ('' returns the module itself)."""
    obj = module
    for part in obj_name.split('.') if obj_name else []:
        obj = getattr(obj, part)
    return obj


def get_module_from_obj_name(obj_name):
    """Split a dotted name into `(imported module, attribute path inside it)`.

    The longest importable module prefix whose remainder resolves to an object wins. Raises
    ImportError naming `obj_name` when nothing matches; an import failing inside an existing module
    (a missing dependency) is re-raised as is rather than hidden.
    """
    full_name = _expand_prefix(obj_name)
    parts = full_name.split('.')
    for split in range(len(parts), 0, -1):
        module_name, local_name = '.'.join(parts[:split]), '.'.join(parts[split:])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only swallow "this candidate module does not exist", not errors from inside it.
            if e.name is not None and not (module_name == e.name or module_name.startswith(e.name + '.')):
                raise
            continue
        try:
            get_obj_from_module(module, local_name)
        except AttributeError:
            continue
        return module, local_name
    raise ImportError(f'Cannot find {obj_name!r}: no importable module prefix of {full_name!r} defines it')


def get_obj_by_name(name):
    """Return the Python object (class, function, constant, module) named by a dotted path."""
    module, local_name = get_module_from_obj_name(name)
    return get_obj_from_module(module, local_name)


def call_func_by_name(*args, func_name=None, **kwargs):
    """Look up the callable `func_name` by dotted path and call it with the remaining arguments."""
    if func_name is None:
        raise ValueError('call_func_by_name: func_name must be given')
    func = get_obj_by_name(func_name)
    if not callable(func):
        raise TypeError(f'call_func_by_name: {func_name!r} resolves to a non-callable {type(func).__name__}')
    return func(*args, **kwargs)


def construct_class_by_name(*args, class_name=None, **kwargs):
    """Instantiate the class named by the dotted path `class_name` with the remaining arguments."""
    return call_func_by_name(*args, func_name=class_name, **kwargs)


def get_module_dir_by_obj_name(obj_name):
    """Directory holding the source file of the module that defines `obj_name`."""
    module, _ = get_module_from_obj_name(obj_name)
    return os.path.dirname(inspect.getfile(module))


def is_top_level_function(obj):
    """True if `obj` is callable and reachable by its own name at the top level of its module."""
    module = sys.modules.get(getattr(obj, '__module__', None) or '')
    name = getattr(obj, '__name__', None)
    return callable(obj) and module is not None and name is not None and name in module.__dict__


def get_top_level_function_name(obj):
    """Dotted `module.name` for a top-level function; a script's `__main__` becomes its file stem."""
    if not is_top_level_function(obj):
        raise ValueError(f'get_top_level_function_name: {obj!r} is not a top-level function of its module')
    module_name = obj.__module__
    if module_name == '__main__':
        module_name = os.path.splitext(os.path.basename(sys.modules[module_name].__file__))[0]
    return f'{module_name}.{obj.__name__}'


# ---------------------------------------------------------------------------------------------------
# File system helpers.


def list_dir_recursively_with_ignore(dir_path, ignores=None, add_base_to_relative=False):
    """List every file below `dir_path` as `(absolute path, relative path)` pairs, sorted by walk order.

    `ignores` are fnmatch patterns matched against file and directory names; a matching directory
    is skipped entirely. With `add_base_to_relative`, relative paths start with the base folder name.
    """
    if not os.path.isdir(dir_path):
        raise NotADirectoryError(f'list_dir_recursively_with_ignore: not a directory: {dir_path!r}')
    patterns = list(ignores or [])
    base_name = os.path.basename(os.path.normpath(dir_path))

    def ignored(name):
        return any(fnmatch.fnmatch(name, p) for p in patterns)

    result = []
    for root, dirs, files in os.walk(dir_path):
        dirs[:] = sorted(d for d in dirs if not ignored(d))  # pruning in place stops the walk descending
        for file_name in sorted(f for f in files if not ignored(f)):
            abs_path = os.path.join(root, file_name)
            rel_path = os.path.relpath(abs_path, dir_path)
            if add_base_to_relative:
                rel_path = os.path.join(base_name, rel_path)
            result.append((abs_path, rel_path))
    return result


def copy_files_and_create_dirs(files):
    """Copy each `(source, destination)` pair, creating destination directories as needed."""
    for src, dst in files:
        dst_dir = os.path.dirname(dst)
        if dst_dir:
            os.makedirs(dst_dir, exist_ok=True)
        shutil.copyfile(src, dst)


# ---------------------------------------------------------------------------------------------------
# URLs and downloads.

_MAX_TRANSIENT_ATTEMPTS = 3      # retries cover hiccups (timeouts, 5xx), not an unreachable host
_RETRY_BACKOFF_S = 0.5           # doubled after each failed attempt
_REQUEST_TIMEOUT_S = (10, 60)    # (connect, read) seconds
_PROGRESS_MIN_BYTES = 1 << 20    # smaller downloads finish before a progress bar is useful
_CHUNK_BYTES = 1 << 16


class DownloadError(OSError):
    """A URL could not be fetched; the message says where to place the file by hand."""


class ChecksumError(ValueError):
    """A file's SHA-256 digest differs from the expected one."""


class _TransientDownloadError(Exception):
    """Internal: a failure worth retrying (timeout mid-transfer, HTTP 5xx/429, truncated body)."""


def is_url(obj, allow_file_urls=False):
    """True if `obj` is a string that looks like a network URL (`scheme://host.tld/...`).

    `file://` URLs count only with `allow_file_urls=True`.
    """
    if not isinstance(obj, str) or '://' not in obj:
        return False
    if obj.startswith('file://'):
        return allow_file_urls
    try:
        parsed = urllib.parse.urlparse(obj)
    except ValueError:
        return False
    return bool(parsed.scheme) and '.' in parsed.netloc


def _url_cache_path(url, cache_dir):
    """Deterministic cache location `<cache_dir>/<md5(url)>_<sanitised file name>`."""
    url_md5 = hashlib.md5(url.encode('utf-8')).hexdigest()
    leaf = urllib.parse.unquote(urllib.parse.urlparse(url).path.rstrip('/').split('/')[-1]) or 'download'
    safe_name = re.sub(r'[^0-9A-Za-z._-]', '_', leaf)[:128]
    return os.path.join(cache_dir, f'{url_md5}_{safe_name}')


def _find_cached(url, cache_dir):
    """Return an existing cache entry for `url`, or None.

    Besides our own name, any single `<md5(url)>_*` file is accepted, which is how official
    dnnlib names its entries (it derives the suffix differently), so a shared cache keeps working.
    """
    expected = _url_cache_path(url, cache_dir)
    if os.path.isfile(expected):
        return expected
    prefix = os.path.basename(expected).split('_', 1)[0] + '_'
    try:
        matches = sorted(n for n in os.listdir(cache_dir) if n.startswith(prefix))
    except OSError:
        return None
    return os.path.join(cache_dir, matches[0]) if len(matches) == 1 else None


def _check_sha256(stream, expected, what):
    """Raise ChecksumError unless the SHA-256 of the binary `stream` (read to its end) is `expected`."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b''):
        digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected:
        raise ChecksumError(f'SHA-256 mismatch for {what}: expected {expected}, got {actual}. '
                            f'The file is corrupt or not the one expected; delete or replace it.')


def _normalise_sha256(sha256):
    if sha256 is None:
        return None
    digest = str(sha256).strip().lower()
    if not re.fullmatch(r'[0-9a-f]{64}', digest):
        raise ValueError(f'open_url: sha256 must be 64 hexadecimal characters, got {sha256!r}')
    return digest


def _stream_response(url, out_file, verbose):
    """One GET of `url` streamed into the binary file object `out_file`."""
    try:
        response = requests.get(url, stream=True, timeout=_REQUEST_TIMEOUT_S)
    except requests.exceptions.ConnectionError as e:  # DNS failure, refused, unreachable: will not heal by retrying
        raise DownloadError(f'cannot connect ({type(e).__name__}: {e})') from e
    except requests.exceptions.RequestException as e:
        raise _TransientDownloadError(f'{type(e).__name__}: {e}') from e
    with response:
        if response.status_code == 429 or response.status_code >= 500:
            raise _TransientDownloadError(f'HTTP {response.status_code} {response.reason}')
        if response.status_code >= 400:
            raise DownloadError(f'HTTP {response.status_code} {response.reason}')
        host = urllib.parse.urlparse(url).netloc
        if host.endswith('drive.google.com') and 'text/html' in response.headers.get('Content-Type', ''):
            # Google Drive answers large files with a confirmation page; we do not script around it.
            raise DownloadError('Google Drive returned an HTML page (confirmation or quota) instead of the file')
        total = int(response.headers.get('Content-Length', 0)) or None
        from tqdm import tqdm  # imported lazily: only downloads need it
        bar = tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, leave=False,
                   desc=os.path.basename(urllib.parse.urlparse(url).path) or url,
                   disable=not verbose or (total is not None and total < _PROGRESS_MIN_BYTES))
        received = 0
        try:
            with bar:
                for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                    out_file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except requests.exceptions.RequestException as e:
            raise _TransientDownloadError(f'transfer interrupted ({type(e).__name__}: {e})') from e
        if total is not None and received != total:
            raise _TransientDownloadError(f'truncated transfer: got {received} of {total} bytes')


def _download(url, out_file, num_attempts, verbose):
    """Fetch `url` into `out_file`, retrying only transient failures a few times with short backoff."""
    attempts = max(1, min(int(num_attempts), _MAX_TRANSIENT_ATTEMPTS))
    if verbose:
        print(f'Downloading {url} ...', flush=True)
    for attempt in range(attempts):
        out_file.seek(0)
        out_file.truncate()
        try:
            _stream_response(url, out_file, verbose)
            return
        except _TransientDownloadError as e:
            if attempt + 1 == attempts:
                raise DownloadError(f'{e} (after {attempts} attempts)') from e
            time.sleep(_RETRY_BACKOFF_S * 2 ** attempt)


def _open_local(path, return_filename, sha256, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f'open_url: {what} {path!r} does not exist or is not a file')
    if sha256 is not None:
        with open(path, 'rb') as f:
            _check_sha256(f, sha256, path)
    return path if return_filename else open(path, 'rb')


def _download_to_cache(url, cache_path, num_attempts, verbose, sha256):
    """Download into a temp file beside `cache_path`, verify it, then rename it into place atomically."""
    cache_dir = os.path.dirname(cache_path)
    os.makedirs(cache_dir, exist_ok=True)
    tmp_path = os.path.join(cache_dir, f'tmp_{uuid.uuid4().hex}_{os.path.basename(cache_path)}')
    try:
        with open(tmp_path, 'w+b') as f:
            _download(url, f, num_attempts, verbose)
            if sha256 is not None:
                f.seek(0)
                _check_sha256(f, sha256, f'download of {url} (not cached at {cache_path})')
        os.replace(tmp_path, cache_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def open_url(url, cache_dir=None, num_attempts=10, verbose=True, return_filename=False, cache=True, *, sha256=None):
    """Open a local path, a `file://` URL or an http(s) URL as a binary file object.

    Downloads are cached as `<cache_dir>/<md5(url)>_<file name>` (default cache_dir:
    `make_cache_dir_path('downloads')`) and a cache hit does not touch the network. Connection
    failures are not retried; transient ones (timeouts, HTTP 5xx) at most 3 times (fewer if
    `num_attempts` is smaller). On failure a DownloadError names the URL and the cache path where the
    file can be placed by hand. `sha256` (hex digest) makes any file whose digest differs an error.
    With `return_filename=True` the local path is returned instead (needs `cache=True` for URLs).
    """
    sha256 = _normalise_sha256(sha256)
    if num_attempts < 1:
        raise ValueError(f'open_url: num_attempts must be >= 1, got {num_attempts}')
    if return_filename and not cache:
        raise ValueError('open_url: return_filename=True needs cache=True (an uncached download has no file name)')
    if not re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', url):
        return _open_local(url, return_filename, sha256, 'local file')
    if url.startswith('file://'):
        path = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        return _open_local(path, return_filename, sha256, f'file of URL {url!r}:')
    if not is_url(url):
        raise ValueError(f'open_url: {url!r} is neither a local path nor a valid http(s)/file URL')

    cache_dir = cache_dir if cache_dir is not None else make_cache_dir_path('downloads')
    cache_path = _url_cache_path(url, cache_dir)
    if cache:
        cached = _find_cached(url, cache_dir)
        if cached is not None:
            return _open_local(cached, return_filename, sha256, 'cached file')
    try:
        if cache:
            _download_to_cache(url, cache_path, num_attempts, verbose, sha256)
            return cache_path if return_filename else open(cache_path, 'rb')
        buffer = io.BytesIO()
        _download(url, buffer, num_attempts, verbose)
    except DownloadError as e:
        raise DownloadError(f'Could not download {url}: {e}\n'
                            f'If this machine is offline, fetch the file elsewhere and place it at:\n'
                            f'  {cache_path}\n'
                            f'(the cache root can be changed with $DNNLIB_CACHE_DIR)') from e
    buffer.seek(0)
    if sha256 is not None:
        _check_sha256(buffer, sha256, f'download of {url}')
        buffer.seek(0)
    return buffer
