"""Tests for stylegan_plus.networks.stylegan2 (official StyleGAN2-ADA network compatibility).

Covers: state_dict keys/shapes/order against every listing of official-state-keys.txt and the
stated parameter counts; random-init draw order; forward passes of small nets (noise modes,
truncation, conditioning, D architectures, fp16 vs fp32, fused vs split modconv, Freeze-D,
minibatch std); the return_features extension; pickle round trip and the embedded source's imports.
"""

import ast
import copy
import os
import pathlib
import pickle
import re

import numpy as np
import pytest
import torch

from torch_utils import persistence
from stylegan_plus.networks import stylegan2 as nets
import tests

#----------------------------------------------------------------------------
# Official state-dict listings.

_KEYS_CANDIDATES = [
    os.environ.get('STYLEGAN_OFFICIAL_STATE_KEYS', ''),
    tests.DATA / 'official-state-keys.txt',
    pathlib.Path('/work/shared/official-state-keys.txt'),
]


def _keys_file():
    for path in _KEYS_CANDIDATES:
        if path and pathlib.Path(path).is_file():
            return pathlib.Path(path)
    pytest.skip('official-state-keys.txt not found (set STYLEGAN_OFFICIAL_STATE_KEYS)')


def _parse_listings(text):
    """-> {letter: dict(header=str, rows=[(kind, key, ptype_or_None, shape_or_(old, new))])}."""
    sections, cur = {}, None
    for line in text.splitlines():
        m = re.match(r'^## ([A-Z])\. (.*)$', line)
        if m:
            cur = sections.setdefault(m.group(1), dict(header=m.group(2), rows=[]))
            continue
        if line.startswith('##') and cur is not None:
            cur['header'] += ' ' + line.lstrip('# ')
            continue
        if cur is None or not line.strip() or line.startswith('#'):
            continue
        cols = line.split('\t')
        if cols[0] == '~':
            old, new = cols[2].split(' -> ')
            cur['rows'].append(('~', cols[1], None, (_shape(old), _shape(new))))
        else:
            cur['rows'].append((cols[0], cols[1], cols[2], _shape(cols[3])))
    return sections


def _shape(text):
    return tuple(int(v) for v in re.findall(r'\d+', text))


_CIFAR_G = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=32, img_channels=3,
                mapping_kwargs=dict(num_layers=2),
                synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
_CIFAR_D = dict(c_dim=0, img_resolution=32, img_channels=3, architecture='orig', channel_base=32768, channel_max=512,
                num_fp16_res=4, conv_clamp=256, block_kwargs={}, mapping_kwargs={},
                epilogue_kwargs=dict(mbstd_group_size=32))


def _with(base, **changes):
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# Per section: (class, kwargs, base section or None, header fragments that must describe the kwargs,
# placement of added keys as (prefix, anchor key, 'before'|'after')). Placement follows the module
# registration order documented in COMPAT §4 (embed before fc0; D mapping between blocks and b4; skip last).
_SECTIONS = {
    'A': (nets.Generator, _CIFAR_G, None,
          ['z_dim=512', 'c_dim=0', 'w_dim=512', 'img_resolution=32', 'img_channels=3', 'num_layers: 2',
           'channel_base: 32768', 'channel_max: 512', 'num_fp16_res: 4', 'conv_clamp: 256'], []),
    'B': (nets.Discriminator, _CIFAR_D, None,
          ['c_dim=0', 'img_resolution=32', "architecture='orig'", 'channel_base=32768', 'num_fp16_res=4',
           'conv_clamp=256', 'mbstd_group_size: 32'], []),
    'C': (nets.Generator, _with(_CIFAR_G, c_dim=10), 'A', ['c_dim=10'],
          [('mapping.embed.', 'mapping.fc0.weight', 'before')]),
    'D': (nets.Discriminator, _with(_CIFAR_D, c_dim=10), 'B', ['c_dim=10'],
          [('mapping.', 'b4.conv.weight', 'before')]),
    'E': (nets.Generator, _with(_CIFAR_G, mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=16384)),
          'A', ['32 px', 'channel_base=16384', 'map=8'], [('mapping.fc', 'mapping.fc1.bias', 'after')]),
    'F': (nets.Discriminator, _with(_CIFAR_D, architecture='resnet', channel_base=16384,
                                    epilogue_kwargs=dict(mbstd_group_size=8)),
          'B', ['32 px', "architecture='resnet'", 'mbstd 8'],
          [(f'b{r}.skip.', f'b{r}.conv1.resample_filter', 'after') for r in (32, 16, 8)]),
}


def _expected_listing(sections, letter):
    """Full expected [(key, ptype, shape)] in state_dict order for a section (diffs applied)."""
    _, _, base, _, placements = _SECTIONS[letter]
    rows = sections[letter]['rows']
    if base is None:
        return [(key, ptype, shape) for _, key, ptype, shape in rows]
    listing = _expected_listing(sections, base)
    by_key = {key: i for i, (key, _, _) in enumerate(listing)}
    for kind, key, ptype, shape in rows:
        if kind == '~':
            i = by_key[key]
            assert listing[i][2] == shape[0], f'{letter}: base shape of {key} differs from the diff'
            listing[i] = (key, listing[i][1], shape[1])
        elif kind == '-':
            listing = [row for row in listing if row[0] != key]
    for prefix, anchor, where in placements:
        added = [(key, ptype, shape) for kind, key, ptype, shape in rows if kind == '+' and key.startswith(prefix)]
        assert added, f'{letter}: no added keys with prefix {prefix}'
        i = [row[0] for row in listing].index(anchor) + (1 if where == 'after' else 0)
        listing[i:i] = added
    num_added = sum(1 for row in rows if row[0] == '+')
    assert len(listing) == len(_expected_listing(sections, base)) + num_added - sum(1 for r in rows if r[0] == '-')
    return listing


@pytest.fixture(scope='module')
def listings():
    return _parse_listings(_keys_file().read_text())


@pytest.mark.parametrize('letter', sorted(_SECTIONS))
def test_state_dict_matches_official_listing(listings, letter):
    assert set(listings) == set(_SECTIONS), 'official-state-keys.txt gained or lost a section'
    cls, kwargs, _, fragments, _ = _SECTIONS[letter]
    header = listings[letter]['header']
    for fragment in fragments:
        assert fragment in header, f'section {letter} header no longer mentions {fragment!r}: {header}'
    torch.manual_seed(0)
    net = cls(**copy.deepcopy(kwargs))
    expected = _expected_listing(listings, letter)
    params = dict(net.named_parameters())
    buffers = dict(net.named_buffers())
    got = [(key, 'param' if key in params else 'buffer' if key in buffers else '?', tuple(value.shape))
           for key, value in net.state_dict().items()]
    assert got == [(k, p, tuple(s)) for k, p, s in expected]
    assert all(value.dtype == torch.float32 for value in net.state_dict().values())

    num_params = sum(p.numel() for p in net.parameters())
    assert num_params == sum(int(np.prod(s)) for _, p, s in expected if p == 'param')
    stated = re.search(r'(\d+) entries, (\d+) parameters', header)
    if stated:
        assert len(expected) == int(stated.group(1))
        assert num_params == int(stated.group(2))
    stated_ws = re.search(r'num_ws=(\d+)', header)
    if stated_ws:
        assert net.num_ws == net.mapping.num_ws == net.synthesis.num_ws == int(stated_ws.group(1))

#----------------------------------------------------------------------------
# Small nets for forward tests.

def _small_g(res=32, c_dim=0, **synthesis_kwargs):
    kw = dict(channel_base=256, channel_max=32)
    kw.update(synthesis_kwargs)
    return nets.Generator(z_dim=16, c_dim=c_dim, w_dim=24, img_resolution=res, img_channels=3,
                          mapping_kwargs=dict(num_layers=2), synthesis_kwargs=kw)


def _small_d(res=32, c_dim=0, **kwargs):
    kw = dict(channel_base=256, channel_max=32, epilogue_kwargs=dict(mbstd_group_size=2))
    kw.update(kwargs)
    return nets.Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, **kw)


def _randomize_noise_strength(G, value=0.5):
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith('noise_strength'):
                param.fill_(value)


def _inputs(G, n=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    c = torch.nn.functional.one_hot(torch.arange(n) % max(G.c_dim, 1), max(G.c_dim, 1)).float()[:, :G.c_dim]
    return z, c


@pytest.fixture(scope='module')
def small_g():
    torch.manual_seed(123)
    G = _small_g().eval()
    _randomize_noise_strength(G)
    return G


def test_num_ws_and_channels():
    assert _small_g(res=32).num_ws == 8
    assert _small_g(res=64).num_ws == 10
    G = _small_g(res=64)
    assert G.synthesis.block_resolutions == [4, 8, 16, 32, 64]
    assert G.synthesis.b64.conv1.weight.shape[0] == 256 // 64
    assert G.synthesis.b4.const.shape == (32, 4, 4)
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (16, 0, 24, 64, 3)


@pytest.mark.parametrize('res,c_dim', [(32, 0), (32, 5), (64, 0), (64, 3)])
def test_generator_forward_shapes(res, c_dim):
    torch.manual_seed(0)
    G = _small_g(res=res, c_dim=c_dim).eval()
    z, c = _inputs(G)
    with torch.no_grad():
        img = G(z, c, noise_mode='const')
    assert img.shape == (2, 3, res, res) and img.dtype == torch.float32
    assert torch.isfinite(img).all()


def test_noise_modes(small_g):
    z, c = _inputs(small_g)
    with torch.no_grad():
        const = [small_g(z, c, noise_mode='const') for _ in range(2)]
        none = small_g(z, c, noise_mode='none')
        rand = [small_g(z, c, noise_mode='random') for _ in range(2)]
    assert torch.equal(const[0], const[1])
    assert not torch.allclose(const[0], none)
    assert not torch.allclose(rand[0], rand[1])
    with pytest.raises(ValueError, match='noise_mode'):
        small_g(z, c, noise_mode='fresh')


def test_noise_none_ignores_noise_strength():
    torch.manual_seed(5)
    G = _small_g().eval()
    z, c = _inputs(G)
    with torch.no_grad():
        before = G(z, c, noise_mode='none')
        _randomize_noise_strength(G, 3.0)
        after = G(z, c, noise_mode='none')
        # Zero strength makes every mode noiseless.
        _randomize_noise_strength(G, 0.0)
        zero_rand = G(z, c, noise_mode='random')
    assert torch.equal(before, after)
    assert torch.allclose(zero_rand, before, atol=1e-6)


def test_truncation(small_g):
    mapping = small_g.mapping
    z, c = _inputs(small_g, n=3)
    with torch.no_grad():
        mapping.w_avg.copy_(torch.linspace(-1, 1, mapping.w_dim))
        ws = mapping(z, c)
        assert ws.shape == (3, small_g.num_ws, small_g.w_dim)
        assert torch.allclose(mapping(z, c, truncation_psi=0), mapping.w_avg.expand_as(ws))
        half = mapping(z, c, truncation_psi=0.5)
        assert torch.allclose(half, mapping.w_avg + 0.5 * (ws - mapping.w_avg), atol=1e-6)
        cut = mapping(z, c, truncation_psi=0, truncation_cutoff=3)
        assert torch.allclose(cut[:, :3], mapping.w_avg.expand(3, 3, -1))
        assert torch.equal(cut[:, 3:], ws[:, 3:])
        img_trunc = small_g(z, c, truncation_psi=0, noise_mode='const')
    assert torch.allclose(img_trunc[0], img_trunc[1], atol=1e-5)  # all samples collapse to w_avg


def test_w_avg_ema():
    torch.manual_seed(0)
    mapping = nets.MappingNetwork(z_dim=8, c_dim=0, w_dim=8, num_ws=3, num_layers=2)
    z = torch.randn([4, 8])
    mapping.train()
    w = mapping(z, None)[:, 0]
    assert torch.allclose(mapping.w_avg, w.detach().mean(0) * (1 - 0.995), atol=1e-7)
    snapshot = mapping.w_avg.clone()
    mapping(z, None, skip_w_avg_update=True)
    assert torch.equal(mapping.w_avg, snapshot)
    mapping.eval()
    mapping(z, None)
    assert torch.equal(mapping.w_avg, snapshot)


def test_fused_and_split_modconv_agree(small_g):
    z, c = _inputs(small_g)
    ws = small_g.mapping(z, c)
    with torch.no_grad():
        fused = small_g.synthesis(ws, noise_mode='const', fused_modconv=True)
        split = small_g.synthesis(ws, noise_mode='const', fused_modconv=False)
    assert torch.allclose(fused, split, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('demodulate', [True, False])
@pytest.mark.parametrize('fused', [True, False])
def test_modulated_conv2d_matches_per_sample_conv(demodulate, fused):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn([2, 4, 6, 6], generator=gen)
    weight = torch.randn([5, 4, 3, 3], generator=gen)
    styles = torch.randn([2, 4], generator=gen)
    noise = torch.randn([2, 1, 6, 6], generator=gen)
    out = nets.modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=fused)
    for i in range(2):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / w.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        ref = torch.nn.functional.conv2d(x[i:i + 1], w, padding=1) + noise[i:i + 1]
        assert torch.allclose(out[i:i + 1], ref, atol=1e-4)


def test_normalize_2nd_moment():
    x = torch.randn([3, 7]) * 5
    y = nets.normalize_2nd_moment(x)
    assert torch.allclose(y.square().mean(dim=1), torch.ones(3), atol=1e-5)


def _copy_weights(src, dst):
    dst.load_state_dict(src.state_dict())
    return dst


def test_generator_fp16_close_to_fp32():
    torch.manual_seed(7)
    G16 = _small_g(num_fp16_res=2, conv_clamp=256).eval()
    _randomize_noise_strength(G16)
    G32 = _copy_weights(G16, _small_g(num_fp16_res=0, conv_clamp=256).eval())
    assert G16.synthesis.b32.use_fp16 and G16.synthesis.b16.use_fp16 and not G16.synthesis.b8.use_fp16
    dtypes = []
    G16.synthesis.b32.conv1.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    z, c = _inputs(G16)
    with torch.no_grad():
        img16 = G16(z, c, noise_mode='const')
        img32 = G32(z, c, noise_mode='const')
        forced = G16(z, c, noise_mode='const', force_fp32=True)
    assert dtypes[0] == torch.float16 and img16.dtype == torch.float32
    assert (img16 - img32).abs().max() < 2e-2 * max(img32.std().item(), 1.0)
    assert torch.allclose(forced, img32, atol=1e-5)


def test_fp16_channels_last_runs():
    torch.manual_seed(8)
    G = _small_g(num_fp16_res=1, conv_clamp=256, fp16_channels_last=True).eval()
    assert G.synthesis.b32.channels_last
    z, c = _inputs(G, n=1)
    with torch.no_grad():
        img = G(z, c, noise_mode='const')
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()


def test_generator_resnet_and_orig_architectures():
    for arch in ('orig', 'resnet'):
        torch.manual_seed(0)
        G = _small_g(architecture=arch).eval()
        assert hasattr(G.synthesis.b8, 'skip') == (arch == 'resnet')
        assert hasattr(G.synthesis.b8, 'torgb') == (arch == 'skip')
        assert G.num_ws == 8
        with torch.no_grad():
            img = G(*_inputs(G), noise_mode='const')
        assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    with pytest.raises(ValueError, match='architecture'):
        _small_g(architecture='dense')


def test_gradient_reaches_z():
    torch.manual_seed(2)
    G = _small_g(c_dim=4).train()
    z, c = _inputs(G)
    z.requires_grad_(True)
    G(z, c).square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert G.synthesis.b32.conv1.weight.grad.abs().sum() > 0

#----------------------------------------------------------------------------
# Discriminator.

@pytest.mark.parametrize('arch', ['orig', 'skip', 'resnet'])
@pytest.mark.parametrize('res,c_dim', [(32, 0), (64, 4)])
def test_discriminator_forward_and_features(arch, res, c_dim):
    torch.manual_seed(1)
    D = _small_d(res=res, c_dim=c_dim, architecture=arch).eval()
    img = torch.randn([2, 3, res, res])
    c = torch.eye(max(c_dim, 1))[:2, :c_dim]
    captured = []
    D.b4.fc.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        logits = D(img, c)
        logits2, features = D(img, c, return_features=True)
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
    assert torch.equal(logits, logits2)
    assert features.shape == (2, D.b4.in_channels) == (2, 32)
    assert torch.equal(features, captured[-1])
    assert hasattr(D.b4, 'fromrgb') == (arch == 'skip')
    assert (D.b4.cmap_dim, D.b4.out.weight.shape[0]) == ((32, 32) if c_dim else (0, 1))


def test_discriminator_gradient_and_fp16():
    torch.manual_seed(4)
    D16 = _small_d(num_fp16_res=2, conv_clamp=256, c_dim=3).eval()
    D32 = _copy_weights(D16, _small_d(num_fp16_res=0, conv_clamp=256, c_dim=3).eval())
    assert D16.b32.use_fp16 and not D16.b8.use_fp16
    img = torch.randn([2, 3, 32, 32])
    c = torch.eye(3)[:2]
    with torch.no_grad():
        out16, out32 = D16(img, c), D32(img, c)
        forced = D16(img, c, force_fp32=True)
    assert (out16 - out32).abs().max() < 2e-2 * max(out32.abs().max().item(), 1.0)
    assert torch.allclose(forced, out32, atol=1e-5)
    img.requires_grad_(True)
    D32.train()(img, c).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_freeze_layers_turns_weights_into_buffers():
    torch.manual_seed(0)
    D = _small_d(block_kwargs=dict(freeze_layers=5))
    ref = _small_d()
    # Layer indices (resnet, 32 px): b32 fromrgb 0, conv0 1, conv1 2, skip 3; b16 conv0 4, conv1 5, ...
    params, buffers = dict(D.named_parameters()), dict(D.named_buffers())
    for name in ['b32.fromrgb.weight', 'b32.fromrgb.bias', 'b32.conv1.weight', 'b32.skip.weight', 'b16.conv0.bias']:
        assert name in buffers and name not in params
    for name in ['b16.conv1.weight', 'b16.skip.weight', 'b8.conv0.weight', 'b4.fc.weight']:
        assert name in params
    assert list(D.state_dict().keys())[:4] == ['b32.resample_filter', 'b32.fromrgb.resample_filter',
                                               'b32.fromrgb.weight', 'b32.fromrgb.bias']
    assert sorted(D.state_dict()) == sorted(ref.state_dict())
    assert [b.num_layers for b in (D.b32, D.b16, D.b8)] == [4, 3, 3]


def test_minibatch_std_layer():
    x = torch.randn([4, 6, 2, 2])
    y = nets.MinibatchStdLayer(group_size=2, num_channels=2)(x)
    assert y.shape == (4, 8, 2, 2)
    assert torch.equal(y[:, :6], x)
    # Sample i is grouped with sample i + 2 (group index = i % (N // G)).
    for i in range(2):
        pair = x[[i, i + 2]].reshape(2, 2, 3, 2, 2)
        std = (pair.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])
        assert torch.allclose(y[i, 6:, 0, 0], std, atol=1e-6)
        assert torch.allclose(y[i + 2, 6:, 0, 0], std, atol=1e-6)
    whole = nets.MinibatchStdLayer(group_size=None)(x)
    assert torch.allclose(whole[:, 6], whole[0, 6].expand(4, 2, 2))

#----------------------------------------------------------------------------
# Random-init draw order.

def _g_draws(ch, w_dim, z_dim, c_dim, map_layers, res_list, architecture, img_channels=3):
    expected = {}
    for res in res_list:
        cin = ch[res // 2] if res > 4 else 0
        pre = f'synthesis.b{res}.'
        if res == 4:
            expected[pre + 'const'] = torch.randn([ch[res], res, res])
        layers = ([('conv0', cin)] if res > 4 else []) + [('conv1', ch[res])]
        for name, lin in layers:
            expected[pre + name + '.affine.weight'] = torch.randn([lin, w_dim])
            expected[pre + name + '.weight'] = torch.randn([ch[res], lin, 3, 3])
            expected[pre + name + '.noise_const'] = torch.randn([res, res])
        if res == res_list[-1] or architecture == 'skip':
            expected[pre + 'torgb.affine.weight'] = torch.randn([ch[res], w_dim])
            expected[pre + 'torgb.weight'] = torch.randn([img_channels, ch[res], 1, 1])
        if res > 4 and architecture == 'resnet':
            expected[pre + 'skip.weight'] = torch.randn([ch[res], cin, 1, 1])
    if c_dim:
        expected['mapping.embed.weight'] = torch.randn([w_dim, c_dim])
    widths = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * map_layers
    for i in range(map_layers):
        expected[f'mapping.fc{i}.weight'] = torch.randn([widths[i + 1], widths[i]]) / 0.01
    return expected


@pytest.mark.parametrize('architecture,c_dim', [('skip', 0), ('resnet', 3)])
def test_generator_draw_order(architecture, c_dim):
    ch = {4: 32, 8: 32, 16: 16, 32: 8}
    torch.manual_seed(11)
    G = _small_g(c_dim=c_dim, architecture=architecture)
    torch.manual_seed(11)
    expected = _g_draws(ch, 24, 16, c_dim, 2, [4, 8, 16, 32], architecture)
    state = G.state_dict()
    assert set(expected) == {k for k in state if k.endswith(('weight', 'const'))}
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    for key, value in state.items():
        if key.endswith('affine.bias'):
            assert torch.equal(value, torch.ones_like(value)), key
        elif key.endswith(('.bias', 'noise_strength', 'w_avg')):
            assert not value.any(), key
    torch.manual_seed(11)
    again = _small_g(c_dim=c_dim, architecture=architecture).state_dict()
    assert all(torch.equal(again[k], v) for k, v in state.items())


def test_discriminator_draw_order():
    ch = {32: 8, 16: 16, 8: 32, 4: 32}
    torch.manual_seed(21)
    D = _small_d(c_dim=3, architecture='skip')
    torch.manual_seed(21)
    expected = {}
    for res in (32, 16, 8):
        expected[f'b{res}.fromrgb.weight'] = torch.randn([ch[res], 3, 1, 1])
        expected[f'b{res}.conv0.weight'] = torch.randn([ch[res], ch[res], 3, 3])
        expected[f'b{res}.conv1.weight'] = torch.randn([ch[res // 2], ch[res], 3, 3])
    expected['mapping.embed.weight'] = torch.randn([32, 3])
    for i in range(8):
        expected[f'mapping.fc{i}.weight'] = torch.randn([32, 32]) / 0.01
    expected['b4.fromrgb.weight'] = torch.randn([32, 3, 1, 1])
    expected['b4.conv.weight'] = torch.randn([32, 33, 3, 3])
    expected['b4.fc.weight'] = torch.randn([32, 32 * 16])
    expected['b4.out.weight'] = torch.randn([32, 32])
    state = D.state_dict()
    assert set(expected) == {k for k in state if k.endswith('weight')}
    for key, value in expected.items():
        assert torch.equal(state[key], value), key

#----------------------------------------------------------------------------
# Pickles, embedded source and the training.networks shim.

# conv2d_gradfix (an official module) is read for whether its ops make NHWC double backward cheap.
_ALLOWED_IMPORTS = {'numpy', 'torch', 'torch_utils.misc', 'torch_utils.persistence', 'torch_utils.ops.conv2d_resample',
                    'torch_utils.ops.upfirdn2d', 'torch_utils.ops.bias_act', 'torch_utils.ops.fma',
                    'torch_utils.ops.conv2d_gradfix'}


def _imported_modules(source):
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, 'relative import in persistent module source'
            # `from torch_utils.ops import fma` names the submodule torch_utils.ops.fma.
            found.update(f'{node.module}.{alias.name}' for alias in node.names)
    return found


def test_pickle_round_trip(small_g):
    D = _small_d(c_dim=0).eval()
    G2 = pickle.loads(pickle.dumps(small_g))
    D2 = pickle.loads(pickle.dumps(D))
    assert type(G2).__name__ == 'Generator' and persistence.is_persistent(G2)
    z, c = _inputs(small_g)
    img = torch.randn([2, 3, 32, 32])
    with torch.no_grad():
        assert torch.equal(G2(z, c, noise_mode='const'), small_g(z, c, noise_mode='const'))
        assert torch.equal(D2(img, c), D(img, c))
        assert torch.equal(D2(img, c, return_features=True)[1], D(img, c, return_features=True)[1])
    assert G2.init_kwargs == small_g.init_kwargs
    # Pickled state: torch's entries, then the class's own attributes, then the init arguments.
    assert list(G2.__dict__)[-8:] == ['z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'num_ws',
                                      '_init_args', '_init_kwargs']


def test_embedded_source_imports_only_official_modules(small_g):
    meta = small_g.__reduce__()[1][0]
    assert meta['type'] == 'class' and meta['class_name'] == 'Generator'
    src = meta['module_src']
    assert _imported_modules(src) == _ALLOWED_IMPORTS
    # Make the loader execute the embedded source in a fresh module, as happens inside an official
    # checkout (or after this file changed), and check that it rebuilds the same network.
    copy_src = src + '\n# reloaded copy\n'

    def hook(meta):
        if meta['module_src'] == src:
            meta['module_src'] = copy_src
        return meta

    persistence.import_hook(hook)
    try:
        clone = pickle.loads(pickle.dumps(small_g))
    finally:
        persistence._import_hooks.remove(hook)
    assert type(clone).__module__ == type(small_g).__module__
    assert type(clone) is not type(small_g) and type(clone.mapping.fc0) is not type(small_g.mapping.fc0)
    assert type(clone)._orig_module_src == copy_src
    z, c = _inputs(small_g)
    with torch.no_grad():
        assert torch.equal(clone(z, c, noise_mode='const'), small_g(z, c, noise_mode='const'))


def test_training_networks_shim():
    import training.networks as shim
    for name in nets.__all__ + ['normalize_2nd_moment', 'modulated_conv2d']:
        assert getattr(shim, name) is getattr(nets, name)
    assert shim.Generator.__module__ == 'torch_utils.persistence'
