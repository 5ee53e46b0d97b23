"""Keeps `python -m pytest -m "not slow" tests` a quick inner loop (issue 16).

Every test that starts another process (subprocess.*, os.system/popen/exec*/spawn*/fork,
multiprocessing / torch.multiprocessing processes, `python -m torch.distributed.run`, a script such as
train.py run as a user runs it) must carry the `slow` marker. The check reads the test files' syntax
trees only (about a second, no imports): a process start is recognised in the test itself, in any
module-level helper it calls (also helpers imported from other test modules), and in any fixture
it requests, followed transitively. Calls into `benchmarks/` are followed as well, since those
modules exist to run train.py as subprocesses; the library's own process starts (e.g. `--gpus=2`)
are not, because whether they happen depends on options a static scan cannot evaluate.
"""

import ast
import functools
from pathlib import Path

import pytest

from tests import REPO

TESTS = REPO / 'tests'
FOLLOWED = ('benchmarks',)  # non-test packages whose helpers are scanned too

# Fully qualified call targets that start a process; the prefixes cover whole families
# (subprocess.run/Popen/check_output, os.execv/execvp, os.spawnl, ...).
_STARTERS_EXACT = {
    'os.system', 'os.popen', 'os.fork', 'os.forkpty', 'os.posix_spawn', 'os.posix_spawnp',
    'pty.spawn', 'pty.fork', 'multiprocessing.Process', 'multiprocessing.Pool',
    'multiprocessing.get_context', 'torch.multiprocessing.spawn',
    'torch.multiprocessing.start_processes', 'torch.multiprocessing.Process',
    'torch.multiprocessing.get_context', 'concurrent.futures.ProcessPoolExecutor',
}
_STARTERS_PREFIX = ('subprocess.', 'os.exec', 'os.spawn', 'asyncio.create_subprocess',
                    'torch.distributed.run.', 'torch.distributed.launch.')


def _is_starter(qualname):
    """True when the dotted call target `qualname` starts another process."""
    return qualname in _STARTERS_EXACT or qualname.startswith(_STARTERS_PREFIX)


def _dotted(node):
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return '.'.join(reversed(parts))


def _import_map(tree, module):
    """Local name -> fully qualified name, for every import anywhere in the module.

    Imports inside functions are included too: a name imported locally and one imported at the
    top resolve the same way, which errs on the side of flagging.
    """
    names = {}
    package = module.split('.')[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`.
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.split('.')[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ''
            if node.level:  # `from . import x` is relative to this module's package
                base = package[:len(package) - node.level + 1]
                source = '.'.join(base + ([source] if source else []))
            for alias in node.names:
                names[alias.asname or alias.name] = f'{source}.{alias.name}'
    return names


def _resolve(dotted, imports, module):
    """Fully qualified name of a dotted call target, as seen from `module`."""
    head, _, rest = dotted.partition('.')
    if head in imports:
        base = imports[head]
    else:
        base = f'{module}.{head}'  # a module-level def of this file (or a builtin: harmless)
    return f'{base}.{rest}' if rest else base


def _has_slow(decorators):
    """True when one of the decorator / mark expressions is `pytest.mark.slow` (called or not)."""
    for node in decorators:
        target = node.func if isinstance(node, ast.Call) else node
        name = _dotted(target) or ''
        if name == 'mark.slow' or name.endswith('.mark.slow'):
            return True
    return False


def _module_is_slow(tree):
    """True when the module sets `pytestmark` to the slow mark, alone or in a list/tuple."""
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == 'pytestmark' for t in targets) and node.value is not None:
                values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
                if _has_slow(values):
                    return True
    return False


def _is_fixture(func):
    for node in func.decorator_list:
        target = node.func if isinstance(node, ast.Call) else node
        if (_dotted(target) or '').split('.')[-1] == 'fixture':
            return True
    return False


def _function_targets(func, imports, module):
    """(qualified names `func` calls or requests as fixtures, qualified names it only mentions)."""
    calls, mentions, inner = set(), set(), set()
    for sub in ast.walk(func):  # breadth first: an Attribute is seen before the chain inside it
        if isinstance(sub, ast.Attribute):
            inner.add(id(sub.value))
        if isinstance(sub, ast.Call) and _dotted(sub.func):
            calls.add(_resolve(_dotted(sub.func), imports, module))
        elif isinstance(sub, (ast.Name, ast.Attribute)) and id(sub) not in inner and _dotted(sub):
            # A function passed along (a callback, a module) may be called by the receiver.
            mentions.add(_resolve(_dotted(sub), imports, module))
    # Fixtures a test or fixture requests by argument name run on its behalf.
    calls |= {_resolve(arg.arg, imports, module) for arg in func.args.args + func.args.kwonlyargs}
    return calls, mentions


class _Module:
    """What one test module defines: its functions, what they call, which tests are marked slow."""

    def __init__(self, name, source, path='<string>', collect_tests=True):
        self.name, self.path = name, path
        tree = ast.parse(source, filename=str(path))
        imports = _import_map(tree, name)
        self.module_slow = _module_is_slow(tree)
        self.calls = {}     # qualified function name -> set of qualified call targets (and fixtures)
        self.references = {}  # qualified function name -> names it mentions without calling them
        self.tests = []     # (qualified name, line, marked slow)
        # A module passed along as a value (`_smoke(q1_module)`) may have any of its functions called.
        self.calls[name] = set()
        for node, owner, class_slow in self._functions(tree):
            qual = f'{name}.{owner}.{node.name}' if owner else f'{name}.{node.name}'
            if owner:  # using a class (constructing it, calling a method) may run any of its methods
                self.calls.setdefault(f'{name}.{owner}', set()).add(qual)
            self.calls[qual], self.references[qual] = _function_targets(node, imports, name)
            self.calls[name].add(qual)
            if collect_tests and node.name.startswith('test') and not _is_fixture(node):
                slow = self.module_slow or class_slow or _has_slow(node.decorator_list)
                self.tests.append((qual, node.lineno, slow))

    @staticmethod
    def _functions(tree):
        """Module-level functions and methods of module-level classes, with the class's slow mark."""
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node, None, False
            elif isinstance(node, ast.ClassDef):
                slow = _has_slow(node.decorator_list)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        yield item, node.name, slow


def _starting_functions(modules):
    """Qualified names of every function that starts a process, directly or through helpers."""
    calls = {qual: set(targets) for module in modules for qual, targets in module.calls.items()}
    starting = {qual for qual, targets in calls.items() if any(_is_starter(t) for t in targets)}
    # Mentions count only for functions defined in the scanned files: `os.system` merely named
    # (say, in a __reduce__ that a test proves is never run) starts nothing.
    for module in modules:
        for qual, mentioned in module.references.items():
            calls[qual] |= mentioned & calls.keys()
    # `self.helper()` inside a method resolves to '<module>.self.helper'; map it to the class's method.
    for qual, targets in calls.items():
        owner = qual.rpartition('.')[0]
        targets |= {f'{owner}.{t.split(".self.", 1)[1]}' for t in targets if '.self.' in t}
    grew = True
    while grew:  # propagate through helpers until nothing changes
        grew = False
        for qual, targets in calls.items():
            if qual not in starting and targets & starting:
                starting.add(qual)
                grew = True
    return starting


def unmarked_process_tests(modules):
    """(path, line, test name) of every test that starts a process but is not marked slow."""
    starting = _starting_functions(modules)
    return [(module.path, line, qual.rpartition('.')[2])
            for module in modules for qual, line, slow in module.tests
            if qual in starting and not slow]


@functools.lru_cache(maxsize=None)  # parsed once per session, shared by the tests below
def _load_tests_dir():
    modules = [_Module('.'.join(path.relative_to(REPO).with_suffix('').parts), path.read_text(encoding='utf-8'), path)
               for path in sorted(TESTS.rglob('*.py')) if path.name != '__init__.py']
    for package in FOLLOWED:
        for path in sorted((REPO / package).rglob('*.py')):
            dotted = '.'.join(path.relative_to(REPO).with_suffix('').parts)
            dotted = dotted[:-len('.__init__')] if dotted.endswith('.__init__') else dotted
            modules.append(_Module(dotted, path.read_text(encoding='utf-8'), path, collect_tests=False))
    return tuple(modules)


#----------------------------------------------------------------------------

def test_every_process_starting_test_is_marked_slow():
    offenders = unmarked_process_tests(_load_tests_dir())
    listing = '\n'.join(f'  {Path(path).name}:{line} {name}' for path, line, name in offenders)
    assert not offenders, ('these tests start a process but are not marked @pytest.mark.slow '
                           f'(issue 16: `pytest -m "not slow"` must stay a quick loop):\n{listing}')


def test_the_scan_sees_the_test_files():
    # Guards against a scan that silently finds nothing (e.g. after moving this file).
    modules = _load_tests_dir()
    assert len(modules) > 20
    assert sum(len(m.tests) for m in modules) > 200
    assert _starting_functions(modules), 'no process-starting function found at all'


def _scan(**sources):
    return unmarked_process_tests([_Module(f'tests.{name}', text) for name, text in sources.items()])


_HELPERS = '''
import subprocess, sys, pytest
def run_script(*args):
    return subprocess.run([sys.executable, 'train.py', *args])
def fine():
    return 1
@pytest.fixture
def trained(tmp_path):
    return run_script(f'--outdir={tmp_path}')
'''


@pytest.mark.parametrize('body, expected', [
    ('def test_a():\n    subprocess.run(["true"])\n', ['test_a']),
    ('@pytest.mark.slow\ndef test_a():\n    subprocess.run(["true"])\n', []),
    ('@pytest.mark.slow()\ndef test_a():\n    subprocess.check_output(["true"])\n', []),
    ('def test_a():\n    run_script("--help")\n', ['test_a']),                 # through a helper
    ('def test_a(trained):\n    assert trained\n', ['test_a']),                   # through a fixture
    ('def test_a():\n    fine()\n', []),
    ('import tests.helpers as h\ndef test_a():\n    use(h)\n', ['test_a']),         # a module passed along
    ('import tests.helpers as h\ndef test_a():\n    h.fine()\n', []),
    ('def test_a():\n    call_later(run_script)\n', ['test_a']),              # a callback
    ('def test_a():\n    keep = (os.system, ("true",))\n', []),                # named, never called
    ('def test_a():\n    os.system("true")\n', ['test_a']),
    ('from subprocess import Popen as P\ndef test_a():\n    P(["true"])\n', ['test_a']),
    ('def test_a():\n    multiprocessing.get_context("spawn").Process()\n', ['test_a']),
    ('def test_a():\n    torch.multiprocessing.spawn(f, nprocs=2)\n', ['test_a']),
    ('pytestmark = [pytest.mark.filterwarnings("x"), pytest.mark.slow]\ndef test_a():\n    run_script()\n', []),
    ('class TestX:\n    def test_a(self):\n        run_script()\n', ['test_a']),
    ('@pytest.mark.slow\nclass TestX:\n    def test_a(self):\n        run_script()\n', []),
])
def test_scan_flags_exactly_unmarked_process_starts(body, expected):
    header = 'import os, subprocess, multiprocessing, torch, pytest\nfrom tests.helpers import run_script, fine, trained\n'
    found = _scan(helpers=_HELPERS, test_x=header + body)
    assert [name for _, _, name in found] == expected


def test_cross_module_helper_chain_is_followed():
    # A helper in one test module that calls a helper of another, which starts the process.
    middle = 'from tests.helpers import run_script\ndef train_twice():\n    run_script(); run_script()\n'
    user = 'from tests.middle import train_twice\ndef test_b():\n    train_twice()\n'
    assert [name for _, _, name in _scan(helpers=_HELPERS, middle=middle, user=user)] == ['test_b']
