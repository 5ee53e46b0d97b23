"""--batch-gpu: the option and its errors, and that accumulating rounds gives the full-batch step.

The equality runs go through the real launcher in this process (`launch.launch_local`), twice
per case, which also covers a second training run in one Python process (training_stats).
The networks are set up so the step is mathematically independent of how the batch is split
(docs/plugins.md 3.3): no noise inputs, no minibatch-std layer, no path length, no style mixing,
no augmentation; R1 stays on (a per-image penalty). SGD makes the step linear in the gradient,
so it would show the factor 4 of summed rather than averaged rounds (Adam would hide it).
"""

import copy
import os

import pytest
from click.testing import CliRunner

import train
from stylegan_plus.losses.compose import ComposedLoss
from stylegan_plus.networks import mlp
from stylegan_plus.training import launch, setup
from stylegan_plus.training.resolve import resolve_options
from tests.stylegan_plus.training.test_train_utils import load_pickle, make_image_dataset, make_point_dataset, max_weight_difference

SGD = dict(class_name='torch.optim.SGD', lr=0.05)


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return dict(images=make_image_dataset(root / 'rand8', count=16, resolution=8),
                points=make_point_dataset(root / 'ring.npy', count=64))


def invoke(*args):
    argv = [str(a) for a in args]
    return CliRunner().invoke(train.build_command(argv), argv)


def option_values(data, cfg, batch, batch_gpu, **extra):
    """The train.py parameter dict as click would pass it (None = not given)."""
    names = ['gpus', 'snap', 'seed', 'cond', 'subset', 'mirror', 'gamma', 'kimg', 'aug', 'p', 'target', 'augpipe',
             'resume', 'freezed', 'fp32', 'nhwc', 'nobench', 'allow_tf32', 'workers', 'loss', 'cbase', 'cmax',
             'g_steps', 'kimg_per_tick', 'nimg']
    values = dict.fromkeys(names)
    values.update(outdir='unused', metrics=[], data=data, cfg=cfg, batch=batch, batch_gpu=batch_gpu, device='cpu')
    values.update(extra)
    return values


@pytest.mark.parametrize('args,message', [
    (['--batch=10', '--batch-gpu=4'],
     '--batch=10 is not divisible by --gpus=1 x --batch-gpu=4; pick --batch-gpu from 1, 2, 5, 10 '
     'or --batch as a multiple of 4'),
    (['--gpus=2', '--batch=12', '--batch-gpu=4'],
     '--batch=12 is not divisible by --gpus=2 x --batch-gpu=4; pick --batch-gpu from 1, 2, 3, 6'),
    (['--batch=8', '--batch-gpu=16'], 'pick --batch-gpu from 1, 2, 4, 8'),
    (['--batch-gpu=0'], '--batch-gpu=0: must be at least 1'),
    (['--cfg=stylegan2', '--gpus=16'],
     'the batch of 32 images is not divisible by --gpus=16 x the per-GPU batch of 4; pick --batch-gpu from 1, 2 '
     'or --batch as a multiple of 64'),
])
def test_batch_split_errors_name_the_numbers(datasets, tmp_path, args, message):
    result = invoke(f'--outdir={tmp_path}/runs', f'--data={datasets["images"]}', '--metrics=none', *args)
    assert result.exit_code == 2, result.output
    assert message in ' '.join(result.output.split())   # click may wrap the line
    assert not os.path.exists(tmp_path / 'runs')


def test_batch_gpu_only_changes_batch_gpu(datasets):
    base = resolve_options(option_values(datasets['images'], 'auto', 8, None))
    args = resolve_options(option_values(datasets['images'], 'auto', 8, 2))
    assert (base.batch_size, base.batch_gpu) == (8, 8) and (args.batch_size, args.batch_gpu) == (8, 2)
    base_json, args_json = base.to_json(), args.to_json()
    assert args.desc == base.desc and list(args_json) == list(base_json)    # same run name, same keys in the same order
    assert {k: v for k, v in args_json.items() if k != 'batch_gpu'} == \
        {k: v for k, v in base_json.items() if k != 'batch_gpu'}
    # Without --batch the preset's per-GPU batch stays (the official mb // ref_gpus), unless given.
    preset = resolve_options(option_values(datasets['images'], 'stylegan2', None, None))
    assert (preset.batch_size, preset.batch_gpu) == (32, 4)
    preset = resolve_options(option_values(datasets['images'], 'stylegan2', None, 8))
    assert (preset.batch_size, preset.batch_gpu) == (32, 8)


def _one_iteration(outdir, data, cfg, batch_gpu):
    """Train one iteration of batch 8 in this process; returns the snapshot dict."""
    size = dict(cbase=64, cmax=16) if cfg == 'auto' else {}
    args = resolve_options(option_values(data, cfg, 8, batch_gpu, aug='noaug', nimg=8, **size))
    args.G_opt_kwargs = dict(SGD)
    args.D_opt_kwargs = dict(SGD)
    args.data_loader_kwargs.num_workers = 0
    args.image_snapshot_ticks = None
    if cfg == 'auto':
        args.G_kwargs.synthesis_kwargs.update(use_noise=False, num_fp16_res=0, conv_clamp=None)
        args.G_kwargs.mapping_kwargs.num_layers = 2
        args.G_kwargs.z_dim = args.G_kwargs.w_dim = 16
        args.D_kwargs.update(num_fp16_res=0, conv_clamp=None)
        args.D_kwargs.epilogue_kwargs = dict(mbstd_num_channels=0)
        args.loss_kwargs.update(pl_weight=0, style_mixing_prob=0, r1_gamma=1.0)
    else:
        args.loss_kwargs.update(r1_gamma=1.0)
        args.D_reg_interval = 16
    args.desc = f'bgpu{batch_gpu}'
    run_dir = launch.launch_local(args, str(outdir))
    return load_pickle(os.path.join(run_dir, 'network-snapshot-000000.pkl')), run_dir


@pytest.mark.slow
@pytest.mark.parametrize('kind,cfg', [('images', 'auto'), ('points', 'toy')])
def test_accumulated_rounds_equal_the_full_batch_step(datasets, tmp_path, monkeypatch, kind, cfg):
    initial = []
    build_networks = setup.build_networks

    def recording_build(*args, **kwargs):
        nets = build_networks(*args, **kwargs)
        initial.append(copy.deepcopy(nets[:2]))
        return nets

    monkeypatch.setattr(setup, 'build_networks', recording_build)
    losses = []
    build_loss = setup.build_loss

    def recording_build_loss(*args, **kwargs):
        built = build_loss(*args, **kwargs)
        losses.append(built[0])
        return built

    monkeypatch.setattr(setup, 'build_loss', recording_build_loss)
    full, full_dir = _one_iteration(tmp_path, datasets[kind], cfg, batch_gpu=8)
    rounds, rounds_dir = _one_iteration(tmp_path, datasets[kind], cfg, batch_gpu=2)
    for key in ('G', 'D', 'G_ema'):
        assert _largest_difference(full[key], rounds[key]) < 1e-6, key
    # Both runs started from the same weights and the step moved them far more than the tolerance
    # (summed rounds would have moved them four times as far).
    for idx, key in enumerate(('G', 'D')):
        assert max_weight_difference(initial[0][idx], initial[1][idx]) == 0
        assert max_weight_difference(initial[0][idx].cpu(), full[key]) > 1e-3, key
    with open(os.path.join(rounds_dir, 'log.txt')) as f:
        log = f.read()
    assert 'Exiting...' in log and os.path.basename(full_dir) != os.path.basename(rounds_dir)
    assert [loss.run_dir for loss in losses] == [full_dir, rounds_dir]     # the loop hands the loss its folder


def test_give_run_dir_reaches_the_parts_of_a_composed_loss():
    G, D = mlp.Generator(z_dim=2, c_dim=0), mlp.Discriminator(c_dim=0)
    loss = ComposedLoss('cpu', main=dict(class_name='training.loss.StyleGAN2Loss', pl_weight=0, style_mixing_prob=0),
                        addons=[dict(class_name='stylegan_plus.losses.advlat.AdvLatQuaLoss')], G=G, D=D)
    assert loss.run_dir is None and loss.main.run_dir is None   # outside the loop
    setup.give_run_dir(loss, '/runs/00001-x')
    assert [part.run_dir for part in (loss, *loss.parts)] == ['/runs/00001-x'] * 3

    class Official:     # an official-style loss that cannot take new attributes
        __slots__ = ()
    setup.give_run_dir(Official(), '/runs/00001-x')


def _largest_difference(a, b):
    """Largest |a - b| over parameters and buffers, except the mapping network's w_avg: that moving
    average is updated once per round (it only serves truncation and never enters a gradient)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa
               if sa[k].numel() and not k.endswith('w_avg'))
