"""fp32 CPU blocks run channels_last (NHWC) except under a D gradient penalty; results stay NCHW-equal."""

import pytest
import torch

from stylegan_plus.networks import stylegan2 as nets


def _g():
    torch.manual_seed(3)
    return nets.Generator(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3,
                          mapping_kwargs=dict(num_layers=2),
                          synthesis_kwargs=dict(channel_base=256, channel_max=32))


def _d():
    torch.manual_seed(5)
    return nets.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
                              epilogue_kwargs=dict(mbstd_group_size=2))


def _record_layouts(module, names):
    """Hooks that append whether each named submodule's output is NHWC (and not also NCHW)."""
    seen = []

    def hook(_module, _inputs, out):
        out = out[0] if isinstance(out, tuple) else out
        seen.append(out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous())
    for name in names:
        module.get_submodule(name).register_forward_hook(hook)
    return seen


@pytest.fixture
def nchw_only(monkeypatch):
    def switch(on):
        monkeypatch.setattr(nets, 'CPU_FP32_CHANNELS_LAST', not on)
    return switch


def test_block_layout_rules():
    assert nets._block_layout(False, False, torch.float32, True) == torch.channels_last
    assert nets._block_layout(False, False, torch.float16, True) == torch.contiguous_format
    assert nets._block_layout(False, False, torch.float32, False) == torch.contiguous_format
    assert nets._block_layout(True, False, torch.float16, False) == torch.channels_last
    assert nets._block_layout(True, True, torch.float32, False) == torch.contiguous_format


@pytest.mark.parametrize('fused', [False, True])
def test_generator_nhwc_matches_nchw(nchw_only, fused):
    G = _g().train()
    seen = _record_layouts(G, ['synthesis.b8.conv0', 'synthesis.b16.conv1'])
    z = torch.randn([2, 32])
    outs, grads = [], []
    for nchw in (True, False):
        nchw_only(nchw)
        G.zero_grad(set_to_none=True)
        img = G(z, None, noise_mode='const', fused_modconv=fused)
        img.square().sum().backward()
        outs.append(img.detach())
        grads.append(G.synthesis.b16.conv1.weight.grad.clone())
    # The grouped (fused) path folds the batch into channels, which a reshape makes NCHW again.
    assert seen == [False, False, not fused, not fused]
    assert outs[1].is_contiguous()     # images leave the network in the plain layout
    torch.testing.assert_close(outs[1], outs[0], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_discriminator_layout_per_phase():
    D = _d().train()
    seen = _record_layouts(D, ['b16.conv0', 'b8.conv1'])
    img = torch.randn([2, 3, 16, 16])
    plain = D(img, None)                                    # D trains, image constant: NHWC
    assert seen == [True, True]
    seen.clear()
    penalised = img.clone().requires_grad_(True)            # R1: d logits / d image while D trains
    logits = D(penalised, None)
    (grad,) = torch.autograd.grad(logits.sum(), penalised, create_graph=True)
    assert seen == [False, False]
    grad.square().sum().backward()
    assert D.b16.conv0.weight.grad.abs().sum() > 0
    seen.clear()
    D.requires_grad_(False)                                 # G's phase: image needs grad, D frozen: NHWC
    assert torch.allclose(D(penalised, None), plain, atol=1e-5)
    assert seen == [True, True]
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_discriminator_penalty_runs_nhwc_with_gradfix_ops(monkeypatch):
    # With conv2d_gradfix's ops on (the training loop's setting) the double backward is as cheap
    # in NHWC as in NCHW, so D keeps NHWC under R1 too; the penalty's gradients are the same.
    from torch_utils.ops import conv2d_gradfix
    img = torch.randn([2, 3, 16, 16])
    results = {}
    for enabled in (False, True):
        monkeypatch.setattr(conv2d_gradfix, 'enabled', enabled)
        D = _d().train()
        seen = _record_layouts(D, ['b16.conv0', 'b8.conv1'])
        penalised = img.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(penalised, None).sum(), penalised, create_graph=True)
        grad.square().sum().backward()
        assert seen == [enabled, enabled]
        results[enabled] = (grad.detach(), D.b16.conv0.weight.grad.clone(), D.b8.conv1.weight.grad.clone())
    for got, want in zip(results[True], results[False]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
