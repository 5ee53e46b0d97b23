"""`--help` and `--loss=help` answer without importing torch (issue 18), and list what the real registry has."""

import os
import subprocess
import sys

import click
import pytest

from stylegan_plus.cli import loss_options
from stylegan_plus.losses import catalogue, registry

from stylegan_plus.losses.base import LossOption, LossPlugin
import tests


class _ExtraLoss(LossPlugin):
    """A plugin registered at run time."""
    options = (LossOption('--helptestx-w', 1.0, help='weight'),)


REPO = str(tests.REPO)


def _run(args, cache_dir):
    env = dict(os.environ, STYLEGAN_PLUS_CACHE_DIR=str(cache_dir), COLUMNS='200')
    proc = subprocess.run([sys.executable, '-X', 'importtime', *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split('|')[-1].strip() for line in proc.stderr.splitlines() if line.startswith('import time:')}
    return proc.stdout, imported


@pytest.fixture(scope='module')
def warm_cache(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp('cache')
    _run(['train.py', '--help'], cache_dir)     # the first call builds the catalogue (imports torch)
    return cache_dir


@pytest.mark.slow
@pytest.mark.parametrize('args', [['train.py', '--help'], ['train.py', '--loss=help'], ['dataset_tool.py', '--help'],
                                  ['generate.py', '--help']])
def test_help_does_not_import_torch(warm_cache, args):
    out, imported = _run(args, warm_cache)
    assert out.strip()
    assert 'torch' not in imported
    assert not any(name.startswith('stylegan_plus.losses.base') for name in imported)


@pytest.mark.slow
def test_help_lists_every_registered_option(warm_cache):
    out, _imported = _run(['train.py', '--help'], warm_cache)
    for name, opt in registry.all_loss_options():
        assert opt.flag in out, (name, opt.flag)
        assert opt.help.split()[0] in out
    loss_out, _imported = _run(['train.py', '--loss=help'], warm_cache)
    assert loss_out.rstrip('\n') == registry.format_loss_list()


def _describe(opt):
    param = click.command()(loss_options.click_option(opt)(lambda **_: None)).params[0]
    info = param.to_info_dict()
    return info, param.get_help_record(click.Context(click.Command('x')))


def test_cached_catalogue_matches_registry(tmp_path, monkeypatch):
    # In this process the registry is imported, so load_catalogue() answers from it; the file
    # round trip that a fresh `train.py --help` takes is exercised through its parts.
    monkeypatch.setenv('STYLEGAN_PLUS_CACHE_DIR', str(tmp_path))
    digest = catalogue.source_digest()
    path = catalogue.cache_path(digest)
    records = catalogue._records_from_registry()  # pylint: disable=protected-access
    assert records is not None
    catalogue._store(path, {'format': catalogue.FORMAT_VERSION, 'digest': digest, 'losses': records})  # pylint: disable=protected-access
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(path)]   # no temporaries left
    cached = catalogue._from_records(catalogue._read(path, digest))  # pylint: disable=protected-access
    live = registry.all_loss_options()
    for cat in (cached, catalogue.load_catalogue()):
        assert [name for name, _ in cat.options()] == [name for name, _ in live]
        assert [_describe(o) for _, o in cat.options()] == [_describe(o) for _, o in live]
        assert cat.format_list() == registry.format_loss_list()


def test_stale_or_damaged_cache_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv('STYLEGAN_PLUS_CACHE_DIR', str(tmp_path))
    digest = catalogue.source_digest()
    path = catalogue.cache_path(digest)
    # A file under the right name whose digest is another one is not read.
    with open(path, 'w') as f:
        f.write('{"format": 1, "digest": "other", "losses": []}')
    assert catalogue._read(path, digest) is None  # pylint: disable=protected-access
    with open(path, 'w') as f:
        f.write('{not json')
    assert catalogue._read(path, digest) is None  # pylint: disable=protected-access


def test_runtime_registration_is_listed():
    registry.register_loss('helptestx')(_ExtraLoss)
    try:
        assert 'helptestx' in catalogue.load_catalogue().format_list()
        assert '--helptestx-w' in [o.flag for _, o in catalogue.load_catalogue().options()]
    finally:
        registry._registry._entries.pop('helptestx', None)  # pylint: disable=protected-access


def test_digest_follows_plugin_sources(tmp_path, monkeypatch):
    before = catalogue.source_digest()
    package = tmp_path / 'stylegan_plus'
    package.mkdir()
    (package / 'a.py').write_text('X = 1\n')
    monkeypatch.setattr(catalogue, '_PACKAGE_ROOT', str(package))
    first = catalogue.source_digest()
    (package / 'a.py').write_text('X = 2\n')
    assert catalogue.source_digest() not in (first, before)


def test_unwritable_cache_falls_back(tmp_path, monkeypatch):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    monkeypatch.setenv('STYLEGAN_PLUS_CACHE_DIR', str(blocker / 'sub'))   # cannot be created
    assert catalogue.load_catalogue().format_list() == registry.format_loss_list()


@pytest.mark.slow
def test_augpipe_table_is_torch_free_and_official_path_works():
    code = ('import sys, stylegan_plus.training.choices as c; import stylegan_plus.training.configs as g; '
            'assert "torch" not in sys.modules; print(len(c.augpipe_specs), len(g.list_configs()))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == '11'
    from training.augment import augpipe_specs  # pylint: disable=import-outside-toplevel
    from stylegan_plus.training import choices  # pylint: disable=import-outside-toplevel
    assert augpipe_specs is choices.augpipe_specs
