"""The installed package must carry the CUDA sources and every top-level package."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel with pip in a subprocess

from tests import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)]
    subprocess.run(cmd, check=True, cwd=build, timeout=300)
    wheels = list(out.glob("stylegan_plus-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta_name).decode()
    return names, metadata


def test_wheel_has_every_package(wheel):
    names, _ = wheel
    for pkg in ["dnnlib", "torch_utils", "torch_utils/ops", "stylegan_plus", "training", "metrics"]:
        assert f"{pkg}/__init__.py" in names, pkg


def test_wheel_has_cuda_sources(wheel):
    names, _ = wheel
    for op in ["bias_act", "upfirdn2d"]:
        for ext in ["cpp", "cu", "h"]:
            assert f"torch_utils/ops/{op}.{ext}" in names, f"{op}.{ext} missing from the wheel"


def test_declared_dependencies(wheel):
    _, metadata = wheel
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    # A range, so a user's own CUDA build of torch is kept; a pin would pull a multi-GB wheel.
    assert "torch>=2.1" in requires
    for dep in ["numpy", "click", "pillow", "scipy", "ninja", "requests", "psutil"]:
        assert dep in requires, dep
    assert any(r.startswith("pytest") and "extra == \"test\"" in r for r in requires), requires
