"""Lets a benchmark started as `python benchmarks/<name>.py` run as `python -m benchmarks.<name>`.

A script started by its path has its own folder, not the repository root, at the head of the
module search path, so `import benchmarks` fails there. Each script therefore begins with

    if __name__ == '__main__' and not __package__:     # started by path: rerun as a module
        import _by_path
        _by_path.rerun_as_module(__file__)

(`_by_path` is found beside the script, where Python looks first). The process is replaced by
`python -m benchmarks.<name>` with the same arguments, in the same working directory (relative
paths such as `--out results/q1` keep their meaning), with the repository root put in front of
PYTHONPATH for the new process only. No running interpreter's `sys.path` is changed.
"""

import os
import sys


def module_command(script, argv):
    """(argv list, environment) that run `script` (a path under benchmarks/) as a module with `argv`."""
    script = os.path.abspath(script)
    root = os.path.dirname(os.path.dirname(script))
    module = 'benchmarks.' + os.path.splitext(os.path.basename(script))[0]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(part for part in (root, env.get('PYTHONPATH')) if part)
    return [sys.executable, '-m', module, *argv], env


def rerun_as_module(script):
    """Replace this process by `python -m benchmarks.<script name>` with this process's arguments."""
    argv, env = module_command(script, sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
