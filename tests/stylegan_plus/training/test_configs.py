"""--cfg presets: the official table and auto rule (docs/compat.md 1.1), key order, dcgan and toy.

Presets name classes where they live (`stylegan_plus.*`); the official `training.*` names appear
once the compat table has renamed them (`official_names.to_official`), as training_options.json has them.
"""

import json

import pytest
import torch

import dnnlib
from stylegan_plus.training import configs, official_names
from stylegan_plus.training.configs import ConfigError, build_config, get_config, list_configs

# The official table, restated for the test: ref_gpus, kimg, mb, mbstd, fmaps, lrate, gamma, ema, ramp, map.
TABLE = {
    'stylegan2': (8, 25000, 32, 4, 1, 0.002, 10, 10, None, 8),
    'paper256': (8, 25000, 64, 8, 0.5, 0.0025, 1, 20, None, 8),
    'paper512': (8, 25000, 64, 8, 1, 0.0025, 0.5, 20, None, 8),
    'paper1024': (8, 25000, 32, 4, 1, 0.002, 2, 10, None, 8),
    'cifar': (2, 100000, 64, 32, 1, 0.0025, 0.01, 500, 0.05, 2),
}


def _expected(row, cifar=False):
    ref_gpus, kimg, mb, mbstd, fmaps, lrate, gamma, ema, ramp, num_map = row
    shared = dict(channel_base=int(fmaps * 32768), channel_max=512, num_fp16_res=4, conv_clamp=256)
    D_kwargs = dict(class_name='training.networks.Discriminator', block_kwargs={}, mapping_kwargs={},
                    epilogue_kwargs=dict(mbstd_group_size=mbstd), **shared)
    loss_kwargs = dict(class_name='training.loss.StyleGAN2Loss', r1_gamma=gamma)
    if cifar:
        loss_kwargs.update(pl_weight=0, style_mixing_prob=0)
        D_kwargs['architecture'] = 'orig'
    opt = dict(class_name='torch.optim.Adam', lr=lrate, betas=[0, 0.99], eps=1e-8)
    return dict(
        G_kwargs=dict(class_name='training.networks.Generator', z_dim=512, w_dim=512,
                      mapping_kwargs=dict(num_layers=num_map), synthesis_kwargs=shared),
        D_kwargs=D_kwargs, G_opt_kwargs=opt, D_opt_kwargs=opt, loss_kwargs=loss_kwargs, total_kimg=kimg,
        batch_size=mb, batch_gpu=mb // ref_gpus, ema_kimg=ema, ema_rampup=ramp)


@pytest.mark.parametrize('name', list(TABLE))
def test_official_presets(name):
    preset = build_config(name, resolution=256, num_gpus=1)
    expected = _expected(TABLE[name], cifar=(name == 'cifar'))
    assert preset.desc == name
    # json.dumps keeps key order, so this also checks the order training_options.json gets.
    assert json.dumps(official_names.to_official(preset.args)) == json.dumps(expected)
    assert preset.args.G_kwargs.class_name == 'stylegan_plus.networks.stylegan2.Generator'
    assert preset.args.loss_kwargs.class_name == 'stylegan_plus.losses.stylegan2.StyleGAN2Loss'
    assert get_config(name).family == 'stylegan2' and get_config(name).data_kind == 'image'


def test_cifar_key_order_as_measured():
    args = build_config('cifar', 32, 1).args
    assert list(args) == ['G_kwargs', 'D_kwargs', 'G_opt_kwargs', 'D_opt_kwargs', 'loss_kwargs', 'total_kimg',
                          'batch_size', 'batch_gpu', 'ema_kimg', 'ema_rampup']
    assert list(args.G_kwargs) == ['class_name', 'z_dim', 'w_dim', 'mapping_kwargs', 'synthesis_kwargs']
    assert list(args.G_kwargs.synthesis_kwargs) == ['channel_base', 'channel_max', 'num_fp16_res', 'conv_clamp']
    assert list(args.D_kwargs) == ['class_name', 'block_kwargs', 'mapping_kwargs', 'epilogue_kwargs', 'channel_base',
                                   'channel_max', 'num_fp16_res', 'conv_clamp', 'architecture']
    assert list(args.loss_kwargs) == ['class_name', 'r1_gamma', 'pl_weight', 'style_mixing_prob']
    assert list(args.G_opt_kwargs) == ['class_name', 'lr', 'betas', 'eps']
    assert isinstance(args.G_kwargs.mapping_kwargs, dnnlib.EasyDict)
    assert args.G_opt_kwargs is not args.D_opt_kwargs


@pytest.mark.parametrize('res, gpus, mb, mbstd, fmaps, lrate, gamma, ema', [
    (32, 1, 32, 4, 0.5, 0.0025, 0.0064, 10.0),
    (64, 2, 64, 4, 0.5, 0.0025, 0.0128, 20.0),
    (256, 8, 64, 4, 0.5, 0.0025, 0.2048, 20.0),
    (512, 4, 32, 4, 1, 0.0025, 1.6384, 10.0),
    (1024, 2, 8, 4, 1, 0.002, 26.2144, 2.5),
    (1024, 16, 64, 4, 1, 0.002, 3.2768, 20.0),
    (4096, 4, 4, 1, 1, 0.002, 838.8608, 1.25),
])
def test_auto_rule(res, gpus, mb, mbstd, fmaps, lrate, gamma, ema):
    preset = build_config('auto', resolution=res, num_gpus=gpus)
    expected = _expected((gpus, 25000, mb, mbstd, fmaps, lrate, gamma, ema, 0.05, 2))
    got = json.loads(json.dumps(official_names.to_official(preset.args)))
    assert got.pop('loss_kwargs')['r1_gamma'] == pytest.approx(gamma, rel=1e-12)
    expected.pop('loss_kwargs')
    assert got == json.loads(json.dumps(expected))
    assert preset.desc == f'auto{gpus}'
    assert isinstance(preset.args.ema_kimg, float)     # mb * 10 / 32, as written by the official code


def test_registry_listing_and_errors():
    assert list(list_configs()) == ['auto', 'stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar', 'dcgan', 'toy']
    assert all(list_configs().values())
    with pytest.raises(ConfigError, match=r"unknown --cfg preset 'dcgn'; did you mean 'dcgan'\?"):
        build_config('dcgn', 32)
    with pytest.raises(ConfigError, match='power of two'):
        build_config('auto', 32, num_gpus=3)
    with pytest.raises(ValueError, match='registered twice'):
        configs.register_config('cifar', 'again')(lambda res, gpus: None)


@pytest.mark.parametrize('res', [16, 32, 64])
def test_dcgan_preset(res):
    preset = build_config('dcgan', res, num_gpus=2)
    args = preset.args
    assert preset.desc == 'dcgan' and get_config('dcgan').family == 'dcgan'
    assert args.G_kwargs.class_name == 'stylegan_plus.networks.dcgan.Generator'
    assert args.D_kwargs.class_name == 'stylegan_plus.networks.dcgan.Discriminator'
    assert args.G_opt_kwargs == dict(class_name='torch.optim.Adam', lr=0.0002, betas=[0.5, 0.999], eps=1e-8)
    assert args.loss_kwargs == dict(class_name=configs.BASELINE_LOSS, r1_gamma=0.0002 * res ** 2 / 64,
                                    pl_weight=0, style_mixing_prob=0)
    assert (args.batch_size, args.batch_gpu, args.G_reg_interval) == (64, 32, None)
    assert 'D_reg_interval' not in args     # lazy R1 at the loop default
    common = dict(c_dim=0, img_resolution=res, img_channels=3)
    G = dnnlib.util.construct_class_by_name(**args.G_kwargs, **common)
    D = dnnlib.util.construct_class_by_name(**args.D_kwargs, **common)
    img = G(torch.randn(2, G.z_dim), torch.zeros(2, 0))
    assert img.shape == (2, 3, res, res) and D(img, None).shape == (2, 1)


@pytest.mark.parametrize('res', [8, 128])
def test_dcgan_refuses_other_resolutions(res):
    with pytest.raises(ConfigError, match=f'supports resolutions 16, 32, 64; the dataset has {res} px'):
        build_config('dcgan', res)


def test_toy_preset():
    preset = build_config('toy', 1, num_gpus=1)
    entry = get_config('toy')
    assert (entry.family, entry.data_kind) == ('mlp', 'points')
    assert dnnlib.util.get_obj_by_name(entry.dataset_class_name).__name__ == 'PointCloudDataset'
    args = preset.args
    assert args.loss_kwargs == dict(class_name=configs.BASELINE_LOSS, r1_gamma=0, pl_weight=0, style_mixing_prob=0)
    assert (args.G_reg_interval, args.D_reg_interval, args.batch_size) == (None, None, 128)
    common = dict(c_dim=0, img_resolution=1, img_channels=2)
    G = dnnlib.util.construct_class_by_name(**args.G_kwargs, **common)
    D = dnnlib.util.construct_class_by_name(**args.D_kwargs, **common)
    assert D(G(torch.randn(5, G.z_dim), None), None).shape == (5, 1)
    json.dumps(args)    # everything is JSON-serialisable


def test_presets_name_canonical_classes_with_official_twins():
    for name in list_configs():
        entry = get_config(name)
        args = build_config(name, 1 if entry.data_kind == 'points' else 32, 1).args
        for class_name in (args.G_kwargs.class_name, args.D_kwargs.class_name, args.loss_kwargs.class_name,
                           entry.dataset_class_name):
            assert class_name.startswith('stylegan_plus.'), (name, class_name)
            official = official_names.official_name(class_name)
            # Where the table has an official name, both paths resolve to the same class.
            assert dnnlib.util.get_obj_by_name(official) is dnnlib.util.get_obj_by_name(class_name)
            assert official_names.canonical_name(official) == class_name
