"""Golden tests: the StyleGAN2 networks reproduce the implementation they replaced (issue 14).

Two committed files, both written by the pre-rewrite code (git HEAD before issue 14):

* `data/stylegan2_golden.npz`: for every config in `CONFIGS`, the state_dict listing (names, kinds,
  shapes, in order), a SHA-256 prefix of every tensor right after construction with a fixed seed,
  outputs for fixed inputs in several modes and gradient statistics of one backward pass.
* `data/stylegan2_baseline_snapshot.pkl.gz`: a snapshot dict (G, D, G_ema) pickled by that code,
  its module source embedded as in every user snapshot (gzip keeps the blob small and opaque).

Regenerate both (only when the reference itself must change) from a checkout of the reference tree:

    python -m tests.stylegan_plus.networks.test_networks_stylegan2_golden --tree=/path/to/reference/checkout --write

The recorded numbers depend on the CPU only through float rounding, hence the tolerances below.
The side-by-side test also runs the reference classes carried by the snapshot on this machine, so
a failure there cannot be blamed on a different CPU.
"""

import argparse
import copy
import gzip
import hashlib
import os
import pathlib
import pickle
import sys

import numpy as np
import pytest
import torch

from tests import DATA
GOLDEN = DATA / 'stylegan2_golden.npz'
SNAPSHOT = DATA / 'stylegan2_baseline_snapshot.pkl.gz'

FP32_ATOL = 1e-5        # fp32 outputs: the bound.
FP16_ATOL = 5e-3        # fp16 layers: a last-bit change upstream can flip a half-precision rounding (~5e-4).
GRAD_RTOL = 1e-4
# fp16 gradients against the file written on another CPU: half-precision rounding differs between
# CPUs, and a per-parameter sum that cancels (noise strengths) moves by up to 2x (AMD EPYC against
# the recording machine), while the network's total squared gradient moves by < 4e-4. Against the
# file those configs check the total and the median per-parameter change; the side-by-side test
# (same machine, reference classes) keeps the per-parameter bound GRAD_RTOL for them.
FP16_GRAD_TOTAL_RTOL = 1e-2

_SMALL = dict(channel_base=128, channel_max=16)

# name -> (kind, seed, constructor kwargs). Small enough to run in a second, varied enough to
# touch every branch: architectures, labels, fp16 (also channels-last), noise, Freeze-D, mbstd.
CONFIGS = {
    'g_skip': ('G', 1, dict(z_dim=12, c_dim=0, w_dim=16, img_resolution=8, img_channels=3,
                            mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(**_SMALL))),
    'g_resnet_cond': ('G', 2, dict(z_dim=8, c_dim=3, w_dim=16, img_resolution=8, img_channels=3,
                                   mapping_kwargs=dict(num_layers=3, embed_features=6, layer_features=10),
                                   synthesis_kwargs=dict(architecture='resnet', **_SMALL))),
    'g_orig_fp16': ('G', 3, dict(z_dim=16, c_dim=2, w_dim=16, img_resolution=16, img_channels=1,
                                 mapping_kwargs=dict(num_layers=1, lr_multiplier=0.1),
                                 synthesis_kwargs=dict(architecture='orig', num_fp16_res=2, conv_clamp=8, **_SMALL))),
    'g_skip_fp16_nhwc': ('G', 4, dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                                      mapping_kwargs=dict(num_layers=2),
                                      synthesis_kwargs=dict(num_fp16_res=1, conv_clamp=256, fp16_channels_last=True,
                                                            use_noise=True, **_SMALL))),
    'd_resnet': ('D', 5, dict(c_dim=0, img_resolution=8, img_channels=3, **_SMALL,
                              epilogue_kwargs=dict(mbstd_group_size=2))),
    'd_skip_cond': ('D', 6, dict(c_dim=4, img_resolution=16, img_channels=3, architecture='skip', **_SMALL,
                                 mapping_kwargs=dict(num_layers=2), epilogue_kwargs=dict(mbstd_group_size=None))),
    'd_orig_fp16_frozen': ('D', 7, dict(c_dim=2, img_resolution=16, img_channels=1, architecture='orig', cmap_dim=5,
                                        num_fp16_res=2, conv_clamp=256, **_SMALL,
                                        block_kwargs=dict(freeze_layers=2),
                                        epilogue_kwargs=dict(mbstd_group_size=2, mbstd_num_channels=2))),
}
# The snapshot's nets: tiny, as only their classes and a weight copy are exercised.
SNAPSHOT_G = dict(z_dim=8, c_dim=2, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(architecture='resnet', channel_base=32, channel_max=8))
SNAPSHOT_D = dict(c_dim=2, img_resolution=8, img_channels=3, architecture='skip', channel_base=32, channel_max=8,
                  mapping_kwargs=dict(num_layers=1), epilogue_kwargs=dict(mbstd_group_size=2))
FP16_CONFIGS = {name for name, (_, _, kw) in CONFIGS.items()
                if kw.get('num_fp16_res') or kw.get('synthesis_kwargs', {}).get('num_fp16_res')}
BATCH = 2

#----------------------------------------------------------------------------
# Recording (shared by the writer and the tests).

def build(nets, name):
    """Construct config `name` from module `nets` with the config's torch seed."""
    kind, seed, kwargs = CONFIGS[name]
    torch.manual_seed(seed)
    cls = nets.Generator if kind == 'G' else nets.Discriminator
    return cls(**copy.deepcopy(kwargs))


def listing(net):
    """[(name, 'param'|'buffer', shape string, sha256 prefix of the float32 bytes)] in state_dict order."""
    params = dict(net.named_parameters())
    rows = []
    for key, value in net.state_dict().items():
        data = value.detach().to(torch.float32).contiguous().numpy().tobytes()
        shape = ','.join(str(s) for s in value.shape)
        rows.append((key, 'param' if key in params else 'buffer', shape, hashlib.sha256(data).hexdigest()[:16]))
    return rows


def perturb(net, seed=99):
    """Give every float tensor (biases, noise strengths, w_avg too) non-trivial values, in state_dict order."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in net.state_dict().values():
            if value.dtype.is_floating_point and value.numel():
                value.add_(0.05 * torch.randn(value.shape, generator=gen).to(value.dtype))


def _inputs(net, kind, seed=42):
    gen = torch.Generator().manual_seed(seed)
    first = torch.randn([BATCH, net.z_dim] if kind == 'G' else
                        [BATCH, net.img_channels, net.img_resolution, net.img_resolution], generator=gen)
    c = torch.randn([BATCH, net.c_dim], generator=gen)
    return first, c


def _grad_stats(net, first, loss):
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    stats = [[float(g.double().sum()), float(g.double().square().sum())] for g in grads]
    return np.array(stats, dtype=np.float64), first.grad.numpy().copy()


def _generator_outputs(G, z, c):
    out = {}
    with torch.no_grad():
        G.eval()
        out['const'] = G(z, c, noise_mode='const')
        out['none_trunc'] = G(z, c, truncation_psi=0.6, truncation_cutoff=3, noise_mode='none')
        out['trunc_all'] = G(z, c, truncation_psi=0.3, noise_mode='const', force_fp32=True)
        torch.manual_seed(5)
        out['random'] = G(z, c, noise_mode='random')
        ws = G.mapping(z, c)
        out['ws'] = ws
        out['split'] = G.synthesis(ws, noise_mode='const', fused_modconv=False)
        out['single'] = G(z[:1], c[:1], noise_mode='const')  # batch 1 takes the grouped conv in fp16 too
    G.train()
    z = z.clone().requires_grad_(True)
    torch.manual_seed(6)
    img = G(z, c)
    out['w_avg_after_train'] = G.mapping.w_avg.clone()
    weights = torch.linspace(-1, 1, img.numel()).reshape(img.shape)
    stats, zgrad = _grad_stats(G, z, (img * weights).sum() + img.square().mean())
    out['train_img'] = img.detach()
    out = {key: value.detach().numpy().copy() for key, value in out.items()}
    out['grad_stats'], out['grad_input'] = stats, zgrad
    return out


def _discriminator_outputs(D, img, c):
    out = {}
    with torch.no_grad():
        D.eval()
        out['logits'] = D(img, c)
        out['fp32'] = D(img, c, force_fp32=True)
    D.train()
    img = img.clone().requires_grad_(True)
    logits = D(img, c)
    out['train_logits'] = logits.detach()
    out = {key: value.numpy().copy() for key, value in out.items()}
    out['grad_stats'], out['grad_input'] = _grad_stats(D, img, torch.nn.functional.softplus(logits).sum())
    return out


def record(nets, name):
    """Everything the golden file holds for config `name`, computed with module `nets`."""
    kind = CONFIGS[name][0]
    net = build(nets, name)
    rows = listing(net)
    perturb(net)
    first, c = _inputs(net, kind)
    outputs = _generator_outputs(net, first, c) if kind == 'G' else _discriminator_outputs(net, first, c)
    return rows, outputs


def write_golden(nets, path):
    arrays = {}
    for name in CONFIGS:
        rows, outputs = record(nets, name)
        for col, values in zip(('names', 'kinds', 'shapes', 'sha256'), zip(*rows)):
            arrays[f'{name}.{col}'] = np.array(values)
        for key, value in outputs.items():
            arrays[f'{name}.out.{key}'] = value
    tmp = f'{path}.tmp.npz'
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def write_snapshot(nets, path):
    """A training-snapshot-like dict pickled by `nets` (classes carry their module source)."""
    torch.manual_seed(8)
    G = nets.Generator(**SNAPSHOT_G)
    D = nets.Discriminator(**SNAPSHOT_D)
    perturb(G)
    perturb(D, seed=7)
    data = dict(G=G, D=D, G_ema=copy.deepcopy(G).eval(), training_set_kwargs=None, augment_pipe=None)
    tmp = f'{path}.tmp'
    with gzip.GzipFile(tmp, 'wb', mtime=0) as f:
        pickle.dump(data, f)
    os.replace(tmp, path)

#----------------------------------------------------------------------------
# Tests.

@pytest.fixture(scope='module')
def golden():
    if not GOLDEN.is_file():
        pytest.fail(f'{GOLDEN} is missing: regenerate it as the module docstring says')
    with np.load(GOLDEN) as f:
        return {key: f[key] for key in f.files}


@pytest.fixture(scope='module')
def nets():
    from stylegan_plus.networks import stylegan2
    return stylegan2


@pytest.fixture(scope='module')
def snapshot():
    import legacy
    with gzip.open(SNAPSHOT, 'rb') as f:
        return legacy.load_network_pkl(f)


def _assert_close(name, key, value, want, other_machine=False):
    """Outputs within the config's absolute tolerance (relative for gradients, which grow large).

    other_machine: `want` was recorded on another CPU (the golden file), see FP16_GRAD_TOTAL_RTOL.
    """
    assert value.shape == want.shape, key
    if key == 'grad_stats' and other_machine and name in FP16_CONFIGS:
        squares, want_squares = value[:, 1], want[:, 1]
        assert squares.sum() == pytest.approx(want_squares.sum(), rel=FP16_GRAD_TOTAL_RTOL), key
        assert np.median(np.abs(squares - want_squares) / want_squares) <= FP16_GRAD_TOTAL_RTOL, key
        return
    if key == 'grad_stats':
        np.testing.assert_allclose(value, want, rtol=GRAD_RTOL, atol=1e-6, err_msg=key)
        return
    atol = FP16_ATOL if name in FP16_CONFIGS else FP32_ATOL
    if key == 'grad_input':
        atol *= max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(value, want, rtol=0, atol=atol, err_msg=f'{name}: {key}')


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_state_listing_and_init_match_golden(golden, nets, name):
    rows = listing(build(nets, name))
    got = dict(zip(('names', 'kinds', 'shapes', 'sha256'), [list(col) for col in zip(*rows)]))
    for col in ('names', 'kinds', 'shapes'):
        assert got[col] == list(golden[f'{name}.{col}']), col
    mismatched = [key for key, want, have in zip(got['names'], golden[f'{name}.sha256'], got['sha256']) if want != have]
    assert not mismatched, f'init differs from the reference for {mismatched}'


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_outputs_match_golden(golden, nets, name):
    _, outputs = record(nets, name)
    prefix = f'{name}.out.'
    assert sorted(outputs) == sorted(key[len(prefix):] for key in golden if key.startswith(prefix))
    for key, value in outputs.items():
        _assert_close(name, key, value, golden[prefix + key], other_machine=True)


def test_baseline_snapshot_resumes_into_current_classes(snapshot, nets):
    from torch_utils import misc
    for key in ('G', 'D', 'G_ema'):
        old = snapshot[key]
        new = getattr(nets, type(old).__name__)(*old.init_args, **old.init_kwargs)
        assert type(old)._orig_module_src != type(new)._orig_module_src  # the snapshot runs its own code
        misc.copy_params_and_buffers(old, new, require_all=True)
        assert list(new.state_dict()) == list(old.state_dict())
        kind = 'G' if key.startswith('G') else 'D'
        first, c = _inputs(new, kind, seed=3)
        with torch.no_grad():
            old.eval(), new.eval()
            if kind == 'G':
                got, want = new(first, c, noise_mode='const'), old(first, c, noise_mode='const')
            else:
                got, want = new(first, c), old(first, c)
        assert (got - want).abs().max() <= FP32_ATOL, key


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_matches_reference_classes_side_by_side(snapshot, nets, name):
    """The snapshot's classes are the reference implementation: build both here, same tolerances."""
    reference = dict(Generator=type(snapshot['G']), Discriminator=type(snapshot['D']))
    ref_rows, ref_out = record(argparse.Namespace(**reference), name)
    rows, out = record(nets, name)
    assert rows == ref_rows
    assert sorted(out) == sorted(ref_out)
    for key, value in out.items():
        _assert_close(name, key, value, ref_out[key])

#----------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description='Write the StyleGAN2 golden files from a reference checkout.')
    parser.add_argument('--tree', required=True, help='root of the checkout whose networks are the reference')
    parser.add_argument('--write', action='store_true', help='write tests/data/stylegan2_golden.npz and the snapshot')
    args = parser.parse_args(argv)
    tree = os.path.abspath(args.tree)
    if not os.path.isfile(os.path.join(tree, 'stylegan_plus', 'networks', 'stylegan2.py')):
        parser.error(f'--tree={args.tree}: no stylegan_plus/networks/stylegan2.py there')
    sys.path.insert(0, tree)
    from stylegan_plus.networks import stylegan2
    if not os.path.abspath(stylegan2.__file__).startswith(tree + os.sep):
        parser.exit(2, f'error: --tree={args.tree}: imported {stylegan2.__file__} instead of that tree\n')
    print(f'reference module: {stylegan2.__file__}')
    if not args.write:
        parser.exit(0, 'nothing written (pass --write)\n')
    write_golden(stylegan2, GOLDEN)
    write_snapshot(stylegan2, SNAPSHOT)
    for path in (GOLDEN, SNAPSHOT):
        print(f'wrote {path} ({path.stat().st_size} bytes)')


if __name__ == '__main__':
    main()
