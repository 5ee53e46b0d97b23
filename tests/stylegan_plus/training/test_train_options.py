"""train.py options: the --dry-run JSON of the official presets (keys, order, values), run naming,
the fork's options, plugin options (also of a plugin named by class path, parsed once --loss is
known), base options a loss does not take, and the validation errors (click usage errors, exit code 2)."""

import json
import os
import pickle

import pytest
import torch
from click.testing import CliRunner

import train
from stylegan_plus.losses import LossOption, LossPlugin, registry
from stylegan_plus.training import estimate, resolve
from tests.plugins_for_tests import ExtraNetLoss
from tests.stylegan_plus.training.test_train_utils import make_image_dataset, make_point_dataset

MEASURED_TOP_KEYS = ['num_gpus', 'image_snapshot_ticks', 'network_snapshot_ticks', 'metrics', 'random_seed',
                     'training_set_kwargs', 'data_loader_kwargs', 'G_kwargs', 'D_kwargs', 'G_opt_kwargs',
                     'D_opt_kwargs', 'loss_kwargs', 'total_kimg', 'batch_size', 'batch_gpu', 'ema_kimg', 'ema_rampup',
                     'ada_target', 'augment_kwargs', 'run_dir']
MEASURED_NESTED_KEYS = {
    'training_set_kwargs': ['class_name', 'path', 'use_labels', 'max_size', 'xflip', 'resolution'],
    'data_loader_kwargs': ['pin_memory', 'num_workers', 'prefetch_factor'],
    'G_kwargs': ['class_name', 'z_dim', 'w_dim', 'mapping_kwargs', 'synthesis_kwargs'],
    'D_kwargs': ['class_name', 'block_kwargs', 'mapping_kwargs', 'epilogue_kwargs', 'channel_base', 'channel_max',
                 'num_fp16_res', 'conv_clamp', 'architecture'],
    'G_opt_kwargs': ['class_name', 'lr', 'betas', 'eps'],
    'loss_kwargs': ['class_name', 'r1_gamma', 'pl_weight', 'style_mixing_prob'],
    'augment_kwargs': ['class_name', 'xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness',
                       'contrast', 'lumaflip', 'hue', 'saturation'],
}


class NoBaseLoss(LossPlugin):
    """Test main loss without R1, path length or style mixing (takes no base option)."""
    base_options = ()
    options = (LossOption('--nobase-scale', 1.0, help='scale', min=0),
               LossOption('--nobase-mode', 'a', choices=('a', 'b'), help='mode'))

    def __init__(self, device, nobase_scale=1.0, nobase_mode='a', **networks):
        super().__init__(device, **networks)
        self.nobase_scale = nobase_scale
        self.nobase_mode = nobase_mode


NOBASE = f'{__name__}.NoBaseLoss'


@pytest.fixture(scope='module')
def rand16(tmp_path_factory):
    return make_image_dataset(tmp_path_factory.mktemp('data') / 'rand16', count=12)


def invoke(*args):
    argv = [str(a) for a in args]
    return CliRunner().invoke(train.build_command(argv), argv)


def dry_run(*args):
    """Options dict printed by --dry-run (asserts success)."""
    result = invoke(*args, '--dry-run')
    assert result.exit_code == 0, result.output
    text = result.output.split('Training options:\n', 1)[1]
    return json.JSONDecoder().raw_decode(text)[0], result.output


def test_cifar_json_matches_the_measured_official_file(rand16, tmp_path):
    opts, output = dry_run(f'--outdir={tmp_path}/runs', f'--data={rand16}', '--cfg=cifar', '--batch=16', '--kimg=1',
                           '--aug=ada', '--metrics=none', '--fp32=1')
    assert list(opts) == MEASURED_TOP_KEYS
    for key, keys in MEASURED_NESTED_KEYS.items():
        assert list(opts[key]) == keys, key
    assert opts['G_kwargs']['mapping_kwargs'] == {'num_layers': 2}
    assert list(opts['G_kwargs']['synthesis_kwargs']) == ['channel_base', 'channel_max', 'num_fp16_res', 'conv_clamp']
    assert opts['D_kwargs']['epilogue_kwargs'] == {'mbstd_group_size': 32}
    assert opts['G_kwargs']['synthesis_kwargs'] == dict(channel_base=32768, channel_max=512, num_fp16_res=0,
                                                        conv_clamp=None)
    assert opts['loss_kwargs'] == dict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0.01, pl_weight=0,
                                       style_mixing_prob=0)
    assert (opts['total_kimg'], opts['batch_size'], opts['batch_gpu'], opts['ema_kimg'], opts['ema_rampup']) == \
        (1, 16, 16, 500, 0.05)
    assert opts['metrics'] == [] and opts['ada_target'] == 0.6
    assert opts['run_dir'] == os.path.join(f'{tmp_path}/runs', '00000-rand16-cifar-kimg1-batch16-ada')
    assert 'Dry run; exiting.' in output and not os.path.exists(f'{tmp_path}/runs')


@pytest.mark.parametrize('cfg,fmaps,mbstd,lr,gamma,ema,ramp,mapping,mb,batch_gpu', [
    ('auto', 0.5, 4, 0.0025, 0.0002 * 16 ** 2 / 32, 10, 0.05, 2, 32, 32),
    ('stylegan2', 1, 4, 0.002, 10, 10, None, 8, 32, 4),
    ('paper256', 0.5, 8, 0.0025, 1, 20, None, 8, 64, 8),
    ('paper512', 1, 8, 0.0025, 0.5, 20, None, 8, 64, 8),
    ('paper1024', 1, 4, 0.002, 2, 10, None, 8, 32, 4),
])
@pytest.mark.slow
def test_official_presets(rand16, tmp_path, cfg, fmaps, mbstd, lr, gamma, ema, ramp, mapping, mb, batch_gpu):
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', f'--cfg={cfg}')
    assert list(opts) == MEASURED_TOP_KEYS
    assert list(opts['D_kwargs']) == MEASURED_NESTED_KEYS['D_kwargs'][:-1]      # 'architecture' only for cifar
    assert list(opts['loss_kwargs']) == ['class_name', 'r1_gamma']
    synthesis = opts['G_kwargs']['synthesis_kwargs']
    assert synthesis == dict(channel_base=int(fmaps * 32768), channel_max=512, num_fp16_res=4, conv_clamp=256)
    assert opts['D_kwargs']['channel_base'] == int(fmaps * 32768) and opts['D_kwargs']['num_fp16_res'] == 4
    assert opts['D_kwargs']['epilogue_kwargs'] == {'mbstd_group_size': mbstd}
    assert opts['G_kwargs']['mapping_kwargs'] == {'num_layers': mapping}
    assert opts['G_opt_kwargs'] == dict(class_name='torch.optim.Adam', lr=lr, betas=[0, 0.99], eps=1e-8)
    assert opts['loss_kwargs']['r1_gamma'] == pytest.approx(gamma)
    assert (opts['batch_size'], opts['batch_gpu'], opts['ema_kimg'], opts['ema_rampup']) == (mb, batch_gpu, ema, ramp)
    assert opts['metrics'] == ['fid50k_full']
    assert os.path.basename(opts['run_dir']) == f'00000-rand16-{cfg}{"1" if cfg == "auto" else ""}'


def test_optional_keys_and_description_order(rand16, tmp_path):
    make_image_dataset(tmp_path / 'lab', count=12, labels=[i % 3 for i in range(12)])
    for name in ('00003-old', 'notes', '00007-other'):
        os.makedirs(tmp_path / 'runs' / name)
    (tmp_path / 'runs' / '00042-a-file').write_text('not a folder')
    opts, _ = dry_run(f'--outdir={tmp_path}/runs', f'--data={tmp_path}/lab', '--cond=1', '--subset=10', '--mirror=1',
                      '--cfg=cifar', '--gamma=5', '--kimg=2', '--batch=8', '--aug=fixed', '--p=0.2',
                      '--augpipe=bgcfnc', '--resume=ffhq256', '--freezed=2', '--nhwc=1', '--nobench=1',
                      '--allow-tf32=1', '--workers=1', '--metrics=none', '--seed=3')
    assert os.path.basename(opts['run_dir']) == \
        '00008-lab-cond-subset10-mirror-cifar-gamma5-kimg2-batch8-fixed-p0.2-bgcfnc-resumeffhq256-freezed2'
    assert opts['training_set_kwargs'] == dict(class_name='training.dataset.ImageFolderDataset',
                                               path=f'{tmp_path}/lab', use_labels=True, max_size=10, xflip=True,
                                               resolution=16, random_seed=3)
    tail = [k for k in opts if k not in MEASURED_TOP_KEYS]
    assert tail == ['augment_p', 'resume_pkl', 'ada_kimg', 'cudnn_benchmark', 'allow_tf32']
    assert 'ada_target' not in opts and opts['augment_p'] == 0.2 and opts['ada_kimg'] == 100
    assert opts['ema_rampup'] is None and opts['resume_pkl'].endswith('ffhq-res256-mirror-paper256-noaug.pkl')
    assert opts['D_kwargs']['block_kwargs'] == dict(freeze_layers=2, fp16_channels_last=True)
    assert opts['G_kwargs']['synthesis_kwargs']['fp16_channels_last'] is True
    assert opts['data_loader_kwargs']['num_workers'] == 1 and opts['loss_kwargs']['r1_gamma'] == 5
    assert len(opts['augment_kwargs']) == 1 + 15


@pytest.mark.slow
def test_fork_options_dcgan_and_toy(rand16, tmp_path):
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--cbase=256', '--cmax=64',
                      '--device=cpu', '--kimg-per-tick=0.5', '--nimg=200', '--metrics=none', '--g-steps=3')
    assert opts['G_kwargs']['class_name'] == 'stylegan_plus.networks.dcgan.Generator'
    assert (opts['G_kwargs']['channel_base'], opts['D_kwargs']['channel_max']) == (256, 64)
    assert opts['device'] == 'cpu' and opts['kimg_per_tick'] == 0.5 and opts['total_kimg'] == 0.2
    assert opts['g_steps'] == 3 and opts['G_reg_interval'] is None
    assert os.path.basename(opts['run_dir']) == '00000-rand16-dcgan-cbase256-cmax64-nimg200'
    points = make_point_dataset(tmp_path / 'ring.npy')
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={points}', '--cfg=toy')
    assert opts['training_set_kwargs']['class_name'] == 'training.dataset.PointCloudDataset'
    assert opts['metrics'] == [] and 'augment_kwargs' not in opts and 'ada_target' not in opts
    assert opts['training_set_kwargs']['resolution'] == 1


@pytest.fixture
def registered_test_plugin():
    registry.register_loss('testx')(ExtraNetLoss)
    try:
        yield 'testx'
    finally:
        registry._registry._entries.pop('testx', None)  # pylint: disable=protected-access


@pytest.mark.slow
def test_loss_plugins_and_their_options(rand16, tmp_path, registered_test_plugin):
    result = invoke('--loss=help')
    assert result.exit_code == 0 and 'stylegan2' in result.output and registered_test_plugin in result.output
    assert '--testx-weight' in invoke('--help').output
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--metrics=none',
                      f'--loss={registered_test_plugin}', '--testx-weight=2', '--testx-prior=uniform')
    assert opts['loss_kwargs'] == dict(class_name='tests.plugins_for_tests.ExtraNetLoss',
                                       r1_gamma=opts['loss_kwargs']['r1_gamma'], pl_weight=0, style_mixing_prob=0,
                                       testx_weight=2.0, testx_lr=0.01, testx_prior='uniform')
    assert opts['g_steps'] == 2     # the plugin's adjustment for --cfg=dcgan
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--metrics=none',
                      '--loss=tests.plugins_for_tests.ExtraNetLoss', '--testx-lr=0.5', '--g-steps=1')
    assert opts['loss_kwargs']['testx_lr'] == 0.5 and 'g_steps' not in opts
    result = invoke(f'--outdir={tmp_path}', f'--data={rand16}', '--metrics=none', '--testx-weight=2', '--dry-run')
    assert result.exit_code == 2 and '--testx-weight belongs to --loss=testx' in result.output


@pytest.mark.parametrize('args,message', [
    (['--aug=ada', '--p=0.3'], '--p=0.3 is only allowed with --aug=fixed'),
    (['--aug=fixed'], '--aug=fixed needs the augment probability --p'),
    (['--aug=fixed', '--p=1.5'], '--p=1.5: must be between 0 and 1'),
    (['--aug=noaug', '--target=0.5'], '--target=0.5 is only allowed with --aug=ada'),
    (['--aug=noaug', '--augpipe=bg'], '--augpipe=bg cannot be used with --aug=noaug'),
    (['--cond=1'], 'has no labels'),
    (['--metrics=fid50k_full,nosuchmetric'], 'unknown metric(s) nosuchmetric; accepted: '),
    (['--gpus=3'], '--gpus=3: must be a power of two'),
    (['--gpus=2', '--batch=7'], '--batch=7: must be at least 1 and divisible by --gpus=2'),
    (['--kimg=0'], '--kimg=0: must be at least 1'),
    (['--snap=0'], '--snap=0: must be at least 1'),
    (['--subset=99'], '--subset=99: must be between 1 and the data set size 12'),
    (['--gamma=-1'], '--gamma=-1: must be non-negative'),
    (['--workers=0'], '--workers=0: must be at least 1'),
    (['--resume=latest'], '--resume=latest: no network-snapshot-*.pkl'),
    (['--resume=/no/such/file.pkl'], '--resume=/no/such/file.pkl: file not found'),
    (['--loss=nosuchloss'], "unknown loss 'nosuchloss'"),
    (['--cfg=dcgan', '--freezed=1'], '--freezed needs a StyleGAN2 discriminator'),
    (['--cfg=nosuchcfg'], "'nosuchcfg' is not one of"),
])
def test_validation_errors_are_usage_errors(rand16, tmp_path, args, message):
    result = invoke(f'--outdir={tmp_path}/runs', f'--data={rand16}', '--metrics=none', *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not os.path.exists(f'{tmp_path}/runs')   # nothing was created


def test_data_and_outdir_errors(rand16, tmp_path):
    (tmp_path / 'file').write_text('x')
    for outdir, message in [(tmp_path / 'file', 'exists and is not a folder'),
                            (tmp_path / 'file' / 'sub', 'cannot be created')]:
        result = invoke(f'--outdir={outdir}', f'--data={rand16}', '--metrics=none')
        assert result.exit_code == 2 and message in result.output
    points = make_point_dataset(tmp_path / 'p.npy')
    result = invoke(f'--outdir={tmp_path}', f'--data={points}', '--metrics=none')
    assert result.exit_code == 2 and 'use --cfg=toy' in result.output
    result = invoke(f'--outdir={tmp_path}', f'--data={points}', '--cfg=toy', '--aug=ada')
    assert result.exit_code == 2 and 'cannot be augmented' in result.output
    result = invoke(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=toy')
    assert result.exit_code == 2 and '--data' in result.output
    if not torch.cuda.is_available():
        result = invoke(f'--outdir={tmp_path}', f'--data={rand16}', '--metrics=none', '--device=cuda')
        assert result.exit_code == 2 and 'CUDA is not available' in result.output


@pytest.mark.parametrize('cpus,expected', [(1, 1), (2, 2), (3, 3), (64, 3)])
def test_default_workers_follow_the_usable_cpus(monkeypatch, cpus, expected):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda _pid: set(range(cpus)), raising=False)
    assert resolve.default_workers() == expected


@pytest.mark.slow
def test_default_workers_are_recorded(rand16, tmp_path):
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--metrics=none')
    assert opts['data_loader_kwargs']['num_workers'] == resolve.default_workers()
    assert 1 <= opts['data_loader_kwargs']['num_workers'] <= min(3, os.cpu_count() or 1)


def _bad_resume_file(tmp_path, kind):
    """A file that is not a network pickle, named like what a user might give --resume."""
    if kind == 'state':
        path = tmp_path / 'training-state-000004.pt'
        torch.save({'version': 1, 'cur_nimg': 4000}, path)
        return path, 'is a training-state file', str(tmp_path / 'network-snapshot-000004.pkl')
    path = tmp_path / f'{kind}.pkl'
    if kind == 'truncated':
        data = pickle.dumps({'G': list(range(2000)), 'D': 1, 'G_ema': 2})
        path.write_bytes(data[:len(data) // 2])
        return path, 'is a truncated or damaged pickle', None
    path.write_text('this is not a network\n')
    return path, "is a text file (it starts with 'this is not a network')", None


@pytest.mark.parametrize('kind', ['truncated', 'text', 'state'])
def test_resume_files_that_are_no_snapshot_are_named(rand16, tmp_path, kind):
    path, what, hint = _bad_resume_file(tmp_path, kind)
    result = invoke(f'--outdir={tmp_path}/runs', f'--data={rand16}', '--cfg=dcgan', '--metrics=none',
                    f'--resume={path}')
    text = ' '.join(result.output.split())      # click wraps long lines
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f'--resume: {path} {what}' in text and 'Traceback' not in result.output
    assert '--resume accepts a network pickle (network-snapshot-*.pkl or an official .pkl), a URL, latest' in text
    if hint is not None:
        assert hint in text
    assert not os.path.exists(f'{tmp_path}/runs')   # nothing was created


@pytest.fixture
def no_estimate(monkeypatch):
    """--dry-run without the memory/speed estimate (it builds and times networks; not tested here)."""
    monkeypatch.setattr(estimate, 'estimate_lines', lambda kwargs: [])


def test_class_path_plugin_options_are_parsed_once_loss_is_known(rand16, tmp_path, no_estimate):
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--metrics=none', '--gamma=2',
                      '--loss', 'tests.plugins_for_tests.ExtraNetLoss', '--testx-lr', '0.5', '--testx-prior=uniform')
    assert opts['loss_kwargs'] == dict(class_name='tests.plugins_for_tests.ExtraNetLoss', r1_gamma=2.0, pl_weight=0,
                                       style_mixing_prob=0, testx_weight=1.0, testx_lr=0.5, testx_prior='uniform')
    # A loss that takes no base option gets none of the preset's (and its own options' defaults).
    opts, _ = dry_run(f'--outdir={tmp_path}', f'--data={rand16}', '--cfg=dcgan', '--metrics=none',
                      f'--loss={NOBASE}', '--nobase-mode=b')
    assert opts['loss_kwargs'] == dict(class_name=NOBASE, nobase_scale=1.0, nobase_mode='b')


@pytest.mark.parametrize('args,message', [
    (['--gama=5'], 'no such option(s): --gama=5 (did you mean --gamma?)'),
    (['stray'], 'no such option(s): stray'),
    ([f'--loss={NOBASE}', '--nobase-scal', '2'], 'no such option(s): --nobase-scal 2 (did you mean --nobase-scale?)'),
    ([f'--loss={NOBASE}', '--nobase-scale=-1'], "Invalid value for '--nobase-scale'"),
    ([f'--loss={NOBASE}', '--nobase-mode=c'], "Invalid value for '--nobase-mode'"),
    (['--nobase-mode=b'], 'no such option(s): --nobase-mode=b'),    # only known once its loss is chosen
    (['--loss=no_such_module_xyz.Loss', '--x=1'], "--loss: loss class 'no_such_module_xyz.Loss' cannot be imported"),
    ([f'--loss={NOBASE}', '--gamma=5'], f'--gamma=5: --loss={NOBASE} has no R1 penalty'),
    ([f'--loss={NOBASE}+advlat-qua', '--gamma=0'], 'leave --gamma out'),
])
def test_unknown_options_and_unused_base_options_are_refused(rand16, tmp_path, args, message):
    result = invoke(f'--outdir={tmp_path}/runs', f'--data={rand16}', '--cfg=dcgan', '--metrics=none', *args)
    assert result.exit_code == 2, result.output
    assert message in ' '.join(result.output.split())      # click may wrap the line
    assert 'Traceback' not in result.output and not os.path.exists(f'{tmp_path}/runs')
