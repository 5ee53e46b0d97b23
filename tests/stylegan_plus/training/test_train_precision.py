"""train.py --precision: recorded only when given, refused when unknown, and a tiny CPU run in bf16
trains (autocast on CPUs with native bf16, fp32 with one notice elsewhere) and resumes."""

import glob
import json
import os

import pytest
import torch
from click.testing import CliRunner

import train
from stylegan_plus.training.training_loop import training_loop
from tests.stylegan_plus.training.test_train_dry_run import dry_run
from tests.stylegan_plus.training.test_train_utils import load_pickle, make_image_dataset, max_weight_difference, only_run_dir, run_train
from torch_utils import misc

TINY = ['--cfg=dcgan', '--cbase=64', '--cmax=16', '--batch=8', '--aug=noaug', '--metrics=none', '--device=cpu']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp('prec') / 'rand16', count=16)


@pytest.mark.slow
def test_dry_run_records_precision_only_when_given(data, tmp_path):
    plain, _ = dry_run(f'--outdir={tmp_path}', f'--data={data}', *TINY)
    assert 'precision' not in plain     # official keys unchanged by default
    given, _ = dry_run(f'--outdir={tmp_path}', f'--data={data}', *TINY, '--precision=bf16')
    assert given['precision'] == 'bf16'
    assert [k for k in given if k != 'precision'] == list(plain)  # nothing else moves
    fp32, _ = dry_run(f'--outdir={tmp_path}', f'--data={data}', *TINY, '--precision=fp32')
    assert fp32['precision'] == 'fp32'


def test_unknown_precision_is_refused(data, tmp_path):
    argv = [f'--outdir={tmp_path}', f'--data={data}', *TINY, '--precision=fp16']
    result = CliRunner().invoke(train.build_command(argv), argv)
    assert result.exit_code == 2
    assert "'fp16'" in result.output and 'bf16' in result.output and 'fp32' in result.output
    assert 'Traceback' not in result.output
    assert os.listdir(tmp_path) == []


def test_training_loop_refuses_unknown_precision(tmp_path):
    with pytest.raises(ValueError, match="precision='half'"):
        misc.precision_context('half', 'cpu')


def test_precision_context_computes_in_bf16_when_native():
    conv = torch.nn.Conv2d(3, 4, 3)
    with misc.precision_context('bf16', 'cpu'):
        y = conv(torch.randn(1, 3, 8, 8))
    expected = torch.bfloat16 if misc.native_bf16('cpu') else torch.float32
    assert y.dtype == expected
    assert conv.weight.dtype == torch.float32   # parameters stay fp32


@pytest.mark.slow
def test_bf16_run_trains_and_resumes(data, tmp_path):
    # A StyleGAN2 config: its convolutions run through conv2d_gradfix, R1 and path length included.
    stylegan2 = ['--cfg=cifar', '--cbase=512', '--cmax=16', '--batch=8', '--aug=ada', '--metrics=none', '--device=cpu']
    common = [f'--data={data}', *stylegan2, '--workers=1', '--kimg-per-tick=0.008', '--snap=100', '--precision=bf16']
    outdir = tmp_path / 'runs'
    first = run_train(f'--outdir={outdir}', *common, '--nimg=16')
    assert first.returncode == 0, first.stdout + first.stderr
    notice = 'no native bfloat16'
    assert first.stdout.count(notice) == (0 if misc.native_bf16('cpu') else 1)
    run_dir = only_run_dir(outdir)
    with open(os.path.join(run_dir, 'training_options.json')) as f:
        assert json.load(f)['precision'] == 'bf16'
    start = load_pickle(sorted(glob.glob(os.path.join(run_dir, 'network-snapshot-*.pkl')))[-1])

    second = run_train(f'--outdir={outdir}', *common, '--nimg=32', '--resume=latest')
    assert second.returncode == 0, second.stdout + second.stderr
    resumed = sorted(d for d in os.listdir(outdir) if d != os.path.basename(run_dir))
    assert len(resumed) == 1
    end = load_pickle(sorted(glob.glob(os.path.join(outdir, resumed[0], 'network-snapshot-*.pkl')))[-1])
    # Training moved the weights, and they stay finite float32.
    assert max_weight_difference(start['G'], end['G']) > 0
    for module in (end['G'], end['D']):
        for param in module.parameters():
            assert param.dtype == torch.float32 and torch.isfinite(param).all()
    with open(os.path.join(outdir, resumed[0], 'stats.jsonl')) as f:
        ticks = [json.loads(line) for line in f]
    assert round(ticks[-1]['Progress/kimg']['mean'] * 1000) == 32   # continued to the new end
    assert all(torch.isfinite(torch.tensor(t['Loss/D/loss']['mean'])) for t in ticks)


def test_training_loop_signature_defaults_to_fp32():
    import inspect
    assert inspect.signature(training_loop).parameters['precision'].default == 'fp32'


def test_gradfix_conv_under_autocast_matches_fp32_gradients(monkeypatch):
    """The training loop routes convolutions through conv2d_gradfix's custom op; under bf16 autocast
    its backward must see one dtype (it failed with 'expected scalar type Float but found BFloat16')."""
    from torch_utils.ops import conv2d_gradfix
    monkeypatch.setattr(conv2d_gradfix, 'enabled', True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([2, 4, 8, 8], generator=gen, requires_grad=True)
    w = torch.randn([5, 4, 3, 3], generator=gen, requires_grad=True)
    grads = {}
    for name, ctx in (('fp32', torch.autocast('cpu', enabled=False)), ('bf16', torch.autocast('cpu', torch.bfloat16))):
        with ctx:
            y = conv2d_gradfix.conv2d(x, w, padding=1)
            yt = conv2d_gradfix.conv_transpose2d(x, w.transpose(0, 1), stride=2)
        assert y.dtype == (torch.float32 if name == 'fp32' else torch.bfloat16)
        grads[name] = torch.autograd.grad(y.float().square().sum() + yt.float().sum(), [x, w])
    for g32, g16 in zip(*grads.values()):
        assert g16.dtype == torch.float32
        assert torch.allclose(g16, g32, rtol=0.05, atol=0.05 * float(g32.abs().max()))
