"""The test suite. Folders mirror the repository: tests/stylegan_plus/losses tests stylegan_plus/losses,
tests/torch_utils/ops tests torch_utils/ops, tests/ (top level) tests the top-level scripts, and
tests/project checks the repository as a whole (layers, markers, docs, packaging, docker)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent     # repository root
DATA = REPO / 'tests' / 'data'                     # checked-in golden files and baselines
