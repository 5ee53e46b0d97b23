"""torch_utils.ops against golden outputs recorded from the ops as they were before their rewrite.

Covers every op path (up/down 1, 2, 4, groups, flip flags, padding lists, separable and 2-D
filters, half precision, channels_last, every activation with alpha/gain/clamp) and gradients of
1st and 2nd order. The cases are in tests/torch_utils/ops/ops_golden_cases.py, which also regenerates the file.
"""

import os

import pytest
import torch

from tests.torch_utils.ops import ops_golden_cases
import tests

GOLDEN_PATH = str(tests.DATA / 'ops_golden.pt')


@pytest.fixture(scope='module')
def golden():
    return ops_golden_cases.unpack(torch.load(GOLDEN_PATH))


def test_golden_file_is_small_and_covers_every_case(golden):
    assert os.path.getsize(GOLDEN_PATH) < 200 * 1024
    recorded = {key.rsplit('/', 1)[0] for key in golden}
    assert recorded == set(ops_golden_cases.CASES)


def _tolerance(want):
    """(rtol, atol) for one stored tensor; half-precision results get half-precision slack."""
    scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
    if want.dtype == torch.float16:
        return 1e-2, 1e-2 * scale
    return 2e-5, 2e-5 * scale


def _identically_zero(tensor):
    return tensor is None or not bool(tensor.abs().max() > 0)


@pytest.mark.parametrize('case', list(ops_golden_cases.CASES))
def test_matches_golden(golden, case):
    outputs = ops_golden_cases.CASES[case]()
    stored = {key.rsplit('/', 1)[1] for key in golden if key.rsplit('/', 1)[0] == case}
    # A gradient that is identically zero (2nd order of relu/lrelu/linear) may now be absent: the
    # fused bias_act path builds no graph for it instead of backpropagating zeros.
    missing = stored - set(outputs)
    assert all(_identically_zero(golden[f'{case}/{name}']) for name in missing), \
        f'{case}: outputs {sorted(outputs)} but golden has {sorted(stored)}'
    assert set(outputs) <= stored, f'{case}: outputs {sorted(outputs)} but golden has {sorted(stored)}'
    for name, got in outputs.items():
        want = golden[f'{case}/{name}']
        if want is None:
            assert got is None, f'{case}/{name} should have no gradient'
            continue
        if got is None:
            assert _identically_zero(want), f'{case}/{name}: gradient missing'
            continue
        assert got is not None and got.shape == want.shape, f'{case}/{name}: shape {getattr(got, "shape", None)}'
        # float64 results were stored as float32; half stays half.
        assert got.dtype == want.dtype or (got.dtype == torch.float64 and want.dtype == torch.float32)
        rtol, atol = _tolerance(want)
        torch.testing.assert_close(got.detach().to(want.dtype), want, rtol=rtol, atol=atol,
                                   msg=lambda m, key=f'{case}/{name}': f'{key}: {m}')
