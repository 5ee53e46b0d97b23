"""Just-in-time building of the C++/CUDA plugins used by `torch_utils.ops` (official module path).

`get_plugin()` compiles a set of sources once per process with `torch.utils.cpp_extension.load`
(ninja) and caches the loaded module. `try_get_plugin()` wraps it for ops that have a pure PyTorch
fallback: any failure becomes one warning naming the op and the reason.

Build location: `$TORCH_EXTENSIONS_DIR/<module name>` when that variable is set (torch's default
root otherwise). With `TORCH_EXTENSIONS_DIR` set, sources that live in one folder are first copied
into `<build dir>/<md5 of the source files>`, so any edit of a source gets a fresh build directory
and a clean rebuild instead of relying on timestamps.
"""

import glob
import hashlib
import os
import shutil
import sys
import time
import uuid
import warnings

import torch
import torch.utils.cpp_extension

verbosity = 'brief'             # 'none' = silent, 'brief' = one line per plugin, 'full' = torch's build log.
_cached_plugins = dict()        # module name -> loaded plugin module.
_STALE_LOCK_SECONDS = 120       # A build lock this old, with no compiler running in its folder, is stale.
_VERBOSITY_LEVELS = ('none', 'brief', 'full')

#----------------------------------------------------------------------------

def _find_compiler_bindir():
    """Return the newest MSVC `bin/Hostx64/x64` folder on Windows, or None when none is installed."""
    roots = [os.environ.get('ProgramFiles(x86)', 'C:/Program Files (x86)'), os.environ.get('ProgramFiles', 'C:/Program Files')]
    candidates = []
    for root in roots:
        candidates += glob.glob(os.path.join(root, 'Microsoft Visual Studio', '*', '*', 'VC', 'Tools', 'MSVC', '*', 'bin', 'Hostx64', 'x64'))
    return sorted(candidates)[-1] if candidates else None

def _ensure_host_compiler():
    # torch finds gcc/clang on its own; on Windows cl.exe is only on PATH inside a developer prompt.
    if os.name != 'nt' or shutil.which('cl') is not None:
        return
    bindir = _find_compiler_bindir()
    if bindir is None:
        raise RuntimeError('No MSVC compiler found: install Visual Studio (C++ workload) or run from a developer prompt')
    os.environ['PATH'] = os.environ.get('PATH', '') + os.pathsep + bindir

#----------------------------------------------------------------------------

def _default_build_root():
    """The folder under which each plugin gets its own build directory (same layout as torch uses)."""
    root = os.environ.get('TORCH_EXTENSIONS_DIR')
    if root:
        return root
    if torch.version.hip is not None:
        accel = 'rocm' + torch.version.hip.replace('.', '')
    elif torch.version.cuda is not None:
        accel = 'cu' + torch.version.cuda.replace('.', '')
    else:
        accel = 'cpu'
    py_tag = f'py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, "abiflags", "")}'
    return os.path.join(torch.utils.cpp_extension.get_default_build_root(), f'{py_tag}_{accel}')

def _digest_of_files(paths):
    """md5 over the names and contents of `paths`: changes whenever any of the files changes."""
    md5 = hashlib.md5()
    for path in sorted(paths, key=os.path.basename):
        md5.update(os.path.basename(path).encode('utf-8') + b'\0')
        with open(path, 'rb') as f:
            md5.update(f.read())
        md5.update(b'\0')
    return md5.hexdigest()

def _copy_files_once(paths, dst_dir):
    """Copy `paths` into `dst_dir` unless it exists; safe when several processes race for it."""
    if os.path.isdir(dst_dir):
        return
    tmp_dir = f'{dst_dir}.tmp-{uuid.uuid4().hex}'
    os.makedirs(tmp_dir)
    for path in paths:
        shutil.copyfile(path, os.path.join(tmp_dir, os.path.basename(path)))
    try:
        os.replace(tmp_dir, dst_dir)  # Atomic: readers never see a half-copied folder.
    except OSError:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # Another process published the same folder first.
        if not os.path.isdir(dst_dir):
            raise

#----------------------------------------------------------------------------

def _build_running_in(build_dir):
    """True when some process (ninja, nvcc, c++) runs with its working directory inside `build_dir`."""
    try:
        import psutil
    except ImportError:
        return False  # Cannot tell; rely on the age of the lock alone.
    build_dir = os.path.realpath(build_dir)
    for proc in psutil.process_iter(['cwd']):
        cwd = proc.info.get('cwd')
        if cwd and (os.path.realpath(cwd) + os.sep).startswith(build_dir + os.sep):
            return True
    return False

def _lock_file_blocks():
    """True when this torch serialises builds with a lock file whose mere existence blocks (FileBaton,
    torch <= 2.13). Newer torch holds an OS lock on that file instead, so a leftover file is harmless."""
    return 'FileBaton' in vars(torch.utils.cpp_extension)

def remove_stale_lock(build_dir, max_age=None):
    """Delete `<build_dir>/lock` if an interrupted build left it behind; return True when removed.

    With a blocking lock file (see `_lock_file_blocks`) torch waits without limit for the file to
    disappear, so a build killed mid-way would make every later process hang. The lock counts as
    stale when it is older than `max_age` seconds (default `_STALE_LOCK_SECONDS`) and no process is
    compiling inside `build_dir`.
    """
    if not _lock_file_blocks():
        return False
    lock_path = os.path.join(build_dir, 'lock')
    max_age = _STALE_LOCK_SECONDS if max_age is None else max_age
    try:
        age = time.time() - os.path.getmtime(lock_path)
    except OSError:
        return False
    if age < max_age or _build_running_in(build_dir):
        return False
    if verbosity != 'none':
        print(f'Removing stale build lock "{lock_path}" ({age:.0f} s old, no build running): '
              'an earlier build was probably interrupted.')
    try:
        os.remove(lock_path)
    except FileNotFoundError:
        pass
    return True

#----------------------------------------------------------------------------

def _prepare_sources(module_name, sources, headers, build_kwargs):
    """Resolve the build directory and the source paths to compile; copy them when caching by digest."""
    build_dir = build_kwargs.pop('build_directory', None) or os.path.join(_default_build_root(), module_name)
    all_files = sources + headers
    if os.environ.get('TORCH_EXTENSIONS_DIR') and len({os.path.dirname(p) for p in all_files}) == 1:
        build_dir = os.path.join(build_dir, _digest_of_files(all_files))
        _copy_files_once(all_files, build_dir)
        sources = [os.path.join(build_dir, os.path.basename(p)) for p in sources]
    return build_dir, sources

def _library_exists(build_dir, module_name):
    return any(os.path.isfile(os.path.join(build_dir, module_name + ext)) for ext in ('.so', '.pyd'))

def get_plugin(module_name, sources, headers=None, source_dir=None, **build_kwargs):
    """Compile (first call only) and import a C++/CUDA extension module.

    Args:
        module_name:  Python module name of the plugin, e.g. 'bias_act_plugin'.
        sources:      list of .cpp/.cu files; relative to `source_dir` when that is given.
        headers:      list of headers the sources include (hashed and copied with them).
        source_dir:   folder the relative paths refer to.
        build_kwargs: passed on to `torch.utils.cpp_extension.load` (e.g. `extra_cuda_cflags`).
    Returns the loaded module; later calls return the cached module.
    Raises RuntimeError naming the plugin, the build directory and the reason when the build fails.
    """
    if verbosity not in _VERBOSITY_LEVELS:
        raise ValueError(f'custom_ops.verbosity is {verbosity!r}; expected one of {", ".join(_VERBOSITY_LEVELS)}')
    if module_name in _cached_plugins:
        return _cached_plugins[module_name]
    resolve = (lambda p: os.path.join(source_dir, p)) if source_dir is not None else (lambda p: p)
    sources = [os.path.abspath(resolve(p)) for p in sources]
    headers = [os.path.abspath(resolve(p)) for p in (headers or [])]

    build_kwargs = dict(build_kwargs)
    build_dir = None
    announced = False
    try:
        _ensure_host_compiler()
        build_dir, build_sources = _prepare_sources(module_name, sources, headers, build_kwargs)
        os.makedirs(build_dir, exist_ok=True)
        first_build = not _library_exists(build_dir, module_name)
        if verbosity == 'full' or (verbosity == 'brief' and first_build):
            note = ' (first build: this takes a few minutes)' if first_build else ''
            print(f'Building PyTorch plugin "{module_name}" in {build_dir}{note}')
        remove_stale_lock(build_dir)
        if verbosity == 'brief':
            print(f'Setting up PyTorch plugin "{module_name}"... ', end='', flush=True)
            announced = True
        module = torch.utils.cpp_extension.load(name=module_name, sources=build_sources, build_directory=build_dir,
                                                verbose=(verbosity == 'full'), **build_kwargs)
    except Exception as err:
        if verbosity == 'brief':
            print('Failed!' if announced else f'Setting up PyTorch plugin "{module_name}"... Failed!')
        where = f' in {build_dir}' if build_dir else ''
        raise RuntimeError(f'Could not build PyTorch plugin "{module_name}"{where}: {err}') from err
    if verbosity == 'brief':
        print('Done.')
    elif verbosity == 'full':
        print(f'Done setting up PyTorch plugin "{module_name}".')
    _cached_plugins[module_name] = module
    return module

#----------------------------------------------------------------------------

def _summarize_error(err, max_lines=12):
    """Shorten a build error (compiler logs run to hundreds of lines) to its first line and error lines."""
    lines = (str(err).strip() or type(err).__name__).splitlines()
    if len(lines) <= max_lines:
        return '\n'.join(lines)
    kept = [lines[0]] + [line for line in lines[1:] if 'error' in line.lower()][:max_lines - 1]
    return '\n'.join(kept) + f'\n[{len(lines) - len(kept)} more lines; set torch_utils.custom_ops.verbosity = "full" for the build log]'

def try_get_plugin(op_name, module_name, sources, headers=None, source_dir=None, **build_kwargs):
    """Like `get_plugin`, but for ops with a reference fallback: on any failure (no CUDA toolkit,
    no ninja, compile error...) emit one warning naming `op_name` and the reason, and return None."""
    try:
        return get_plugin(module_name, sources, headers=headers, source_dir=source_dir, **build_kwargs)
    except Exception as err:
        warnings.warn(f'Failed to build CUDA kernels for {op_name}. Falling back to slow reference implementation. '
                      f'Details: {_summarize_error(err)}', stacklevel=3)
        return None

#----------------------------------------------------------------------------
