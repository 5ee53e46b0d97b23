"""The CPU speed benchmarks of issue 19 (benchmarks/train_step.py, framework_overhead.py and the
other speed scripts): they never edit the module search path, they refuse bad arguments cleanly,
and train_step's worker processes time the tree they are started in."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO
SPEED_SCRIPTS = ['train_step.py', 'framework_overhead.py', 'networks_speed.py', 'ops.py', 'cpu_precision.py']


def _edits_sys_path(node):
    """A call such as sys.path.insert(...) / sys.path.append(...), or an assignment to sys.path."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        target = node.func.value
        return (isinstance(target, ast.Attribute) and target.attr == 'path'
                and isinstance(target.value, ast.Name) and target.value.id == 'sys')
    if isinstance(node, (ast.Assign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Attribute) and t.attr == 'path' and isinstance(t.value, ast.Name)
                   and t.value.id == 'sys' for t in targets)
    return False


@pytest.mark.parametrize('script', SPEED_SCRIPTS)
def test_speed_scripts_leave_sys_path_alone(script):
    tree = ast.parse((REPO / 'benchmarks' / script).read_text())
    offending = [node.lineno for node in ast.walk(tree) if _edits_sys_path(node)]
    assert offending == [], f'benchmarks/{script} edits sys.path at lines {offending}'


def _run(args, timeout=120):
    return subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize('args,message', [
    (['benchmarks.framework_overhead', '--iterations=10'], '--iterations=10: must be a positive multiple of 16'),
    (['benchmarks.framework_overhead', '--repeats=0'], '--repeats=0'),
    (['benchmarks.train_step', '--other=/nonexistent-tree'], '--other=/nonexistent-tree: not a StyleGAN2-ADA tree'),
    (['benchmarks.train_step', '--other=.', '--cycles=0'], '--cycles=0'),
])
def test_bad_arguments_are_refused_cleanly(args, message):
    proc = _run(args)
    assert proc.returncode == 2
    assert message in proc.stderr and 'Traceback' not in proc.stderr


@pytest.mark.slow
def test_train_step_compares_trees_side_by_side(tmp_path):
    # Our tree against itself: both workers run, alternate, and the JSON says what was measured.
    out = tmp_path / 'train_step.json'
    proc = _run(['benchmarks.train_step', f'--other={REPO}', '--other-name=again', '--repeats=1', '--cycles=1',
                 f'--out={out}'], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'speed of ours relative to again' in proc.stdout and 'load average' in proc.stdout
    data = json.loads(out.read_text())
    assert data['gradfix'] == 'on' and set(data['results']) == {'ours', 'again'}
    for row in data['results'].values():
        assert row['source'] == str(REPO / 'training')
        assert 0 < row['cpu'] and 0 < row['augment'] < row['cycle']
        assert {'Gmain', 'Dmain', 'Greg', 'Dreg'} <= set(row)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
