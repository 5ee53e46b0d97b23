"""One device choice for the project (stylegan_plus.devices), its click face, and network files.

The CUDA branches are exercised on any machine by standing in for torch.cuda's two queries.
"""

import click
import pytest
import torch

from stylegan_plus import devices
from stylegan_plus.cli import device as cli_device
from stylegan_plus.io import network_files
from stylegan_plus.training import setup
from tests.test_legacy import make_snapshot, write_pickle


@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend this machine has `count` CUDA devices (0 = CUDA unavailable)."""
    def install(count):
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: count > 0)
        monkeypatch.setattr(torch.cuda, 'device_count', lambda: count)
    return install


def test_cpu_and_automatic_choice_without_cuda(fake_gpus):
    fake_gpus(0)
    assert devices.resolve_device(None) == torch.device('cpu')
    assert devices.resolve_device('cpu', local_rank=3) == torch.device('cpu')
    assert devices.resolve_device(torch.device('cpu')) == torch.device('cpu')
    with pytest.raises(ValueError, match="device 'cuda' was requested, but CUDA is not available"):
        devices.resolve_device('cuda')


@pytest.mark.parametrize('spec, message', [
    ('tpu', "'tpu' is not a device; accepted are cuda, cuda:N or cpu"),
    ('cuda:x', "'cuda:x' is not a device"),
    ('meta', "device 'meta' is not supported; accepted are cuda, cuda:N or cpu"),
])
def test_refusals_name_the_value(spec, message):
    with pytest.raises(ValueError, match=message):
        devices.resolve_device(spec)


def test_cuda_processes_get_one_gpu_each(fake_gpus):
    fake_gpus(4)
    assert devices.resolve_device(None) == torch.device('cuda')          # no rank: the current device
    assert devices.resolve_device('cuda') == torch.device('cuda')
    assert devices.resolve_device(None, local_rank=0) == torch.device('cuda', 0)
    assert devices.resolve_device('cuda', local_rank=2) == torch.device('cuda', 2)
    assert devices.resolve_device('cuda:1', local_rank=2) == torch.device('cuda', 3)
    assert devices.resolve_device('cuda:3') == torch.device('cuda', 3)
    with pytest.raises(ValueError, match=r"device 'cuda:4' does not exist: this machine has 4 CUDA device\(s\), "
                                         r"cuda:0..cuda:3"):
        devices.resolve_device('cuda:4')
    with pytest.raises(ValueError, match=r"device 'cuda:2' for process 2 of this machine needs cuda:4"):
        devices.resolve_device('cuda:2', local_rank=2)


def test_training_and_tools_use_the_same_choice(fake_gpus, monkeypatch):
    fake_gpus(2)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    assert setup.resolve_device('cuda', 1) == torch.device('cuda', 1)
    assert setup.resolve_device(None, 0) == torch.device('cuda', 0)
    monkeypatch.setenv('LOCAL_RANK', '5')   # torchrun's local rank wins over the global rank
    with pytest.raises(ValueError, match='needs cuda:5'):
        setup.resolve_device('cuda', 1)
    with pytest.raises(click.BadParameter, match="'cuda:7' does not exist"):
        cli_device.resolve_device('cuda:7')
    fake_gpus(0)
    assert setup.resolve_device('cpu', 3) == torch.device('cpu')
    with pytest.raises(ValueError, match='CUDA is not available'):
        setup.resolve_device('cuda', 0)


def test_metric_options_choose_through_the_same_function(fake_gpus):
    from metrics import metric_utils   # pylint: disable=import-outside-toplevel
    fake_gpus(0)
    assert metric_utils.MetricOptions(device=None).device == torch.device('cpu')
    with pytest.raises(ValueError, match="'gpu' is not a device"):
        metric_utils.MetricOptions(device='gpu')
    fake_gpus(2)
    assert metric_utils.MetricOptions(num_gpus=2, rank=1).device == torch.device('cuda', 1)


def test_network_files_name_the_file(tmp_path):
    snapshot = make_snapshot()
    snapshot['extra'] = torch.nn.Linear(2, 1)   # a plugin's extra network
    pkl = write_pickle(snapshot, tmp_path / 'snap.pkl')
    nets = network_files.load_networks(pkl, ('G_ema',), optional_keys=('D', 'extra', 'absent'))
    assert sorted(nets) == ['D', 'G_ema', 'extra'] and isinstance(nets['extra'], torch.nn.Linear)
    with pytest.raises(network_files.NetworkFileError, match=r"'.*snap.pkl' has no clr_head; it holds D, G, G_ema"):
        network_files.load_networks(pkl, ('G_ema', 'clr_head'))
    with pytest.raises(network_files.NetworkFileError, match='does not exist'):
        network_files.load_snapshot(str(tmp_path / 'missing.pkl'))
    (tmp_path / 'text.pkl').write_text('not a pickle')
    with pytest.raises(ValueError, match=r"cannot load network pickle '.*text.pkl': UnpicklingError"):
        network_files.load_snapshot(str(tmp_path / 'text.pkl'))
    with pytest.raises(click.BadParameter, match='has no clr_head') as caught:
        cli_device.load_network(pkl, 'clr_head')
    assert caught.value.param_hint == '--network'
