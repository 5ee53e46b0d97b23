"""How bias_act() hands a call to the plugin: the scalar settings it resolves (defaults, clamp
None -> -1, normalised dim, activation index) and the caching of kernel ops. Runs on CPU with a
stand-in plugin that records its arguments and answers with the reference."""

import pytest
import torch

from torch_utils.ops import bias_act as ba


class _RecordingPlugin:
    def __init__(self):
        self.calls = []

    def bias_act(self, x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp):
        self.calls.append(dict(grad=grad, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp,
                               b_given=b.numel() > 0, x_contiguous=x.is_contiguous()))
        name = [n for n, spec in ba.activation_funcs.items() if spec.cuda_idx == act][0]
        return ba._bias_act_ref(x, b if b.numel() else None, dim=dim, act=name, alpha=alpha, gain=gain,
                                clamp=None if clamp < 0 else clamp)


@pytest.fixture
def plugin(monkeypatch):
    fake = _RecordingPlugin()
    monkeypatch.setattr(ba, '_plugin', fake)
    monkeypatch.setattr(ba, '_init', lambda: True)
    monkeypatch.setattr(ba, '_kernel_accepts', lambda x, b: True)
    return fake


@pytest.mark.parametrize('kwargs,expected', [
    (dict(act='lrelu'), dict(dim=1, act=3, alpha=0.2, gain=2 ** 0.5, clamp=-1.0)),
    (dict(act='swish', dim=-1, gain=0.5, clamp=3), dict(dim=3, act=9, alpha=0.0, gain=0.5, clamp=3.0)),
    (dict(act='linear', alpha=0.7, clamp=0), dict(dim=1, act=1, alpha=0.7, gain=1.0, clamp=0.0)),
])
def test_plugin_receives_resolved_settings(plugin, kwargs, expected):
    x = torch.randn([2, 3, 4, 5]).transpose(2, 3) # not contiguous: the op must make it dense first
    b = torch.randn([x.shape[kwargs.get('dim', 1)]])
    y = ba.bias_act(x, b, **kwargs)
    call, = plugin.calls
    assert {k: call[k] for k in expected} == pytest.approx(expected)
    assert call['grad'] == 0 and call['b_given'] and call['x_contiguous']
    torch.testing.assert_close(y, ba.bias_act(x, b, impl='ref', **kwargs))


def test_kernel_ops_are_cached_per_setting(plugin):
    first = ba._bias_act_cuda(dim=1, act='relu', gain=None)
    assert ba._bias_act_cuda(dim=1, act='relu', gain=2 ** 0.5) is first, 'defaults resolve to the same op'
    assert ba._bias_act_cuda(dim=1, act='relu', clamp=1) is not first


def test_ref_impl_never_reaches_the_plugin(plugin):
    ba.bias_act(torch.randn([2, 3]), torch.randn([3]), act='tanh', impl='ref')
    assert plugin.calls == []
