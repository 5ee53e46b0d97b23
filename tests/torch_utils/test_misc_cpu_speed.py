"""torch_utils.misc CPU-speed helpers: the allocator setting and the `--precision` context."""

import os
import subprocess
import sys

import pytest
import torch

from torch_utils import misc
import tests

REPO = str(tests.REPO)


def _run_python(code, **env):
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO, **env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt is Linux-only')
def test_keep_cpu_memory_applies_once_and_honours_opt_out():
    code = ('from torch_utils import misc; a = misc.keep_cpu_memory_for_reuse(); '
            'b = misc.keep_cpu_memory_for_reuse(); print(a, b)')
    assert _run_python(code) == 'True True'
    assert _run_python(code, STYLEGAN_PLUS_KEEP_CPU_MEMORY='0') == 'False False'


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt is Linux-only')
def test_training_setup_on_cpu_turns_the_allocator_setting_on():
    code = ('import torch; from torch_utils import misc; from stylegan_plus.training import setup; '
            'before = misc._cpu_allocator_state; setup.configure_backends(torch.device("cpu"), True, False); '
            'print(before, misc._cpu_allocator_state)')
    assert _run_python(code).splitlines()[-1] == 'None True'


def test_precision_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"precision='fp16'.*fp32, bf16"):
        misc.precision_context('fp16', 'cpu')


def test_fp32_leaves_autocast_off():
    with misc.precision_context('fp32', 'cpu'):
        assert not torch.is_autocast_enabled('cpu')
        y = torch.nn.functional.conv2d(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3))
    assert y.dtype == torch.float32


@pytest.mark.skipif(not misc.native_bf16('cpu'), reason='this CPU has no native bf16 (amx_bf16/avx512_bf16)')
def test_bf16_autocasts_convolutions_where_native():
    weight = torch.randn(3, 2, 3, 3, requires_grad=True)
    with misc.precision_context('bf16', 'cpu'):
        y = torch.nn.functional.conv2d(torch.randn(1, 2, 5, 5), weight)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert weight.grad.dtype == torch.float32   # parameters and their gradients stay fp32


def test_bf16_falls_back_to_fp32_with_one_notice(monkeypatch, capsys):
    monkeypatch.setattr(misc, '_cpu_flags', lambda: frozenset({'avx2'}))
    monkeypatch.setattr(misc, '_precision_notices', set())
    assert not misc.native_bf16('cpu')
    for _ in range(3):
        with misc.precision_context('bf16', 'cpu'):
            assert not torch.is_autocast_enabled('cpu')
    printed = capsys.readouterr().out
    assert printed.count('no native bfloat16') == 1 and 'fp32' in printed


def test_native_bf16_is_false_for_devices_without_it():
    assert misc.native_bf16('meta') is False
