"""torch_utils.custom_ops: plugin building (with torch's builder replaced by fakes), messages, source
digests, stale build locks, and the one-warning fallback of bias_act when a build fails."""

import os
import time
import types
import warnings

import pytest
import torch
import torch.utils.cpp_extension

from torch_utils import custom_ops
from torch_utils.ops import bias_act as ba

@pytest.fixture
def fresh_state(monkeypatch, tmp_path):
    """Empty plugin cache, brief output, builds under tmp_path, bias_act not initialised."""
    monkeypatch.setattr(custom_ops, '_cached_plugins', {})
    monkeypatch.setattr(custom_ops, 'verbosity', 'brief')
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path / 'ext'))
    monkeypatch.setattr(ba, '_inited', False)
    monkeypatch.setattr(ba, '_plugin', None)
    return tmp_path

@pytest.fixture
def sources(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name, text in [('demo.cpp', '// host\n'), ('demo.cu', '// device\n'), ('demo.h', '// shared\n')]:
        (src / name).write_text(text)
    return src

class FakeLoad:
    """Stands in for torch.utils.cpp_extension.load: records calls, returns a module-like object."""
    def __init__(self, error=None, check=None):
        self.calls, self.error, self.check = [], error, check

    def __call__(self, name, sources, build_directory, verbose, **kwargs):
        self.calls.append(dict(name=name, sources=sources, build_directory=build_directory, verbose=verbose, **kwargs))
        if self.check:
            self.check(build_directory)
        if self.error:
            raise self.error
        return types.SimpleNamespace(__name__=name, __file__=os.path.join(build_directory, name + '.so'))

def _get_demo(src, **kwargs):
    return custom_ops.get_plugin('demo_plugin', ['demo.cpp', 'demo.cu'], headers=['demo.h'], source_dir=str(src), **kwargs)

#----------------------------------------------------------------------------
# get_plugin

def test_get_plugin_prints_brief_messages_and_caches(fresh_state, sources, monkeypatch, capsys):
    fake = FakeLoad()
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', fake)
    module = _get_demo(sources, extra_cuda_cflags=['--use_fast_math'])
    out = capsys.readouterr().out
    assert 'Setting up PyTorch plugin "demo_plugin"... Done.' in out
    build_dir = fake.calls[0]['build_directory']
    assert build_dir in out                      # Where it builds is shown.
    assert fake.calls[0]['extra_cuda_cflags'] == ['--use_fast_math']
    assert fake.calls[0]['verbose'] is False
    assert _get_demo(sources) is module and len(fake.calls) == 1
    assert custom_ops._cached_plugins['demo_plugin'] is module

def test_sources_are_copied_into_a_digest_folder(fresh_state, sources, monkeypatch):
    fake = FakeLoad()
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', fake)
    _get_demo(sources)
    build_dir = fake.calls[0]['build_directory']
    assert os.path.dirname(build_dir) == str(fresh_state / 'ext' / 'demo_plugin')
    assert len(os.path.basename(build_dir)) == 32   # md5 hex digest.
    assert fake.calls[0]['sources'] == [os.path.join(build_dir, 'demo.cpp'), os.path.join(build_dir, 'demo.cu')]
    for name in ('demo.cpp', 'demo.cu', 'demo.h'):
        assert open(os.path.join(build_dir, name)).read() == (sources / name).read_text()

    # An edited source (even a header) gets a new folder, hence a clean rebuild.
    custom_ops._cached_plugins.clear()
    (sources / 'demo.h').write_text('// shared, edited\n')
    _get_demo(sources)
    assert fake.calls[1]['build_directory'] != build_dir
    assert not os.path.exists(build_dir + '.tmp')

def test_without_extensions_dir_sources_stay_in_place(fresh_state, sources, monkeypatch):
    monkeypatch.delenv('TORCH_EXTENSIONS_DIR')
    monkeypatch.setattr(torch.utils.cpp_extension, 'get_default_build_root', lambda: str(fresh_state / 'default'))
    fake = FakeLoad()
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', fake)
    _get_demo(sources)
    assert fake.calls[0]['sources'] == [str(sources / 'demo.cpp'), str(sources / 'demo.cu')]
    assert fake.calls[0]['build_directory'].startswith(str(fresh_state / 'default'))
    assert fake.calls[0]['build_directory'].endswith('demo_plugin')

def test_failed_build_prints_failed_and_raises_with_reason(fresh_state, sources, monkeypatch, capsys):
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', FakeLoad(error=OSError('ninja is missing (simulated)')))
    with pytest.raises(RuntimeError, match='demo_plugin.*ninja is missing') as info:
        _get_demo(sources)
    assert isinstance(info.value.__cause__, OSError)
    assert 'Setting up PyTorch plugin "demo_plugin"... Failed!' in capsys.readouterr().out
    assert 'demo_plugin' not in custom_ops._cached_plugins

def test_verbosity_none_is_silent_and_bad_verbosity_is_named(fresh_state, sources, monkeypatch, capsys):
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', FakeLoad())
    monkeypatch.setattr(custom_ops, 'verbosity', 'none')
    _get_demo(sources)
    assert capsys.readouterr().out == ''
    monkeypatch.setattr(custom_ops, 'verbosity', 'loud')
    with pytest.raises(ValueError, match="'loud'"):
        custom_ops.get_plugin('other_plugin', ['demo.cpp'], source_dir=str(sources))

def test_long_build_errors_are_summarized():
    log = 'Error building extension:\n' + '\n'.join(f'[{i}/9] nvcc ...' for i in range(50)) + '\nbias_act.cu(3): error: bad\n'
    summary = custom_ops._summarize_error(RuntimeError(log))
    assert summary.splitlines()[0] == 'Error building extension:'
    assert 'bias_act.cu(3): error: bad' in summary and '[7/9]' not in summary and 'verbosity' in summary

#----------------------------------------------------------------------------
# Stale build locks

@pytest.fixture
def blocking_lock_files(monkeypatch):
    """Behave as with torch <= 2.13, where a leftover lock file blocks every later build."""
    monkeypatch.setattr(custom_ops, '_lock_file_blocks', lambda: True)

def _make_lock(build_dir, age_seconds):
    os.makedirs(build_dir, exist_ok=True)
    lock = os.path.join(build_dir, 'lock')
    open(lock, 'w').close()
    old = time.time() - age_seconds
    os.utime(lock, (old, old))
    return lock

def test_old_lock_is_removed_with_a_message(tmp_path, monkeypatch, capsys, blocking_lock_files):
    monkeypatch.setattr(custom_ops, 'verbosity', 'brief')
    lock = _make_lock(str(tmp_path / 'build'), age_seconds=3600)
    assert custom_ops.remove_stale_lock(str(tmp_path / 'build')) is True
    assert not os.path.exists(lock)
    out = capsys.readouterr().out
    assert lock in out and 'stale' in out

def test_recent_lock_or_running_build_is_kept(tmp_path, monkeypatch, blocking_lock_files):
    recent = _make_lock(str(tmp_path / 'recent'), age_seconds=5)
    assert custom_ops.remove_stale_lock(str(tmp_path / 'recent')) is False and os.path.exists(recent)
    busy = _make_lock(str(tmp_path / 'busy'), age_seconds=3600)
    monkeypatch.setattr(custom_ops, '_build_running_in', lambda build_dir: True)
    assert custom_ops.remove_stale_lock(str(tmp_path / 'busy')) is False and os.path.exists(busy)
    assert custom_ops.remove_stale_lock(str(tmp_path / 'no_lock_here')) is False

def test_lock_file_is_left_alone_when_torch_uses_os_locks(tmp_path, monkeypatch):
    monkeypatch.setattr(custom_ops, '_lock_file_blocks', lambda: False)
    lock = _make_lock(str(tmp_path / 'build'), age_seconds=3600)
    assert custom_ops.remove_stale_lock(str(tmp_path / 'build')) is False and os.path.exists(lock)

def test_lock_semantics_are_detected_from_torch():
    uses_baton = 'FileBaton' in vars(torch.utils.cpp_extension)
    assert custom_ops._lock_file_blocks() is uses_baton

def test_running_build_is_detected_from_process_cwd(tmp_path, monkeypatch):
    pytest.importorskip('psutil')
    build_dir = tmp_path / 'build'
    (build_dir / 'sub').mkdir(parents=True)
    assert custom_ops._build_running_in(str(build_dir)) is False
    monkeypatch.chdir(build_dir / 'sub')   # This process now looks like a compiler working there.
    assert custom_ops._build_running_in(str(build_dir)) is True

def test_get_plugin_clears_a_stale_lock_before_building(fresh_state, sources, monkeypatch, capsys, blocking_lock_files):
    fake = FakeLoad()
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', fake)
    _get_demo(sources)
    build_dir = fake.calls[0]['build_directory']
    custom_ops._cached_plugins.clear()
    lock = _make_lock(build_dir, age_seconds=3600)
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', FakeLoad(check=lambda d: os.path.exists(os.path.join(d, 'lock')) and pytest.fail('lock still there')))
    _get_demo(sources)
    assert not os.path.exists(lock)
    assert lock in capsys.readouterr().out

#----------------------------------------------------------------------------
# bias_act's fallback when its plugin cannot be built

def _check_fallback_warning(caught, reason):
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert message.startswith('Failed to build CUDA kernels for bias_act. Falling back to slow reference implementation.')
    assert reason in message

def test_failed_torch_build_warns_once_and_reference_still_works(fresh_state, monkeypatch, capsys):
    monkeypatch.setattr(torch.utils.cpp_extension, 'load', FakeLoad(error=RuntimeError('nvcc not found (simulated)')))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert ba._init() is False
    _check_fallback_warning(caught, 'nvcc not found (simulated)')
    assert 'Setting up PyTorch plugin "bias_act_plugin"... Failed!' in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert ba._init() is False                       # No retry, no second warning.
        x = torch.linspace(-2, 2, 12).reshape(1, 3, 4)
        b = torch.tensor([0.5, -0.5, 0.0])
        y = ba.bias_act(x, b, act='lrelu', clamp=1.0)
    assert caught == []
    want = torch.nn.functional.leaky_relu(x + b.reshape(1, 3, 1), 0.2) * 2 ** 0.5
    torch.testing.assert_close(y, want.clamp(-1, 1))

def test_failing_get_plugin_warns_once(fresh_state, monkeypatch):
    calls = []
    def broken_get_plugin(module_name, sources, **kwargs):
        calls.append((module_name, sources, kwargs))
        raise RuntimeError('no CUDA toolkit (simulated)')
    monkeypatch.setattr(custom_ops, 'get_plugin', broken_get_plugin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert ba._init() is False
        assert ba._init() is False
    _check_fallback_warning(caught, 'no CUDA toolkit (simulated)')
    assert len(calls) == 1
    module_name, srcs, kwargs = calls[0]
    assert module_name == 'bias_act_plugin' and srcs == ['bias_act.cpp', 'bias_act.cu']
    assert kwargs['headers'] == ['bias_act.h'] and kwargs['extra_cuda_cflags'] == ['--use_fast_math']
    assert os.path.isfile(os.path.join(kwargs['source_dir'], 'bias_act.cu'))
