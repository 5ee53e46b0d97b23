"""Safe (code-free) network export: round trips of every network kind, the allow-list and argument
schema of load_safe (attacks through the JSON must not run), class names of pickled nets, and
exports that fail without leaving files behind."""

import copy
import json
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan_plus.io import images
from stylegan_plus.networks import dcgan, encoders, export, mlp
from torch_utils import persistence
from tests.test_generate_plain import plain_snapshot
from tests.test_legacy import REPO, load_pickle, make_snapshot, render, write_pickle

DCGAN_KWARGS = dict(img_resolution=16, channel_base=128, channel_max=16)


def test_generator_round_trip_is_identical(tmp_path):
    G = make_snapshot(c_dim=2, num_fp16_res=1)['G_ema']
    written = export.save_safe(G, tmp_path / 'G.pt', use_safetensors=False)
    assert [p.rsplit('/', 1)[-1] for p in written] == ['G.json', 'G.pt']
    header = json.loads((tmp_path / 'G.json').read_text())
    assert header['class_name'] == 'training.networks.Generator'
    assert header['init_kwargs']['synthesis_kwargs'] == dict(channel_base=128, channel_max=16, num_fp16_res=1,
                                                             conv_clamp=256)
    # The weights file is plain tensors: the restricted loader accepts it.
    state = torch.load(tmp_path / 'G.pt', weights_only=True)
    assert list(state) == list(G.state_dict()) and all(isinstance(t, torch.Tensor) for t in state.values())

    loaded = export.load_safe(tmp_path / 'G', device='cpu')
    assert type(loaded) is type(G) and not loaded.training
    assert loaded.init_kwargs == G.init_kwargs
    assert torch.equal(render(loaded, 4, class_idx=1, psi=0.5), render(G, 4, class_idx=1, psi=0.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['G.json', 'G.pt']   # no staging folder left


def test_safetensors_is_the_default_format(tmp_path):
    G = make_snapshot()['G']
    written = export.save_safe(G, tmp_path / 'G')
    assert [p.rsplit('/', 1)[-1] for p in written] == ['G.json', 'G.safetensors']
    assert json.loads((tmp_path / 'G.json').read_text())['weights_format'] == 'safetensors'
    assert torch.equal(render(export.load_safe(tmp_path / 'G.json'), 3), render(G, 3))


def test_snapshot_round_trip(tmp_path):
    data = make_snapshot(augment=True)
    written = export.save_safe(data, tmp_path / 'snap', use_safetensors=False)
    assert (tmp_path / 'snap' / 'snapshot.json').as_posix() in [str(p) for p in written]
    loaded = export.load_safe(tmp_path / 'snap')
    assert loaded['training_set_kwargs'] == data['training_set_kwargs']
    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        ref = data[key].state_dict()
        assert all(torch.equal(t, ref[name]) for name, t in loaded[key].state_dict().items())
    header = json.loads((tmp_path / 'snap' / 'augment_pipe.json').read_text())
    assert header['class_name'] == 'training.augment.AugmentPipe'
    assert torch.equal(render(loaded['G_ema'], 7), render(data['G_ema'], 7))
    img = render(data['G'], 2)
    with torch.no_grad():
        assert torch.equal(loaded['D'](img, None), data['D'](img, None))


def test_snapshot_without_augment_pipe_loads_none(tmp_path):
    data = make_snapshot()
    export.save_safe(data, tmp_path / 'snap', use_safetensors=False)
    loaded = export.load_safe(tmp_path / 'snap')
    assert loaded['augment_pipe'] is None and not (tmp_path / 'snap' / 'augment_pipe.json').exists()

#----------------------------------------------------------------------------
# Every network kind we train, with the plugins' extra networks.

def _images(n, channels=3, resolution=16):
    return torch.from_numpy(np.random.RandomState(5).uniform(-1, 1, [n, channels, resolution, resolution])).float()


def _network_cases():
    """(name, module, function module -> output) for each family and each extra-network builder."""
    sg2 = make_snapshot(c_dim=2)
    dc = plain_snapshot(dcgan, c_dim=2, img_channels=3, **DCGAN_KWARGS)
    toy = plain_snapshot(mlp, c_dim=0, z_dim=4, hidden_features=(16, 16))
    z8, z4, c2 = torch.randn([4, 8]), torch.randn([4, 4]), torch.eye(4, 2)     # 4: D's minibatch-std groups of 2
    img, pts = _images(4), torch.randn([4, 2])
    features, joint_input = torch.randn([4, encoders.feature_dim(dc['D'])]), torch.randn([4, 6])
    return [
        ('stylegan2 G', sg2['G_ema'], lambda G: G(z8, c2, truncation_psi=0.7, noise_mode='const')),
        ('stylegan2 D', sg2['D'], lambda D: D(img, c2)),
        ('dcgan G', dc['G'], lambda G: G(z8, c2)),
        ('dcgan D', dc['D'], lambda D: D(img, c2)),
        ('mlp G', toy['G'], lambda G: G(z4, None)),
        ('mlp D', toy['D'], lambda D: D(pts, None)),
        ('encoder of stylegan2 D', encoders.build_encoder(sg2['D'], 8).eval(), lambda E: E(img)),
        ('encoder of dcgan D', encoders.build_encoder(dc['D'], 8).eval(), lambda E: E(img)),
        ('fusion head', encoders.build_fusion_head(dc['D'], 8, 'concat', True, joint_layers=1).eval(),
         lambda H: H(features, z8, c2)),
        ('rf autoencoder', encoders.build_autoencoder(sg2['D'], [sg2['G'].mapping, sg2['G'].synthesis], 8).eval(),
         lambda A: A(img)),
        ('joint input D', encoders.build_joint_input_discriminator(toy['D'], 4).eval(),
         lambda D: D(joint_input, None)),
        ('linear head', torch.nn.Linear(8, 4).eval(), lambda L: L(z8)),
    ]


@pytest.mark.slow
def test_every_network_kind_round_trips_with_identical_outputs(tmp_path):
    for idx, (name, net, run) in enumerate(_network_cases()):
        export.save_safe(net, tmp_path / f'net{idx}')
        loaded = export.load_safe(tmp_path / f'net{idx}')
        assert type(loaded) is type(net), name
        with torch.no_grad():
            assert torch.equal(run(loaded), run(net)), name


def test_snapshot_with_extra_networks(tmp_path):
    data = make_snapshot()
    data['E'] = encoders.build_encoder(data['D'], 8).eval()
    data['clr_head'] = torch.nn.Linear(16, 8)
    export.save_safe(data, tmp_path / 'snap')
    index = json.loads((tmp_path / 'snap' / 'snapshot.json').read_text())
    assert index['networks'] == ['G', 'D', 'G_ema', 'E', 'clr_head']
    loaded = export.load_safe(tmp_path / 'snap')
    img = _images(2)
    with torch.no_grad():
        assert torch.equal(loaded['E'](img), data['E'](img))
    assert torch.equal(loaded['clr_head'].weight, data['clr_head'].weight)


def _alter_source(*names):
    """Import hook giving the named classes a source text of their own: they load as from a foreign pickle."""
    def hook(meta):
        if meta.class_name in names:
            meta.module_src = meta.module_src + '\n# a different source text forces a fresh module\n'
        return meta
    return hook


def _load_with_hook(path, hook):
    persistence.import_hook(hook)
    try:
        return load_pickle(path)
    finally:
        persistence._import_hooks.remove(hook)


def test_net_from_foreign_source_is_exported_by_name(tmp_path):
    """A class executed from a pickle's embedded source (an anonymous module) maps to training.networks."""
    path = write_pickle(make_snapshot(), tmp_path / 'snap.pkl')
    G = _load_with_hook(path, _alter_source('Generator'))['G_ema']
    assert type(G).__mro__[1].__module__.startswith('_imported_module_')
    assert export.export_class_name(G) == 'training.networks.Generator'
    export.save_safe(G, tmp_path / 'G', use_safetensors=False)
    assert torch.equal(render(export.load_safe(tmp_path / 'G'), 1), render(G, 1))


def test_pickled_dcgan_maps_to_the_dcgan_class_not_the_stylegan2_one(tmp_path):
    """The README's main job trains a DCGAN; its `Generator` must not be exported as StyleGAN2's."""
    path = write_pickle(plain_snapshot(dcgan, c_dim=0, img_channels=3, **DCGAN_KWARGS), tmp_path / 'dc.pkl')
    data = _load_with_hook(path, _alter_source('Generator', 'Discriminator'))
    assert type(data['G']).__mro__[1].__module__.startswith('_imported_module_')
    assert export.export_class_name(data['G']) == 'stylegan_plus.networks.dcgan.Generator'
    assert export.export_class_name(data['D']) == 'stylegan_plus.networks.dcgan.Discriminator'
    export.save_safe(data, tmp_path / 'safe')
    loaded = export.load_safe(tmp_path / 'safe')
    z = torch.randn([2, 8])
    with torch.no_grad():
        assert torch.equal(loaded['G_ema'](z, None), data['G_ema'](z, None))


@pytest.mark.slow
def test_legacy_cli_exports_a_dcgan_snapshot_in_a_fresh_process(tmp_path):
    path = write_pickle(plain_snapshot(dcgan, c_dim=0, img_channels=3, **DCGAN_KWARGS), tmp_path / 'dc.pkl')
    cmd = [sys.executable, 'legacy.py', f'--source={path}', f'--safe-export={tmp_path / "safe"}']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header = json.loads((tmp_path / 'safe' / 'G.json').read_text())
    assert header['class_name'] == 'stylegan_plus.networks.dcgan.Generator'
    loaded, ref = export.load_safe(tmp_path / 'safe'), load_pickle(path)
    z = torch.randn([2, 8])
    with torch.no_grad():
        assert torch.equal(loaded['G'](z, None), ref['G'](z, None))

#----------------------------------------------------------------------------
# load_safe runs no code: the allow-list and the argument schema.

def _valid_export(tmp_path):
    G = make_snapshot()['G']
    export.save_safe(G, tmp_path / 'G')
    return json.loads((tmp_path / 'G.json').read_text())


def _attack_cases(marker, kwargs=None):
    """case -> (changes to a valid G.json, text the refusal must contain); kwargs: the valid init_kwargs."""
    command = f'touch {marker}'
    kwargs = kwargs or {}
    encoder = dict(class_name='stylegan_plus.networks.encoders.DiscriminatorEncoder', init_args=[],
                   init_kwargs=dict(out_dim=2, backbone_kwargs=dict(class_name='os.system', command=command)))
    return {
        'os.system': (dict(class_name='os.system', init_args=[command], init_kwargs={}), "'os.system'"),
        'nested class': (encoder, "'os.system'"),
        'builtin eval': (dict(class_name='builtins.eval', init_args=[f'__import__("os").system("{command}")']),
                         "'builtins.eval'"),
        'unknown argument': (dict(init_kwargs=dict(kwargs, hook=command)), "'hook'"),
        'non-finite number': (dict(init_kwargs=dict(kwargs, w_dim=float('nan'))), 'init_kwargs.w_dim = nan'),
        'weights outside': (dict(weights='../G.safetensors'), "'../G.safetensors'"),
        'not a format file': (dict(format='pickle'), 'is not a stylegan-plus-safe-export'),
    }


@pytest.mark.parametrize('case', list(_attack_cases('x')))
def test_load_safe_refuses_before_constructing_anything(tmp_path, case):
    marker = tmp_path / 'pwned'
    header = _valid_export(tmp_path)
    changes, message = _attack_cases(marker, header['init_kwargs'])[case]
    header.update(changes)
    (tmp_path / 'G.json').write_text(json.dumps(header))
    with pytest.raises(export.UnsafeExportError) as info:
        export.load_safe(tmp_path / 'G.json')
    assert message in str(info.value)
    assert not marker.exists()


@pytest.mark.slow
def test_the_issue_attack_does_not_run_in_a_fresh_process(tmp_path):
    marker = tmp_path / 'x'
    (tmp_path / 'attack.json').write_text(json.dumps(dict(
        format=export.FORMAT_NAME, version=export.FORMAT_VERSION, class_name='os.system',
        init_args=[f'touch {marker}'], init_kwargs={}, weights='attack.pt', weights_format='torch')))
    torch.save({}, tmp_path / 'attack.pt')
    code = f'from stylegan_plus.networks import export; export.load_safe({str(tmp_path / "attack.json")!r})'
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and 'UnsafeExportError' in proc.stderr and 'allow-list' in proc.stderr
    assert not marker.exists()


def test_registered_plugin_class_is_allowed(tmp_path):
    header = _valid_export(tmp_path)
    header.update(class_name='tests.stylegan_plus.networks.test_export.PluginHead', init_kwargs=dict(width=3))
    (tmp_path / 'G.json').write_text(json.dumps(header))
    with pytest.raises(export.UnsafeExportError, match='not on the allow-list'):
        export.load_safe(tmp_path / 'G.json')
    export.register_safe_class(PluginHead)
    try:
        head = PluginHead(width=3)
        export.save_safe(head, tmp_path / 'head')
        assert json.loads((tmp_path / 'head.json').read_text())['class_name'] == 'tests.stylegan_plus.networks.test_export.PluginHead'
        assert torch.equal(export.load_safe(tmp_path / 'head').lin.weight, head.lin.weight)
    finally:
        export._registered.pop('tests.stylegan_plus.networks.test_export.PluginHead')


@persistence.persistent_class
class PluginHead(torch.nn.Module):
    """A loss plugin's extra network outside this package (registered in the test above)."""

    def __init__(self, width):
        super().__init__()
        self.lin = torch.nn.Linear(width, 1)

#----------------------------------------------------------------------------
# Failures leave nothing behind.

def test_export_errors(tmp_path):
    with pytest.raises(TypeError, match='persistent network module'):
        export.save_safe(torch.nn.Conv2d(2, 2, 1), tmp_path / 'conv')
    with pytest.raises(ValueError, match='needs G, D and G_ema'):
        export.save_safe(dict(G=make_snapshot()['G']), tmp_path / 'partial')
    with pytest.raises(TypeError, match=r'init_kwargs\.bad'):
        export._to_json(dict(bad=object()), 'init_kwargs')
    assert list(tmp_path.iterdir()) == []
    G = make_snapshot()['G']
    export.save_safe(G, tmp_path / 'G', use_safetensors=False)
    header = json.loads((tmp_path / 'G.json').read_text())
    header['init_kwargs']['w_dim'] = 4  # the recorded architecture no longer fits the weights
    (tmp_path / 'G.json').write_text(json.dumps(header))
    with pytest.raises(ValueError, match='do not fit training.networks.Generator'):
        export.load_safe(tmp_path / 'G.json')


def test_failed_snapshot_export_leaves_nothing(tmp_path):
    data = make_snapshot()
    data['H'] = torch.nn.Conv2d(3, 1, 1)     # a plain module: its constructor arguments are unknown
    with pytest.raises(TypeError, match="snapshot entry 'H'"):
        export.save_safe(data, tmp_path / 'snap')
    assert list(tmp_path.iterdir()) == []
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'mine.txt').write_text('keep')
    with pytest.raises(ValueError, match='not an empty folder'):
        export.save_safe(make_snapshot(), tmp_path / 'full')
    assert [p.name for p in (tmp_path / 'full').iterdir()] == ['mine.txt']


def test_legacy_cli_reports_a_failed_export_without_traceback(tmp_path):
    from click.testing import CliRunner
    import legacy
    data = make_snapshot()
    data['H'] = torch.nn.Conv2d(3, 1, 1)
    path = write_pickle(data, tmp_path / 'snap.pkl')
    result = CliRunner().invoke(legacy.convert_network_pickle,
                                [f'--source={path}', f'--safe-export={tmp_path / "out"}'])
    assert result.exit_code == 1, result.output
    assert f"--safe-export='{tmp_path / 'out'}' failed" in result.output and "'H'" in result.output
    assert 'Traceback' not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ['snap.pkl']


def test_weights_file_holds_no_code(tmp_path):
    """Unlike the pickle, the exported files carry neither source code nor references to our classes."""
    G = make_snapshot()['G']
    pickled = pickle.dumps(G)
    assert b'_reconstruct_persistent_obj' in pickled and b'class Generator' in pickled
    for use_safetensors, ext in ((False, 'pt'), (True, 'safetensors')):
        export.save_safe(copy.deepcopy(G), tmp_path / 'G', use_safetensors=use_safetensors)
        for name in (f'G.{ext}', 'G.json'):
            raw = (tmp_path / name).read_bytes()
            assert b'persistence' not in raw and b'class Generator' not in raw and b'import ' not in raw

#----------------------------------------------------------------------------
# The latent prior travels with the export (generate.py / style_mixing.py read it).

def test_snapshot_prior_round_trips_and_unknown_priors_are_refused(tmp_path):
    data = make_snapshot()
    export.save_safe(data, tmp_path / 'official', use_safetensors=False)   # an official pickle records none
    assert 'z_dist' not in json.loads((tmp_path / 'official' / 'snapshot.json').read_text())
    assert 'z_dist' not in export.load_safe(tmp_path / 'official')
    for recorded, expected in [('uniform', 'uniform'), ('normal', 'normal'), ('gaussian', 'normal')]:
        export.save_safe(dict(data, z_dist=recorded), tmp_path / recorded, use_safetensors=False)
        assert json.loads((tmp_path / recorded / 'snapshot.json').read_text())['z_dist'] == expected
        assert export.load_safe(tmp_path / recorded)['z_dist'] == expected
    with pytest.raises(ValueError, match="z_dist='cauchy'"):
        export.save_safe(dict(data, z_dist='cauchy'), tmp_path / 'bad', use_safetensors=False)
    assert not (tmp_path / 'bad').exists()

    index_path = tmp_path / 'uniform' / 'snapshot.json'
    index = json.loads(index_path.read_text())
    for value in ('cauchy', 'gaussian', 3, None, ['uniform']):    # only canonical names are read back
        index_path.write_text(json.dumps(dict(index, z_dist=value)))
        with pytest.raises(export.UnsafeExportError, match=r'z_dist = .* accepted are normal, uniform'):
            export.load_safe(tmp_path / 'uniform')


@pytest.fixture
def uniform_export(tmp_path):
    """A StyleGAN2 snapshot trained (so it records) on the uniform prior, exported code-free."""
    folder = tmp_path / 'safe'
    export.save_safe(dict(make_snapshot(), z_dist='uniform'), folder)
    return folder


def _uniform_z(seed, z_dim=8):
    return np.random.RandomState(seed).uniform(-1.0, 1.0, size=(1, z_dim))


def test_generate_from_an_export_draws_the_recorded_prior(uniform_export, tmp_path):
    import generate  # pylint: disable=import-outside-toplevel
    vectors = tmp_path / 'v.npz'
    result = CliRunner().invoke(generate.generate_images, [f'--network={uniform_export}', '--seeds=0,3',
                                                          f'--outdir={tmp_path / "out"}', f'--vector-out={vectors}',
                                                          '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert 'Latents: uniform prior, as the snapshot records' in result.output
    with np.load(vectors) as saved:
        np.testing.assert_array_equal(saved['z'], np.concatenate([_uniform_z(0), _uniform_z(3)]))


def test_style_mixing_from_an_export_draws_the_recorded_prior(uniform_export, tmp_path):
    import style_mixing  # pylint: disable=import-outside-toplevel
    result = CliRunner().invoke(style_mixing.generate_style_mix, [f'--network={uniform_export}', '--rows=0',
                                                                  '--cols=1', f'--outdir={tmp_path}', '--device=cpu'])
    assert result.exit_code == 0, result.output
    G = export.load_safe(uniform_export)['G_ema']
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(_uniform_z(1)).float(), None)
        expected = images.to_uint8(G.synthesis(w, noise_mode='const'))[0]
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / '1-1.png')), expected)


def test_tools_name_a_damaged_export(uniform_export, tmp_path):
    import generate  # pylint: disable=import-outside-toplevel
    index = uniform_export / 'snapshot.json'
    index.write_text(index.read_text().replace('"uniform"', '"cauchy"'))
    result = CliRunner().invoke(generate.generate_images, [f'--network={uniform_export}', '--seeds=0',
                                                          f'--outdir={tmp_path / "out"}', '--device=cpu'])
    assert result.exit_code == 2 and 'Traceback' not in result.output
    assert 'cannot load the exported snapshot' in result.output and "'cauchy'" in result.output
