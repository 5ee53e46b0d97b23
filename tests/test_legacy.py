"""legacy.py: TensorFlow pickle conversion, native snapshot loading, force_fp16 and the CLI.

Also home of `make_snapshot`, the tiny snapshot builder shared by test_generate/test_export.
"""

import copy
import importlib.util
import io
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import legacy
from training import networks

from tests import REPO

#----------------------------------------------------------------------------
# Tiny native snapshots.

def make_snapshot(c_dim=0, resolution=16, img_channels=3, num_fp16_res=0, augment=False, seed=0):
    """A snapshot dict like training writes: small nets (w_dim 8, <= 16 channels), eval, CPU."""
    torch.manual_seed(seed)
    synthesis_kwargs = dict(channel_base=128, channel_max=16, num_fp16_res=num_fp16_res,
                            conv_clamp=256 if num_fp16_res else None)
    G = networks.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=resolution, img_channels=img_channels,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=synthesis_kwargs)
    D = networks.Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels, channel_base=128,
                               channel_max=16, epilogue_kwargs=dict(mbstd_group_size=2))
    with torch.no_grad():  # move w_avg and noise strengths off zero so that truncation/noise matter
        G.mapping.w_avg.normal_()
        for name, param in G.named_parameters():
            if name.endswith('noise_strength'):
                param.fill_(0.3)
    augment_pipe = None
    if augment:
        from training.augment import AugmentPipe
        augment_pipe = AugmentPipe(xflip=1, rotate90=1).eval().requires_grad_(False)
    G_ema = copy.deepcopy(G)
    return dict(training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path='/data/x.zip',
                                          use_labels=c_dim > 0, max_size=10, xflip=False, resolution=resolution),
                G=G.eval().requires_grad_(False), D=D.eval().requires_grad_(False),
                G_ema=G_ema.eval().requires_grad_(False), augment_pipe=augment_pipe)


def write_pickle(data, path):
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    return str(path)


def load_pickle(path, **kwargs):
    with open(path, 'rb') as f:
        return legacy.load_network_pkl(f, **kwargs)


def render(G, seed=0, class_idx=None, psi=1.0):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    c = torch.zeros([1, G.c_dim])
    if class_idx is not None:
        c[0, class_idx] = 1
    with torch.no_grad():
        return G(z, c, truncation_psi=psi, noise_mode='const')

#----------------------------------------------------------------------------
# Synthetic TensorFlow pickles.

class FakeTFNetwork:
    """Pickles like dnnlib.tflib.network.Network: a state dict of kwargs, variables and components."""

    def __init__(self, name, static_kwargs, variables, components=None, version=5):
        self.state = dict(version=version, name=name, static_kwargs=static_kwargs,
                          components=components or {}, build_module_src='', build_func_name=name,
                          variables=variables)

    def __getstate__(self):
        return self.state

    def __setstate__(self, state):
        self.state = state


FakeTFNetwork.__module__ = 'dnnlib.tflib.network'
FakeTFNetwork.__qualname__ = FakeTFNetwork.__name__ = 'Network'


def _channels(res):  # fmap_base 64 -> channel_base 128, fmap_max 16
    return min(128 // res, 16)


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _tf_modconv(rng, scope, k, cin, cout, w_dim, noise=True):
    out = [(f'{scope}/weight', _rand(rng, k, k, cin, cout)), (f'{scope}/bias', _rand(rng, cout))]
    if noise:
        out.append((f'{scope}/noise_strength', _rand(rng)))
    return out + [(f'{scope}/mod_weight', _rand(rng, w_dim, cin)), (f'{scope}/mod_bias', _rand(rng, cin))]


def tf_generator(rng, res=16, z_dim=8, w_dim=8, c_dim=0, **extra_kwargs):
    mapping = []
    if c_dim:
        mapping += [('LabelEmbed/weight', _rand(rng, c_dim, w_dim)), ('LabelEmbed/bias', _rand(rng, w_dim))]
    mapping += [('Dense0/weight', _rand(rng, z_dim + (w_dim if c_dim else 0), w_dim)),
                ('Dense0/bias', _rand(rng, w_dim)), ('Dense1/weight', _rand(rng, w_dim, w_dim)),
                ('Dense1/bias', _rand(rng, w_dim))]
    synthesis = [('4x4/Const/const', _rand(rng, 1, _channels(4), 4, 4))]
    synthesis += _tf_modconv(rng, '4x4/Conv', 3, _channels(4), _channels(4), w_dim)
    synthesis += _tf_modconv(rng, '4x4/ToRGB', 1, _channels(4), 3, w_dim, noise=False)
    synthesis += [('noise0', _rand(rng, 1, 1, 4, 4))]
    r = 8
    while r <= res:
        synthesis += _tf_modconv(rng, f'{r}x{r}/Conv0_up', 3, _channels(r // 2), _channels(r), w_dim)
        synthesis += _tf_modconv(rng, f'{r}x{r}/Conv1', 3, _channels(r), _channels(r), w_dim)
        synthesis += _tf_modconv(rng, f'{r}x{r}/ToRGB', 1, _channels(r), 3, w_dim, noise=False)
        idx = 2 * int(np.log2(r)) - 5
        synthesis += [(f'noise{idx}', _rand(rng, 1, 1, r, r)), (f'noise{idx + 1}', _rand(rng, 1, 1, r, r))]
        r *= 2
    kwargs = dict(latent_size=z_dim, label_size=c_dim, dlatent_size=w_dim, resolution=res, num_channels=3,
                  fmap_base=64, fmap_max=16, mapping_layers=2, truncation_psi=0.5, **extra_kwargs)
    return FakeTFNetwork('G', kwargs, [('dlatent_avg', _rand(rng, w_dim))], components=dict(
        mapping=FakeTFNetwork('G_mapping', {}, mapping), synthesis=FakeTFNetwork('G_synthesis', {}, synthesis)))


def tf_discriminator(rng, res=16, c_dim=0, cmap=16):
    variables = [(f'{res}x{res}/FromRGB/weight', _rand(rng, 1, 1, 3, _channels(res))),
                 (f'{res}x{res}/FromRGB/bias', _rand(rng, _channels(res)))]
    r = res
    while r > 4:
        cin, cout = _channels(r), _channels(r // 2)
        variables += [(f'{r}x{r}/Conv0/weight', _rand(rng, 3, 3, cin, cin)), (f'{r}x{r}/Conv0/bias', _rand(rng, cin)),
                      (f'{r}x{r}/Conv1_down/weight', _rand(rng, 3, 3, cin, cout)),
                      (f'{r}x{r}/Conv1_down/bias', _rand(rng, cout)),
                      (f'{r}x{r}/Skip/weight', _rand(rng, 1, 1, cin, cout))]
        r //= 2
    c4 = _channels(4)
    out_dim = cmap if c_dim else 1
    variables += [('4x4/Conv/weight', _rand(rng, 3, 3, c4 + 1, c4)), ('4x4/Conv/bias', _rand(rng, c4)),
                  ('4x4/Dense0/weight', _rand(rng, c4 * 16, c4)), ('4x4/Dense0/bias', _rand(rng, c4)),
                  ('Output/weight', _rand(rng, c4, out_dim)), ('Output/bias', _rand(rng, out_dim))]
    kwargs = dict(label_size=c_dim, resolution=res, num_channels=3, fmap_base=64, fmap_max=16, mbstd_group_size=2)
    if c_dim:
        kwargs.update(mapping_layers=2, mapping_fmaps=cmap)
        variables += [('LabelEmbed/weight', _rand(rng, c_dim, cmap)), ('LabelEmbed/bias', _rand(rng, cmap)),
                      ('Mapping0/weight', _rand(rng, cmap, cmap)), ('Mapping0/bias', _rand(rng, cmap)),
                      ('Mapping1/weight', _rand(rng, cmap, cmap)), ('Mapping1/bias', _rand(rng, cmap))]
    return FakeTFNetwork('D', kwargs, variables)


@pytest.fixture
def tf_module(monkeypatch):
    """Make `dnnlib.tflib.network.Network` importable while the test pickles the fake nets."""
    tflib = types.ModuleType('dnnlib.tflib')
    network = types.ModuleType('dnnlib.tflib.network')
    network.Network = FakeTFNetwork
    tflib.network = network
    monkeypatch.setitem(sys.modules, 'dnnlib.tflib', tflib)
    monkeypatch.setitem(sys.modules, 'dnnlib.tflib.network', network)
    return network


def write_tf_pickle(path, monkeypatch, c_dim=0, seed=0):
    """Pickle a (G, D, Gs) triplet, then hide the fake TF module so loading cannot use it."""
    rng = np.random.default_rng(seed)
    nets = (tf_generator(rng, c_dim=c_dim), tf_discriminator(rng, c_dim=c_dim), tf_generator(rng, c_dim=c_dim))
    write_pickle(nets, path)
    monkeypatch.delitem(sys.modules, 'dnnlib.tflib.network')
    monkeypatch.delitem(sys.modules, 'dnnlib.tflib')
    return {net.state['name'] + str(i): _flatten(net) for i, net in enumerate(nets)}


def _flatten(net, prefix=''):
    flat = {prefix + name: value for name, value in net.state['variables']}
    for name, comp in net.state['components'].items():
        flat.update(_flatten(comp, prefix + name + '/'))
    return flat


def _num_converted_elements(module):
    return sum(t.numel() for name, t in list(module.named_parameters()) + list(module.named_buffers())
               if not name.endswith('resample_filter'))

#----------------------------------------------------------------------------

@pytest.mark.parametrize('c_dim', [0, 4])
def test_tf_pickle_converts_to_matching_parameters(tmp_path, monkeypatch, tf_module, c_dim):
    tf = write_tf_pickle(tmp_path / 'tf.pkl', monkeypatch, c_dim=c_dim)
    data = load_pickle(tmp_path / 'tf.pkl')
    assert data['training_set_kwargs'] is None and data['augment_pipe'] is None
    G, D, tf_G, tf_D = data['G_ema'], data['D'], tf['G2'], tf['D1']
    assert isinstance(G, networks.Generator) and isinstance(D, networks.Discriminator)
    assert G.img_resolution == 16 and G.c_dim == c_dim and G.w_dim == 8 and G.num_ws == 6

    def same(tensor, array):
        assert torch.equal(tensor, torch.from_numpy(np.array(array, order="C")))

    s = G.synthesis
    same(G.mapping.w_avg, tf_G['dlatent_avg'])
    same(G.mapping.fc1.weight, tf_G['mapping/Dense1/weight'].T)
    same(G.mapping.fc0.bias, tf_G['mapping/Dense0/bias'])
    same(s.b4.const, tf_G['synthesis/4x4/Const/const'][0])
    same(s.b4.conv1.weight, tf_G['synthesis/4x4/Conv/weight'].transpose(3, 2, 0, 1))
    same(s.b4.conv1.noise_const, tf_G['synthesis/noise0'][0, 0])
    same(s.b8.conv0.weight, tf_G['synthesis/8x8/Conv0_up/weight'][::-1, ::-1].transpose(3, 2, 0, 1))
    same(s.b8.conv0.affine.bias, tf_G['synthesis/8x8/Conv0_up/mod_bias'] + 1)
    same(s.b8.conv0.noise_const, tf_G['synthesis/noise1'][0, 0])
    same(s.b16.conv1.noise_const, tf_G['synthesis/noise4'][0, 0])
    same(s.b16.conv1.noise_strength, tf_G['synthesis/16x16/Conv1/noise_strength'])
    same(s.b16.torgb.affine.weight, tf_G['synthesis/16x16/ToRGB/mod_weight'].T)
    same(s.b16.torgb.weight, tf_G['synthesis/16x16/ToRGB/weight'].transpose(3, 2, 0, 1))
    same(D.b16.fromrgb.weight, tf_D['16x16/FromRGB/weight'].transpose(3, 2, 0, 1))
    same(D.b16.conv1.weight, tf_D['16x16/Conv1_down/weight'].transpose(3, 2, 0, 1))
    same(D.b8.skip.weight, tf_D['8x8/Skip/weight'].transpose(3, 2, 0, 1))
    same(D.b4.conv.weight, tf_D['4x4/Conv/weight'].transpose(3, 2, 0, 1))
    same(D.b4.fc.weight, tf_D['4x4/Dense0/weight'].T)
    same(D.b4.out.weight, tf_D['Output/weight'].T)
    if c_dim:
        same(G.mapping.embed.weight, tf_G['mapping/LabelEmbed/weight'].T)
        same(D.mapping.embed.weight, tf_D['LabelEmbed/weight'].T)
        same(D.mapping.fc1.weight, tf_D['Mapping1/weight'].T)
    # Every converted tensor came from the pickle: element counts match one to one.
    assert _num_converted_elements(G) == sum(a.size for a in tf_G.values())
    assert _num_converted_elements(D) == sum(a.size for a in tf_D.values())
    assert not torch.equal(data['G'].mapping.w_avg, G.mapping.w_avg)  # G and Gs are distinct nets

    c = torch.zeros([2, c_dim])
    if c_dim:
        c[:, 1] = 1
    with torch.no_grad():
        img = G(torch.randn([2, 8]), c, noise_mode='const')
        logits = D(img, c)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


def test_tf_conversion_rejects_unknown_kwargs_and_old_versions(tmp_path, monkeypatch, tf_module):
    rng = np.random.default_rng(0)
    bad = tf_generator(rng, fmap_decay=1.0, mystery=3)
    with pytest.raises(ValueError, match='fmap_decay, mystery'):
        legacy.convert_tf_generator(_as_stub(bad))
    old = tf_discriminator(rng)
    old.state['version'] = 3
    with pytest.raises(ValueError, match='version 3 is too old'):
        legacy.convert_tf_discriminator(_as_stub(old))


def _as_stub(net):
    """The stub `_LegacyUnpickler` would produce for `net`."""
    return legacy._LegacyUnpickler(io.BytesIO(pickle.dumps(net))).load()


def test_snapshot_reloads_and_reproduces_images(tmp_path):
    data = make_snapshot(c_dim=3, augment=True)
    reloaded = load_pickle(write_pickle(data, tmp_path / 'snap.pkl'))
    assert list(reloaded) == ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe']
    assert reloaded['training_set_kwargs'] == data['training_set_kwargs']
    assert type(reloaded['augment_pipe']).__name__ == 'AugmentPipe'
    assert torch.equal(render(reloaded['G_ema'], 3, class_idx=2), render(data['G_ema'], 3, class_idx=2))
    img = render(data['G'], 1, class_idx=0)
    c = torch.tensor([[1.0, 0, 0]])
    with torch.no_grad():
        assert torch.equal(reloaded['D'](img, c), data['D'](img, c))


def test_missing_fields_are_filled_and_bad_contents_rejected(tmp_path):
    data = make_snapshot()
    del data['training_set_kwargs'], data['augment_pipe']
    reloaded = load_pickle(write_pickle(data, tmp_path / 'old.pkl'))
    assert reloaded['training_set_kwargs'] is None and reloaded['augment_pipe'] is None
    with pytest.raises(TypeError, match="'D' must be a torch.nn.Module"):
        load_pickle(write_pickle(dict(G=data['G'], D='oops', G_ema=data['G']), tmp_path / 'bad.pkl'))
    with pytest.raises(TypeError, match='not a network pickle'):
        load_pickle(write_pickle([1, 2], tmp_path / 'list.pkl'))


def test_force_fp16_rebuilds_with_same_weights(tmp_path):
    data = make_snapshot()
    path = write_pickle(data, tmp_path / 'snap.pkl')
    fp16 = load_pickle(path, force_fp16=True)
    for key in ('G', 'G_ema'):
        kwargs = fp16[key].init_kwargs.synthesis_kwargs
        assert (kwargs.num_fp16_res, kwargs.conv_clamp) == (4, 256)
    assert (fp16['D'].init_kwargs.num_fp16_res, fp16['D'].init_kwargs.conv_clamp) == (4, 256)
    for key in ('G', 'D', 'G_ema'):
        old, new = data[key].state_dict(), fp16[key].state_dict()
        assert list(old) == list(new)
        assert all(torch.equal(old[name], new[name]) for name in old)
    # Already fp16: the nets are returned as loaded, not rebuilt.
    again = load_pickle(write_pickle(fp16, tmp_path / 'fp16.pkl'), force_fp16=True)
    assert again['G'].init_kwargs == fp16['G'].init_kwargs


@pytest.mark.slow
def test_cli_round_trip_and_safe_export(tmp_path, monkeypatch, tf_module):
    write_tf_pickle(tmp_path / 'tf.pkl', monkeypatch)
    cmd = [sys.executable, 'legacy.py', f'--source={tmp_path / "tf.pkl"}', f'--dest={tmp_path / "out.pkl"}',
           '--force-fp16=1', f'--safe-export={tmp_path / "safe"}']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f'Reading networks from {tmp_path / "tf.pkl"}',
                                        f'Wrote native snapshot pickle {tmp_path / "out.pkl"}',
                                        f'Wrote weights-only export to {tmp_path / "safe"}',
                                        'Conversion finished.']
    assert not [p.name for p in tmp_path.iterdir() if '.tmp' in p.name]   # written through a temp file + rename
    direct = load_pickle(tmp_path / 'tf.pkl', force_fp16=True)
    converted = load_pickle(tmp_path / 'out.pkl')
    for key in ('G', 'D', 'G_ema'):
        assert converted[key].init_kwargs == direct[key].init_kwargs
        ref = direct[key].state_dict()
        assert all(torch.equal(t, ref[name]) for name, t in converted[key].state_dict().items())
    weights = 'safetensors' if importlib.util.find_spec('safetensors') else 'pt'  # export prefers safetensors
    assert sorted(p.name for p in (tmp_path / 'safe').iterdir()) == sorted(
        ['snapshot.json'] + [f'{k}.{ext}' for k in ('G', 'D', 'G_ema') for ext in ('json', weights)])


def test_cli_reports_bad_source(tmp_path):
    (tmp_path / 'junk.pkl').write_bytes(b'not a pickle at all')
    result = CliRunner().invoke(legacy.convert_network_pickle,
                                [f'--source={tmp_path / "junk.pkl"}', f'--dest={tmp_path / "o.pkl"}'])
    assert result.exit_code == 2
    assert 'junk.pkl' in result.output and 'Traceback' not in result.output
    assert not (tmp_path / 'o.pkl').exists()
    result = CliRunner().invoke(legacy.convert_network_pickle, [f'--source={tmp_path / "junk.pkl"}'])
    assert result.exit_code == 2 and '--safe-export' in result.output
