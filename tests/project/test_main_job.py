"""scripts/main_job.sh and the README describe the same job: the script parses, its header holds a
measured time, and the README's step-by-step commands use the script's options."""

import pathlib
import re
import shlex
import subprocess

import pytest

from tests import REPO
SCRIPT = REPO / 'scripts' / 'main_job.sh'
README = REPO / 'README.md'


def options_of(command, tool):
    """{--option: value} of the `tool` call in a shell command text (line continuations joined)."""
    text = command.replace('\\\n', ' ')
    line = next(line for line in text.splitlines() if tool in line and not line.lstrip().startswith('#'))
    words = shlex.split(line.split(tool, 1)[1].split('#', 1)[0])
    return dict(word.split('=', 1) for word in words if word.startswith('--') and '=' in word)


def readme_steps():
    text = README.read_text(encoding='utf-8')
    section = text.split('### What the main job does, step by step', 1)[1]
    return section.split('```bash', 1)[1].split('```', 1)[0]


def script_defaults():
    """The script's KIMG/LOSS/CLASS defaults, e.g. {'KIMG': '60'}."""
    return dict(re.findall(r'^(\w+)="\$\{\1:-([^}]*)\}"', SCRIPT.read_text(), flags=re.MULTILINE))


@pytest.mark.slow
def test_script_parses_and_states_its_measured_time():
    subprocess.run(['bash', '-n', str(SCRIPT)], check=True)
    header = SCRIPT.read_text().split('set -euo pipefail', 1)[0]
    assert re.search(r'Measured: .*?(\d+ min )?\d+ s wall', header), header
    assert 'MEASURED' not in README.read_text(encoding='utf-8') and 'MAIN_JOB' not in README.read_text(encoding='utf-8')


def test_readme_steps_train_as_the_script_does():
    defaults = script_defaults()
    script = SCRIPT.read_text()
    ours = {key: value.replace('"', '') for key, value in options_of(script, 'train.py').items()}
    # The options the script adds for the default loss (CLR).
    plugin_opts = re.search(r'clr \| clr\+\*\) PLUGIN_OPTS=\(([^)]*)\)', script).group(1)
    ours.update(word.split('=', 1) for word in plugin_opts.split())
    theirs = options_of(readme_steps(), 'train.py')
    substituted = {key: re.sub(r'\$(\w+)', lambda m: defaults.get(m.group(1), m.group(0)), value)
                   for key, value in ours.items()}
    for key in ('--outdir', '--data'):     # folders: the README spells out the default OUTDIR
        substituted.pop(key)
        theirs.pop(key)
    assert substituted == theirs
    assert options_of(readme_steps(), 'generate.py')['--class'] == defaults['CLASS']
    kimg = int(defaults['KIMG'])
    assert f'network-snapshot-{kimg:06d}.pkl' in readme_steps()
