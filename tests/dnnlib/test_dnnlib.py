"""Tests for dnnlib.util: containers, name lookup, cache paths, logging and open_url (no real network)."""

import functools
import hashlib
import http.server
import io
import os
import pickle
import sys
import threading

import numpy as np
import pytest
import requests

import dnnlib
from dnnlib import util

# ---------------------------------------------------------------------------------------------------
# EasyDict, formatting, small helpers.


def test_easydict_attribute_semantics():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d['b'] == 2 and d.a == 1
    del d.a
    assert 'a' not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    with pytest.raises(AttributeError):
        del d.missing
    assert dnnlib.EasyDict is util.EasyDict


def test_easydict_pickles_by_reference_to_official_path():
    d = dnnlib.EasyDict(x=[1, 2], nested=dnnlib.EasyDict(y='z'))
    blob = pickle.dumps(d)
    assert b'dnnlib.util' in blob and b'EasyDict' in blob
    back = pickle.loads(blob)
    assert type(back) is util.EasyDict and type(back.nested) is util.EasyDict
    assert back == d and back.nested.y == 'z'


@pytest.mark.parametrize('seconds, text', [
    (12, '12s'), (0.4, '0s'), (185, '3m 05s'), (2 * 3600 + 3 * 60 + 4, '2h 03m 04s'),
    (86400 + 2 * 3600 + 3 * 60 + 59, '1d 02h 03m'),
])
def test_format_time(seconds, text):
    assert util.format_time(seconds) == text


def test_small_helpers(monkeypatch):
    assert util.tuple_product((2, 3, 4)) == 24 and util.tuple_product(()) == 1
    dtype, ctype = util.get_dtype_and_ctype(np.float32)
    assert dtype == np.float32 and ctype.__name__ == 'c_float'
    assert util.get_dtype_and_ctype('uint8')[0] == np.uint8
    assert util.get_dtype_and_ctype(np.dtype('int64'))[0] == np.int64
    with pytest.raises(ValueError, match='complex64'):
        util.get_dtype_and_ctype('complex64')
    assert util.is_pickleable([1, 'a']) and not util.is_pickleable(lambda: 0)
    answers = iter(['maybe', 'YES'])
    monkeypatch.setattr('builtins.input', lambda prompt: next(answers))
    assert util.ask_yes_no('Proceed?') is True
    assert util._parse_bool('off') is False


# ---------------------------------------------------------------------------------------------------
# Dotted-name resolution.


def test_name_lookup_and_construction():
    assert util.get_obj_by_name('np.float32') is np.float32
    assert util.get_obj_by_name('os.path.join') is os.path.join
    module, local = util.get_module_from_obj_name('os.path.join')
    assert module is os.path and local == 'join'
    module, local = util.get_module_from_obj_name('dnnlib.util.EasyDict')
    assert module is util and local == 'EasyDict'
    rs = util.construct_class_by_name(5, class_name='np.random.RandomState')
    assert isinstance(rs, np.random.RandomState)
    assert rs.randint(1000) == np.random.RandomState(5).randint(1000)
    d = util.construct_class_by_name(class_name='dnnlib.EasyDict', k=3)
    assert isinstance(d, util.EasyDict) and d.k == 3
    assert util.call_func_by_name([1, 2, 3], func_name='np.sum') == 6
    assert util.get_module_dir_by_obj_name('dnnlib.util.EasyDict') == os.path.dirname(util.__file__)


def test_name_lookup_errors():
    with pytest.raises(ImportError, match='no_such_module_xyz'):
        util.get_obj_by_name('no_such_module_xyz.Thing')
    with pytest.raises(ImportError, match='NoSuchClass'):
        util.construct_class_by_name(class_name='dnnlib.util.NoSuchClass')
    with pytest.raises(TypeError, match='non-callable'):
        util.call_func_by_name(func_name='np.pi')
    with pytest.raises(ValueError):
        util.call_func_by_name()


def test_top_level_function_name():
    assert util.is_top_level_function(util.format_time)
    assert util.get_top_level_function_name(util.format_time) == 'dnnlib.util.format_time'
    assert not util.is_top_level_function(lambda: 0)
    with pytest.raises(ValueError):
        util.get_top_level_function_name(lambda: 0)


# ---------------------------------------------------------------------------------------------------
# Files and cache directory.


def test_list_and_copy_files(tmp_path):
    src = tmp_path / 'src'
    (src / 'sub').mkdir(parents=True)
    (src / 'skip_dir').mkdir()
    for rel in ['a.py', 'b.pyc', 'sub/c.py', 'skip_dir/d.py']:
        (src / rel).write_text(rel)
    listing = util.list_dir_recursively_with_ignore(str(src), ignores=['*.pyc', 'skip_dir'])
    assert sorted(rel for _, rel in listing) == ['a.py', os.path.join('sub', 'c.py')]
    with_base = util.list_dir_recursively_with_ignore(str(src), add_base_to_relative=True)
    assert os.path.join('src', 'a.py') in [rel for _, rel in with_base] and len(with_base) == 4
    dst = tmp_path / 'dst'
    util.copy_files_and_create_dirs([(abs_path, str(dst / rel)) for abs_path, rel in listing])
    assert (dst / 'sub' / 'c.py').read_text() == 'sub/c.py' and not (dst / 'b.pyc').exists()


def test_cache_dir_precedence(monkeypatch, tmp_path):
    for var in ['DNNLIB_CACHE_DIR', 'HOME', 'USERPROFILE']:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(util, '_cache_dir_override', None)
    import tempfile
    assert util.make_cache_dir_path('x') == os.path.join(tempfile.gettempdir(), '.cache', 'dnnlib', 'x')
    monkeypatch.setenv('USERPROFILE', str(tmp_path / 'up'))
    assert util.make_cache_dir_path('x') == os.path.join(str(tmp_path / 'up'), '.cache', 'dnnlib', 'x')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert util.make_cache_dir_path('x', 'y') == os.path.join(str(tmp_path / 'home'), '.cache', 'dnnlib', 'x', 'y')
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'env'))
    assert dnnlib.make_cache_dir_path('x') == os.path.join(str(tmp_path / 'env'), 'x')
    util.set_cache_dir(str(tmp_path / 'forced'))
    assert util.make_cache_dir_path('x') == os.path.join(str(tmp_path / 'forced'), 'x')
    util.set_cache_dir(None)
    assert util.make_cache_dir_path() == str(tmp_path / 'env')


def test_logger_tees_and_restores(tmp_path):
    log_file = tmp_path / 'log.txt'
    old_out, old_err = sys.stdout, sys.stderr
    with util.Logger(file_name=str(log_file)) as logger:
        assert sys.stdout is logger and sys.stderr is logger
        print('hello stdout')
        sys.stderr.write('hello stderr\n')
        logger.write(b'bytes too\n')
    assert sys.stdout is old_out and sys.stderr is old_err
    assert log_file.read_text() == 'hello stdout\nhello stderr\nbytes too\n'


# ---------------------------------------------------------------------------------------------------
# URLs and open_url.


def test_is_url():
    assert util.is_url('https://example.com/a.pt')
    assert not util.is_url('/tmp/a.pt') and not util.is_url(None) and not util.is_url('http://localhost/x')
    assert not util.is_url('file:///tmp/a.pt') and util.is_url('file:///tmp/a.pt', allow_file_urls=True)


def test_open_url_local_paths(tmp_path):
    f = tmp_path / 'w.bin'
    f.write_bytes(b'abc')
    with util.open_url(str(f)) as fh:
        assert fh.read() == b'abc'
    assert util.open_url(str(f), return_filename=True) == str(f)
    with util.open_url(f.as_uri()) as fh:
        assert fh.read() == b'abc'
    with pytest.raises(FileNotFoundError, match='missing.bin'):
        util.open_url(str(tmp_path / 'missing.bin'))
    with pytest.raises(FileNotFoundError, match='missing.bin'):
        util.open_url((tmp_path / 'missing.bin').as_uri())


def _forbid_network(monkeypatch, exc=None):
    """Make every requests call fail; returns the list of URLs that were attempted."""
    calls = []

    def fake_request(self, method, url, *args, **kwargs):
        calls.append(url)
        raise exc or AssertionError(f'network used for {url}')
    monkeypatch.setattr(requests.Session, 'request', fake_request)
    return calls


URL = 'https://example.invalid.org/models/net.pkl'


def test_open_url_cache_hit_skips_network(monkeypatch, tmp_path):
    calls = _forbid_network(monkeypatch)
    cache_path = util._url_cache_path(URL, str(tmp_path))
    assert os.path.basename(cache_path) == hashlib.md5(URL.encode()).hexdigest() + '_net.pkl'
    with open(cache_path, 'wb') as f:
        f.write(b'cached!')
    with util.open_url(URL, cache_dir=str(tmp_path)) as fh:
        assert fh.read() == b'cached!'
    assert util.open_url(URL, cache_dir=str(tmp_path), return_filename=True) == cache_path
    ok_digest = hashlib.sha256(b'cached!').hexdigest()
    with util.open_url(URL, cache_dir=str(tmp_path), sha256=ok_digest.upper()) as fh:
        assert fh.read() == b'cached!'
    assert calls == []


def test_open_url_accepts_official_style_cache_name(monkeypatch, tmp_path):
    _forbid_network(monkeypatch)
    official_name = hashlib.md5(URL.encode()).hexdigest() + '_https___example.invalid.org_models_net.pkl'
    (tmp_path / official_name).write_bytes(b'official')
    assert util.open_url(URL, cache_dir=str(tmp_path), return_filename=True) == str(tmp_path / official_name)


def test_open_url_offline_error_is_fast_and_helpful(monkeypatch, tmp_path):
    calls = _forbid_network(monkeypatch, requests.exceptions.ConnectionError('Name or service not known'))
    monkeypatch.setattr(util.time, 'sleep', lambda s: pytest.fail('connection errors must not be retried'))
    with pytest.raises(util.DownloadError) as info:
        util.open_url(URL, cache_dir=str(tmp_path), verbose=False)
    message = str(info.value)
    assert URL in message and util._url_cache_path(URL, str(tmp_path)) in message
    assert calls == [URL]  # one attempt, no backoff sleep: fails fast without timing anything
    assert os.listdir(tmp_path) == []  # no partial or temp file left behind


@pytest.fixture
def http_server(tmp_path):
    """Serve `tmp_path/www` on 127.0.0.1 from a background thread; yields (base URL, www dir)."""
    www = tmp_path / 'www'
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', www
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, except that paths starting with /flaky answer 503 to their first two requests."""
    flaky_hits = 0

    def do_GET(self):
        if self.path.startswith('/flaky') and _QuietHandler.flaky_hits < 2:
            _QuietHandler.flaky_hits += 1
            self.send_error(503)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def _no_proxy(monkeypatch):
    for var in ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')


def test_open_url_downloads_into_cache(monkeypatch, tmp_path, http_server):
    _no_proxy(monkeypatch)
    base, www = http_server
    payload = os.urandom(3000)
    (www / 'weights.pt').write_bytes(payload)
    url = f'{base}/weights.pt'
    cache_dir = tmp_path / 'cache'
    digest = hashlib.sha256(payload).hexdigest()
    path = util.open_url(url, cache_dir=str(cache_dir), return_filename=True, verbose=False, sha256=digest)
    assert path == util._url_cache_path(url, str(cache_dir)) and path.endswith('_weights.pt')
    assert open(path, 'rb').read() == payload and os.listdir(cache_dir) == [os.path.basename(path)]
    with util.open_url(url, cache=False, verbose=False) as fh:
        assert fh.read() == payload
    with pytest.raises(util.DownloadError, match='HTTP 404'):
        util.open_url(f'{base}/nope.pt', cache_dir=str(cache_dir), verbose=False)
    (www / 'weights.pt').unlink()  # the second call must be served from the cache
    with util.open_url(url, cache_dir=str(cache_dir), verbose=False) as fh:
        assert fh.read() == payload


def test_open_url_sha256_mismatch(monkeypatch, tmp_path, http_server):
    _no_proxy(monkeypatch)
    base, www = http_server
    (www / 'bad.pt').write_bytes(b'tampered')
    wrong = '0' * 64
    cache_dir = tmp_path / 'cache'
    with pytest.raises(util.ChecksumError, match=wrong) as info:
        util.open_url(f'{base}/bad.pt', cache_dir=str(cache_dir), verbose=False, sha256=wrong)
    assert hashlib.sha256(b'tampered').hexdigest() in str(info.value)
    assert os.listdir(cache_dir) == []  # a rejected download is not cached
    # A wrong file already sitting in the cache is rejected too, not silently used.
    cached = util._url_cache_path(URL, str(cache_dir))
    with open(cached, 'wb') as f:
        f.write(b'tampered')
    _forbid_network(monkeypatch)
    with pytest.raises(util.ChecksumError, match='expected 0+') as info:
        util.open_url(URL, cache_dir=str(cache_dir), sha256=wrong)
    assert cached in str(info.value)
    with pytest.raises(ValueError, match='64 hexadecimal'):
        util.open_url(URL, cache_dir=str(cache_dir), sha256='abc')
    with pytest.raises(ValueError, match='cache=True'):
        util.open_url(URL, cache=False, return_filename=True)
    assert isinstance(util.open_url(cached), io.BufferedReader)


def test_open_url_retries_transient_http_errors(monkeypatch, tmp_path, http_server):
    _no_proxy(monkeypatch)
    base, www = http_server
    (www / 'flaky.pt').write_bytes(b'eventually')
    sleeps = []
    monkeypatch.setattr(util.time, 'sleep', sleeps.append)
    monkeypatch.setattr(_QuietHandler, 'flaky_hits', 0)
    with pytest.raises(util.DownloadError, match='503'):  # two attempts allowed, both get 503
        util.open_url(f'{base}/flaky.pt', cache_dir=str(tmp_path), verbose=False, num_attempts=2)
    monkeypatch.setattr(_QuietHandler, 'flaky_hits', 0)
    with util.open_url(f'{base}/flaky.pt', cache_dir=str(tmp_path), verbose=False) as fh:
        assert fh.read() == b'eventually'
    assert len(sleeps) == 1 + 2 and sleeps[1] < sleeps[2] <= 5  # short, growing backoff
