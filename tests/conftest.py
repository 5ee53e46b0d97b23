"""Suite-wide isolation: switches that training set-up flips process-wide are restored after each test."""

import pytest

from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix


@pytest.fixture(autouse=True)
def _restore_gradfix_switches():
    # setup.configure_backends turns the gradfix ops on for the whole process (as the official loop
    # does); a test that trains in-process must not change what later tests run.
    saved = (conv2d_gradfix.enabled, grid_sample_gradfix.enabled)
    yield
    conv2d_gradfix.enabled, grid_sample_gradfix.enabled = saved
