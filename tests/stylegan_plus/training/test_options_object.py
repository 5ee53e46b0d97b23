"""The typed options object (`TrainingOptions`), the compat table of class names, and metrics as a
callable: what the loop receives, what training_options.json holds, and how they map."""

import json
import os
import pickle

import pytest

import dnnlib
from metrics import metric_main, training_hook
from stylegan_plus.training import launch, official_names, training_loop as training_loop_lib
from stylegan_plus.training.options import UNSET, TrainingOptions
from stylegan_plus.training.resolve import resolve_options
from tests.stylegan_plus.training.test_train_batch_gpu import option_values
from tests.stylegan_plus.training.test_train_utils import make_image_dataset, make_point_dataset


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return dict(images=make_image_dataset(root / 'rand16', count=12), points=make_point_dataset(root / 'ring.npy'))


def test_compat_table_pairs_resolve_to_the_same_class():
    for canonical, official in official_names.CANONICAL_TO_OFFICIAL.items():
        assert canonical.startswith('stylegan_plus.') and official.startswith('training.')
        assert dnnlib.util.get_obj_by_name(canonical) is dnnlib.util.get_obj_by_name(official)
    assert official_names.official_name('mypkg.Loss') == 'mypkg.Loss'     # unknown names pass through


def test_renaming_keeps_types_order_and_other_keys():
    tree = dnnlib.EasyDict(b=1, G_kwargs=dnnlib.EasyDict(class_name='stylegan_plus.networks.stylegan2.Generator',
                                                          mapping_kwargs=dnnlib.EasyDict(num_layers=2)),
                           addons=[dict(class_name='stylegan_plus.losses.stylegan2.StyleGAN2Loss', r1_gamma=1)],
                           betas=(0, 0.99), class_name=3)
    official = official_names.to_official(tree)
    assert list(official) == list(tree) and type(official) is dnnlib.EasyDict
    assert official.G_kwargs.class_name == 'training.networks.Generator'
    assert type(official.G_kwargs.mapping_kwargs) is dnnlib.EasyDict and official.betas == (0, 0.99)
    assert official.addons == [dict(class_name='training.loss.StyleGAN2Loss', r1_gamma=1)]
    assert official.class_name == 3     # only strings are names
    assert tree.G_kwargs.class_name.startswith('stylegan_plus.')      # the input is not changed
    assert official_names.to_canonical(official) == tree
    assert official_names.to_official(official) == official          # idempotent


def test_options_are_canonical_and_the_json_official(datasets):
    options = resolve_options(option_values(datasets['images'], 'cifar', 8, None))
    kwargs = options.loop_kwargs()
    assert kwargs.G_kwargs.class_name == 'stylegan_plus.networks.stylegan2.Generator'
    assert kwargs.training_set_kwargs.class_name == 'stylegan_plus.data.dataset.ImageFolderDataset'
    assert kwargs.augment_kwargs.class_name == 'stylegan_plus.training.augment.AugmentPipe'
    data = options.to_json()
    assert [data[key]['class_name'] for key in ('training_set_kwargs', 'G_kwargs', 'D_kwargs', 'loss_kwargs',
                                                'augment_kwargs')] == \
        ['training.dataset.ImageFolderDataset', 'training.networks.Generator', 'training.networks.Discriminator',
         'training.loss.StyleGAN2Loss', 'training.augment.AugmentPipe']
    assert list(data) == list(kwargs) and 'desc' not in data
    # Reading the file back gives the same options (canonical names, same order).
    again = TrainingOptions.from_dict(json.loads(json.dumps(data)), desc=options.desc)
    assert json.dumps(again.loop_kwargs()) == json.dumps(kwargs)


def test_unset_fields_are_not_written_and_extra_keys_keep_their_slot():
    options = TrainingOptions(g_steps=2, precision='bf16', extra={'plugin_key': 1})
    keys = list(options.loop_kwargs())
    assert 'ada_target' not in keys and 'run_dir' not in keys and 'extra' not in keys
    assert keys[-3:] == ['g_steps', 'plugin_key', 'precision']
    restored = TrainingOptions.from_dict(options.loop_kwargs())
    assert restored.extra == {'plugin_key': 1} and restored.g_steps == 2 and restored.device is UNSET
    # The marker survives pickling as the same object (spawned processes compare with `is`).
    assert pickle.loads(pickle.dumps(options)).device is UNSET and not UNSET


def test_training_hook_checks_names_and_gives_metrics_official_dataset_names(monkeypatch):
    with pytest.raises(ValueError, match=r'unknown metric\(s\) fid5k; accepted: .*fid50k_full'):
        training_hook.check_metrics(['fid50k_full', 'fid5k'])
    training_hook.check_metrics([])
    calls = []

    class Result(dict):
        results = {'m': 1.5}
    monkeypatch.setattr(metric_main, 'calc_metric', lambda **kw: (calls.append(('calc', kw)), Result())[1])
    monkeypatch.setattr(metric_main, 'report_metric', lambda result, **kw: calls.append(('report', kw)))
    data = dict(class_name='stylegan_plus.data.dataset.ImageFolderDataset', path='x')
    results = training_hook.evaluate(['a', 'b'], G='G', dataset_kwargs=data, num_gpus=1, rank=0, device='cpu',
                                     run_dir='r', snapshot_pkl='s.pkl')
    assert results == {'m': 1.5} and [kind for kind, _ in calls] == ['calc', 'report', 'calc', 'report']
    assert calls[0][1]['dataset_kwargs']['class_name'] == 'training.dataset.ImageFolderDataset'
    assert calls[1][1] == dict(run_dir='r', snapshot_pkl='s.pkl')


def test_loop_requires_metrics_fn_only_when_metrics_are_asked_for():
    with pytest.raises(ValueError, match='no metrics_fn was given'):
        training_loop_lib.training_loop(metrics=['fid50k_full'], metrics_fn=None)


def _recording_metrics(calls):
    def metrics_fn(metrics, **kwargs):
        calls.append(dict(kwargs, metrics=list(metrics), pkl_exists=os.path.isfile(kwargs['snapshot_pkl'])))
        return {'fake_metric': 0.25}
    return metrics_fn


@pytest.mark.slow
def test_the_loop_calls_metrics_fn_at_each_network_snapshot(datasets, tmp_path):
    options = resolve_options(option_values(datasets['points'], 'toy', 32, None, nimg=64, snap=1))
    options.metrics = ['fake_metric']
    options.data_loader_kwargs.num_workers = 0
    options.image_snapshot_ticks = None
    options.desc = 'metrics'
    calls = []
    run_dir = launch.launch_local(options, str(tmp_path), metrics_fn=_recording_metrics(calls))
    snapshots = sorted(name for name in os.listdir(run_dir) if name.startswith('network-snapshot-'))
    assert len(calls) == len(snapshots) >= 2      # after the first iteration and at the end
    assert [os.path.basename(call['snapshot_pkl']) for call in calls] == snapshots
    assert all(call['pkl_exists'] and call['metrics'] == ['fake_metric'] and call['rank'] == 0 for call in calls)
    assert calls[0]['dataset_kwargs']['path'] == str(datasets['points']) and calls[0]['run_dir'] == run_dir
    with open(os.path.join(run_dir, 'training_options.json')) as f:
        saved = json.load(f)
    assert saved['metrics'] == ['fake_metric'] and 'metrics_fn' not in saved
    assert saved['training_set_kwargs']['class_name'] == 'training.dataset.PointCloudDataset'
    with open(os.path.join(run_dir, snapshots[-1]), 'rb') as f:
        assert pickle.load(f)['training_set_kwargs'] == saved['training_set_kwargs']   # official names in both
