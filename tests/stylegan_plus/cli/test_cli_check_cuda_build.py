"""`python -m stylegan_plus.cli.check_cuda_build`: its verdicts, on stand-in op modules (no compiler needed)."""

import types
import warnings

import pytest
import torch

from stylegan_plus.cli import check_cuda_build as ccb


def _op(built, plugin=None, warning=None):
    """A stand-in for an op module: `_init()` reports `built` (warning first), `_plugin` is what it loaded."""
    def init():
        if warning:
            warnings.warn(warning)
        return built
    return types.SimpleNamespace(_init=init, _plugin=plugin)


def test_verdicts():
    status, detail = ccb.build_op(_op(False, warning='nvcc not found'), 'bias_act')
    assert status == 'FAILED' and 'nvcc not found' in detail
    assert ccb.build_op(_op(False), 'bias_act')[1].endswith('_init() returned False without a warning')
    status, detail = ccb.build_op(_op(True, plugin=types.SimpleNamespace()), 'bias_act')
    assert (status, detail) == ('FAILED', 'the plugin loaded but does not export bias_act()')
    status, detail = ccb.build_op(_op(True, plugin=types.SimpleNamespace(bias_act=print)), 'bias_act')
    assert status == 'OK' and 'exports bias_act()' in detail


def test_every_op_is_a_real_module_with_init():
    for module, exported in ccb.PLUGIN_OPS.values():
        assert callable(module._init) and module.__name__ == f'torch_utils.ops.{exported}'


def test_cpu_torch_and_unknown_ops(monkeypatch, capsys):
    monkeypatch.setattr(torch.version, 'cuda', None)
    assert ccb.main([]) == 2
    assert 'CPU-only build' in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        ccb.main(['--ops=bias_act,nope'])
    assert caught.value.code == 2 and 'unknown op(s) nope; choose from bias_act, upfirdn2d' in capsys.readouterr().err


def test_summary_and_exit_status(monkeypatch, capsys):
    monkeypatch.setattr(torch.version, 'cuda', '12.4')
    monkeypatch.setattr(ccb.custom_ops, 'verbosity', ccb.custom_ops.verbosity)   # main() sets it; restore after
    monkeypatch.setattr(ccb, 'PLUGIN_OPS', {'bias_act': (_op(True, types.SimpleNamespace(bias_act=print)), 'bias_act'),
                                            'upfirdn2d': (_op(False, warning='ninja missing'), 'upfirdn2d')})
    assert ccb.main(['--ops=bias_act']) == 0
    assert ccb.main([]) == 1
    out = capsys.readouterr().out
    assert 'upfirdn2d  FAILED' in out and 'ninja missing' in out
