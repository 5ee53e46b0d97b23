"""The import layers of the project stay as designed (issue 16, item 3).

    CLI (top-level scripts, stylegan_plus.cli)
      -> metrics
        -> core: stylegan_plus.{networks, losses, training, sampling, data, io, devices}
          -> base: torch_utils, dnnlib (and third-party packages)

The official `training.*` re-export shims sit beside the CLI: they may import the core, and
nothing of ours imports them (pickles and option files name them as strings).

The check reads syntax trees only (no module is imported, about a second): every `import`
anywhere in a module, inside functions included, becomes an edge of the module graph. On that
graph it asserts the layer table below, `click` only in the CLI layer, no import cycles between
modules, and no `importlib.import_module` / `__import__` of our own modules except at the call
sites listed in DYNAMIC_IMPORT_SITES. The checker itself is tested on a synthetic tree.
"""

import ast
import sys
from pathlib import Path

import pytest

from tests import REPO

# Importer layer -> layers it may import. Written once; everything below follows it.
ALLOWED = {
    'cli':     {'cli', 'metrics', 'core', 'base'},
    'compat':  {'core', 'base'},
    'metrics': {'metrics', 'core', 'base'},
    'core':    {'core', 'base'},
    'base':    {'base'},
}

# Module-name prefix -> layer; the longest matching prefix wins.
LAYER_OF_PREFIX = {
    'stylegan_plus.cli': 'cli',
    'train': 'cli', 'generate': 'cli', 'style_mixing': 'cli', 'projector': 'cli',
    'calc_metrics': 'cli', 'dataset_tool': 'cli', 'legacy': 'cli',
    'training': 'compat',
    'metrics': 'metrics',
    'stylegan_plus': 'core',
    'torch_utils': 'base', 'dnnlib': 'base',
}

CLICK_LAYERS = {'cli'}

# Packages scanned (folders) and top-level scripts (files), relative to the repository root.
PACKAGES = ('dnnlib', 'torch_utils', 'stylegan_plus', 'metrics', 'training')
SCRIPTS = ('train.py', 'generate.py', 'style_mixing.py', 'projector.py', 'calc_metrics.py',
           'dataset_tool.py', 'legacy.py')

# Modules that may import by a computed name (importlib.import_module, __import__), and why.
# Everywhere else only literal names of third-party modules are accepted.
DYNAMIC_IMPORT_SITES = {
    'stylegan_plus.losses.registry': 'plugin discovery: imports every module of the losses package',
    'dnnlib.util': 'construct_class_by_name resolves dotted class_name strings (docs/compat.md)',
    'stylegan_plus.networks.export': 'load_safe resolves allow-listed class names of a safe export',
    'stylegan_plus.cli.cli_types': 'lazy_module keeps --help free of torch (third-party names only)',
    'stylegan_plus.losses': 'PEP 562 lazy re-exports of its own submodules: importing the package stays torch-free',
}

# Known violations that other engineers are removing while this check lands. Each entry is
# (rule, module); the lead empties this set once their work is in. An entry that no longer
# fails is reported too, so the set can only shrink.
PENDING = set()

# ---------------------------------------------------------------------------------------------
# Reading the tree


def module_files(root, packages=PACKAGES, scripts=SCRIPTS):
    """Dotted module name -> .py path for every module of `packages` and every script in `root`."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob('*.py')):
            parts = list(path.relative_to(root).with_suffix('').parts)
            if parts[-1] == '__init__':
                parts.pop()
            found['.'.join(parts)] = path
    for script in scripts:
        path = root / script
        if path.is_file():
            found[path.stem] = path
    return found


def _absolute(module, is_package, level, name):
    """Absolute module name of a (possibly relative) import written in `module`."""
    if level == 0:
        return name
    base = module.split('.')
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return '.'.join(base + ([name] if name else []))


def imported_modules(tree, module, is_package, known):
    """Every module name that `tree` imports, as (name, line); `from P import x` gives P.x when
    that is a module in `known`, else P."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                candidate = f'{source}.{alias.name}'
                found.append((candidate if candidate in known else source, node.lineno))
    return found


def _literal_prefix(node):
    """The constant text a str / f-string argument starts with ('' when it starts with a value)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant):
            return first.value
        if isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name) \
                and first.value.id in ('__name__', '__package__'):
            return '__own__'   # relative to the module's own package: ours by construction
    return None


def dynamic_imports(tree):
    """(target text or None when not literal, line) of every importlib.import_module / __import__
    call and every `lazy_module` call in `tree`."""
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', None)
        if name in ('import_module', '__import__', 'lazy_module'):
            calls.append((_literal_prefix(node.args[0]), node.lineno))
    return calls


def build_graph(root, packages=PACKAGES, scripts=SCRIPTS):
    """Parse every module once: (files, edges, third-party imports, dynamic imports).

    edges: module -> {imported module of ours: first line}; external: module -> {top-level
    package: line}; dynamic: module -> [(literal prefix or None, line)].
    """
    files = module_files(root, packages, scripts)
    ours = {name.split('.')[0] for name in files}
    edges, external, dynamic = {}, {}, {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
        is_package = path.name == '__init__.py'
        edges[module], external[module] = {}, {}
        for target, line in imported_modules(tree, module, is_package, files):
            top = target.split('.')[0]
            if top not in ours:
                external[module].setdefault(top, line)
                continue
            while target not in files and '.' in target:   # `import a.b.name` where name is not a module
                target = target.rsplit('.', 1)[0]
            if target != module:
                edges[module].setdefault(target, line)
        dynamic[module] = dynamic_imports(tree)
    return files, edges, external, dynamic


# ---------------------------------------------------------------------------------------------
# The rules


def layer_of(module, table=LAYER_OF_PREFIX):
    """Layer of a dotted module name (longest matching prefix of `table`), or None."""
    best = None
    for prefix, layer in table.items():
        if (module == prefix or module.startswith(prefix + '.')) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return best[1] if best else None


def layer_violations(edges, allowed=ALLOWED, table=LAYER_OF_PREFIX):
    """[('layers', module, message)] for each import that goes against the layer table."""
    found = []
    for module, targets in sorted(edges.items()):
        source = layer_of(module, table)
        for target, line in sorted(targets.items()):
            dest = layer_of(target, table)
            if source is None or dest is None:
                found.append(('layers', module, f'{module}:{line} imports {target}: no layer for '
                                                 f'{module if source is None else target}'))
            elif dest not in allowed[source]:
                found.append(('layers', module, f'{module}:{line} ({source}) imports {target} ({dest}); '
                                                 f'{source} may import only {sorted(allowed[source])}'))
    return found


def click_violations(external, click_layers=CLICK_LAYERS, table=LAYER_OF_PREFIX):
    """[('click', module, message)] for each module outside the CLI layer that imports click."""
    return [('click', module, f'{module}:{tops["click"]} imports click, which belongs to the CLI layer only')
            for module, tops in sorted(external.items())
            if 'click' in tops and layer_of(module, table) not in click_layers]


def dynamic_violations(dynamic, ours, sites=DYNAMIC_IMPORT_SITES):
    """[('dynamic', module, message)] for each import by name of our own modules, or by a computed
    name outside the listed sites."""
    found = []
    for module, calls in sorted(dynamic.items()):
        if module in sites:
            continue
        for prefix, line in calls:
            own = prefix == '__own__' or (prefix is not None and prefix.split('.')[0] in ours)
            if own or (prefix is None and module not in sites):
                what = 'a module of ours' if own else 'a computed module name'
                found.append(('dynamic', module, f'{module}:{line} imports {what} by name '
                                                  f'({prefix or "?"}); write an import statement instead'))
    return found


def find_cycles(edges):
    """Every import cycle as a list of modules [a, b, ..., a], one per strongly connected group."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(start):
        # Iterative Tarjan: the graph has hundreds of modules, recursion would be fine, but the
        # explicit stack keeps a pathological tree from hitting the recursion limit.
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(set(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_cycle_path(edges, group) for group in groups]


def _cycle_path(edges, group):
    """One concrete cycle through the smallest module of a strongly connected `group`."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:   # breadth-first inside the group, back to `start`
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, ())):
                if child == start:
                    return paths[node] + [start]
                if child in group and child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return sorted(group) + [start]


def cycle_violations(edges):
    """[('cycle', first module, message)] for each import cycle."""
    return [('cycle', path[0], 'import cycle: ' + ' -> '.join(path)) for path in find_cycles(edges)]


def all_violations(root, **scan):
    """Every rule broken in the tree at `root`: [(rule, module, message)]."""
    files, edges, external, dynamic = build_graph(root, **scan)
    ours = {name.split('.')[0] for name in files}
    return (layer_violations(edges) + click_violations(external) + dynamic_violations(dynamic, ours)
            + cycle_violations(edges))


def split_pending(violations, pending=PENDING):
    """(new violations, pending entries that no longer occur)."""
    seen = {(rule, module) for rule, module, _ in violations}
    fresh = [message for rule, module, message in violations if (rule, module) not in pending]
    return fresh, sorted(pending - seen)


# ---------------------------------------------------------------------------------------------
# The project


@pytest.fixture(scope='module')
def project_violations():
    return all_violations(REPO)


def test_every_module_has_a_layer():
    files = module_files(REPO)
    assert len(files) > 50, f'expected the whole project, found only {sorted(files)}'
    assert [name for name in files if layer_of(name) is None] == []
    # A new top-level script must be added to SCRIPTS (and LAYER_OF_PREFIX) to be checked.
    unlisted = {path.name for path in REPO.glob('*.py')} - set(SCRIPTS) - {'setup.py'}
    assert unlisted == set(), f'top-level scripts missing from SCRIPTS: {sorted(unlisted)}'


@pytest.mark.parametrize('rule', ['layers', 'click', 'dynamic', 'cycle'])
def test_project_follows_the_rule(project_violations, rule):
    fresh, _ = split_pending([v for v in project_violations if v[0] == rule])
    assert fresh == [], '\n'.join(fresh)


def test_pending_exceptions_still_needed(project_violations):
    _, stale = split_pending(project_violations)
    assert stale == [], f'fixed, remove from PENDING in {__file__}: {stale}'


# ---------------------------------------------------------------------------------------------
# The checker on a synthetic tree


def _write_tree(root, sources):
    for relative, text in sources.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding='utf-8')


CLEAN_TREE = {
    'dnnlib/__init__.py': '',
    'torch_utils/__init__.py': 'import dnnlib\n',
    'stylegan_plus/__init__.py': '',
    'stylegan_plus/io/__init__.py': '',
    'stylegan_plus/io/files.py': 'import torch_utils\nimport numpy\n',
    'stylegan_plus/data/__init__.py': '',
    'stylegan_plus/data/sources.py': 'from ..io import files\n',
    'metrics/__init__.py': '',
    'metrics/fid.py': 'from stylegan_plus.data import sources\n',
    'stylegan_plus/cli/__init__.py': '',
    'stylegan_plus/cli/tool.py': 'import click\nimport metrics.fid\n',
    'generate.py': 'import click\nfrom stylegan_plus.cli import tool\n',
}


def _scan(tmp_path, extra):
    _write_tree(tmp_path, {**CLEAN_TREE, **extra})
    return all_violations(tmp_path, packages=('dnnlib', 'torch_utils', 'stylegan_plus', 'metrics'),
                          scripts=('generate.py',))


def test_checker_accepts_a_clean_tree(tmp_path):
    assert _scan(tmp_path, {}) == []


def test_checker_finds_an_upward_import_inside_a_function(tmp_path):
    found = _scan(tmp_path, {'stylegan_plus/io/files.py': 'def f():\n    from metrics import fid\n'})
    assert [(rule, module) for rule, module, _ in found if rule == 'layers'] == [('layers', 'stylegan_plus.io.files')]
    assert 'stylegan_plus.io.files:2 (core) imports metrics.fid (metrics)' in found[0][2]


def test_checker_finds_core_importing_the_cli(tmp_path):
    found = _scan(tmp_path, {'stylegan_plus/data/sources.py': 'import stylegan_plus.cli.tool\n'})
    assert ('layers', 'stylegan_plus.data.sources') in {(r, m) for r, m, _ in found}


def test_checker_finds_click_outside_the_cli(tmp_path):
    found = _scan(tmp_path, {'metrics/fid.py': 'import click.types\n'})
    assert found == [('click', 'metrics.fid', 'metrics.fid:1 imports click, which belongs to the CLI layer only')]


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    found = _scan(tmp_path, {'stylegan_plus/io/files.py': 'def f():\n    from stylegan_plus.data import sources\n'})
    cycles = [message for rule, _, message in found if rule == 'cycle']
    assert cycles == ['import cycle: stylegan_plus.data.sources -> stylegan_plus.io.files -> '
                      'stylegan_plus.data.sources']


def test_checker_finds_imports_by_name(tmp_path):
    found = _scan(tmp_path, {
        'stylegan_plus/io/files.py': 'import importlib\nimportlib.import_module("stylegan_plus.data.sources")\n'
                                     'importlib.import_module(f"{__name__}.x")\nimportlib.import_module("yaml")\n',
        'stylegan_plus/data/sources.py': ('import importlib\ndef load(name):\n'
                                          '    return importlib.import_module(name)\n'),
    })
    dynamic = sorted(message for rule, _, message in found if rule == 'dynamic')
    assert len(dynamic) == 3, dynamic
    assert 'stylegan_plus.data.sources:3 imports a computed module name' in dynamic[0]
    assert 'stylegan_plus.io.files:2 imports a module of ours by name (stylegan_plus.data.sources)' in dynamic[1]
    assert 'stylegan_plus.io.files:3 imports a module of ours' in dynamic[2]


def test_checker_pending_set_hides_and_reports_stale(tmp_path):
    found = _scan(tmp_path, {'metrics/fid.py': 'import click\n'})
    assert split_pending(found, {('click', 'metrics.fid')}) == ([], [])
    assert split_pending([], {('click', 'metrics.fid')}) == ([], [('click', 'metrics.fid')])


if __name__ == '__main__':   # `python -m tests.project.test_layers`: print every violation, pending ones included
    for violation in all_violations(REPO):
        print(*violation, sep='  |  ')
    sys.exit(0)
