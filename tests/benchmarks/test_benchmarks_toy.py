"""The 2-D benchmarks (Q1, Q2, Q3, Q5) end to end on a few iterations, plus their metric helpers.

Each benchmark runs in its hidden `--smoke` mode: the real train.py commands (as subprocesses)
for a handful of iterations, then the evaluation, results.json and the PNG figures. Nothing here
checks a benchmark's numbers (a few iterations train nothing); the benchmarks report those.
"""

import json
import os

import numpy as np
import pytest
import torch

import dnnlib
from benchmarks import q1_loganb_ring, q2_dist_grid, q3_advlat_toy, q5_rf_ring
from benchmarks.common import coverage, reconstruction, report, runner, toy_losses, toy_metrics
from stylegan_plus.networks import mlp
from stylegan_plus.training import configs
from tests.stylegan_plus.losses.test_loss_dist import tiny_nets

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'

#----------------------------------------------------------------------------
# Metric helpers on hand-made points.


def test_mode_coverage_counts_points_within_radius():
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    points = np.concatenate([np.zeros([25, 2]) + [0.1, 0.0],       # mode 0: 25 inside 0.1414
                             np.zeros([19, 2]) + [2.0, 0.1],       # mode 1: 19, below min_count 20
                             np.zeros([30, 2]) + [0.0, 1.5]])      # nearest mode 2 but 0.5 away
    result = toy_metrics.mode_coverage(points, centres, radius=0.1414, min_count=20)
    assert result['counts'] == [25, 19, 0]
    assert result['modes_covered'] == 1
    assert result['registered_points'] == 44
    assert result['num_points'] == 74


def test_high_quality_share_and_modes():
    centres = np.array([[0.0, 0.0], [2.0, 0.0]])
    points = np.array([[0.0, 0.002], [0.0, 0.004], [2.0, 0.0], [1.0, 0.0]])
    result = toy_metrics.high_quality(points, centres, std=0.001, k=3, min_share=0.25)
    assert result['hq_share'] == pytest.approx(0.5)
    assert result['hq_counts'] == [1, 1]
    assert result['hq_modes'] == 2


def test_l1_reconstruction_error_is_per_point_sum():
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    rec = np.array([[0.5, -0.5], [1.0, 3.0]])
    assert toy_metrics.l1_reconstruction_error(x, rec) == pytest.approx((1.0 + 2.0) / 2)


class HalfFirst(torch.nn.Module):
    """A fixed 'encoder' E'(x) = x1 / 2: [N, 2] -> [N, 1]."""

    def forward(self, x):
        return x[:, :1] / 2


def test_post_hoc_loss_has_the_x_space_term_by_hand():
    # G(z) = (z + 1) [1, 2]; z = [0, 1] -> x = [[1, 2], [2, 4]]; E'(x) = [0.5, 1] -> G(E'(x)) = [[1.5, 3], [2, 4]].
    G, _D = tiny_nets()
    z, c = torch.tensor([[0.0], [1.0]]), torch.zeros([2, 0])
    z_only = reconstruction.post_hoc_loss(G, HalfFirst(), z, c, 'gaussian', x_space=False)
    both = reconstruction.post_hoc_loss(G, HalfFirst(), z, c, 'gaussian')
    assert float(z_only) == pytest.approx(0.5) and float(both) == pytest.approx(0.5 + 1.5)   # sums over the batch


def test_post_hoc_fit_inverts_G_where_z_regression_cannot():
    """5-d z, 2-d points: many z give one x, so regressing z aims at their average, which G need not map back
    onto x; the x-space term asks for any z that does (a random ReLU G, weights x3 so that x spreads like the ring)."""
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=5, c_dim=0, hidden_features=[10, 10])
    with torch.no_grad():
        for param in G.parameters():
            param.mul_(3)
    D = mlp.Discriminator(c_dim=0, hidden_features=[10, 10])
    x_test = toy_metrics.generate_points(G, toy_metrics.sample_prior(512, 5, 'uniform', seed=9))
    errors = {}
    for x_space in (False, True):
        values, _rec = reconstruction.post_hoc_errors(G, D, x_test, 'uniform', seeds=[100], iterations=300, batch=256,
                                                      x_space=x_space)
        errors[x_space] = values[0]
    assert errors[True] < 0.7 * errors[False], errors    # 0.36 vs 0.68 when written


def test_uniform_prior_is_in_range_and_seeded():
    z = toy_metrics.sample_prior(1000, 5, 'uniform', seed=3)
    assert z.shape == (1000, 5) and float(z.min()) >= -1 and float(z.max()) <= 1
    assert np.array_equal(z.numpy(), toy_metrics.sample_prior(1000, 5, 'uniform', seed=3).numpy())
    with pytest.raises(ValueError, match='gaussian, normal, uniform'):
        toy_metrics.sample_prior(4, 2, 'laplace', seed=0)

#----------------------------------------------------------------------------
# Option overrides of the benchmark loss classes.


def _toy_options():
    args = configs.build_config('toy', 1).args
    args.loss_kwargs = dnnlib.EasyDict(args.loss_kwargs)
    return args


def test_loganb_ring_sets_the_paper_networks():
    args = _toy_options()
    kwargs = dnnlib.EasyDict()
    toy_losses.LoganBRing.adjust_training_options(args, kwargs, cfg='toy', given=frozenset())
    assert args.G_kwargs.z_dim == 5
    assert args.G_kwargs.hidden_features == [10, 10]
    assert args.D_kwargs.hidden_features == [10, 10]
    assert args.D_kwargs.lrelu_slope == 0.1
    assert args.G_opt_kwargs.betas == [0.9, 0.999] and args.D_opt_kwargs.betas == [0.9, 0.999]  # the notebook's Adam
    assert args.z_dist == 'uniform'     # the plugin's own --cfg=toy defaults still apply (the prior: a loop option)
    assert kwargs.loganb_saturating is True and kwargs.loganb_surrogate_skip == 5


def test_overrides_refuse_other_configs():
    args = _toy_options()
    with pytest.raises(ValueError, match='--cfg=dcgan'):
        toy_losses.DistGrid.adjust_training_options(args, dnnlib.EasyDict(), cfg='dcgan', given=frozenset())


def test_set_dotted_names_missing_parent():
    with pytest.raises(KeyError, match='nope'):
        toy_losses.set_dotted(dnnlib.EasyDict(a={}), 'nope.b', 1)


def test_toy_train_args_length_and_ticks():
    args = runner.toy_train_args('d.npy', 3, kimg=100, ticks=50, extra=['--loss=rf'])
    assert '--kimg=100' in args and '--kimg-per-tick=2' in args and '--seed=3' in args and args[-1] == '--loss=rf'
    with pytest.raises(ValueError):
        runner.toy_train_args('d.npy', 0)

#----------------------------------------------------------------------------
# The benchmarks, a few iterations each.


def _check_outputs(out, data, expected_runs, result_keys):
    with open(os.path.join(out, 'results.json'), encoding='utf-8') as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(data))
    assert set(report.RESULT_KEYS) <= set(saved)
    assert saved['mode'] == 'smoke' and saved['command'].startswith(f'python -m benchmarks.{saved["benchmark"]}_')
    assert sorted(run['name'] for run in saved['runs']) == sorted(expected_runs)
    for run in saved['runs']:
        assert run['command'].startswith('OMP_NUM_THREADS=1 python train.py --outdir=')
        assert os.path.isfile(os.path.join(run['run_dir'], 'training_options.json'))
    assert set(result_keys) <= set(saved['results'])
    assert saved['comparison'] and all(set(row) == {'metric', 'paper', 'ours', 'target', 'met'}
                                       for row in saved['comparison'])
    assert saved['figures']
    for name in saved['figures']:
        with open(os.path.join(out, name), 'rb') as f:
            assert f.read(8) == PNG_MAGIC
    return saved


def _smoke(module, tmp_path):
    out = str(tmp_path / 'out')
    return out, module.main(['--smoke', '--out', out, '--parallel', '2'])


def _start_elsewhere(monkeypatch, tmp_path):
    # train.py imports `--loss=benchmarks.common.toy_losses.NAME` by dotted path: the runner gives the
    # child the repository root as its folder and on PYTHONPATH, whatever folder the benchmark starts in.
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)


@pytest.mark.slow
def test_q1_smoke(tmp_path):
    out, data = _smoke(q1_loganb_ring, tmp_path)
    saved = _check_outputs(out, data, [f'{m}-seed0' for m in q1_loganb_ring.METHODS], ['per_run', 'paper'])
    run = saved['results']['per_run']['loganb-bigan-seed0']
    assert run['ad_hoc'] > 0 and len(run['post_hoc']['values']) == 1


@pytest.mark.slow
def test_q2_smoke(tmp_path, monkeypatch):
    _start_elsewhere(monkeypatch, tmp_path)
    out, data = _smoke(q2_dist_grid, tmp_path)
    saved = _check_outputs(out, data, ['gan-seed0', 'dist-seed0'], ['per_run', 'summary', 'paper'])
    assert saved['results']['per_run']['dist-seed0']['G_ema']['num_points'] == coverage.SAMPLES
    # Each run is scored on its own prior: Dist-GAN's U[-1, 1] (the paper's), the baseline's N(0, I).
    run_dirs = {run['name']: run['run_dir'] for run in saved['runs']}
    assert coverage.run_prior(run_dirs['dist-seed0']) == 'uniform'
    assert coverage.run_prior(run_dirs['gan-seed0']) == 'normal'


@pytest.mark.slow
def test_q3_smoke(tmp_path):
    out, data = _smoke(q3_advlat_toy, tmp_path)
    saved = _check_outputs(out, data, ['ring-base-seed0', 'ring-qua-seed0'], ['per_run', 'summary', 'paper'])
    assert set(saved['results']['per_run']['ring-qua-seed0']) == {'before', 'after_z'}
    assert 'advlat-qua' in saved['runs'][1]['command'] or 'advlat-qua' in saved['runs'][0]['command']


@pytest.mark.slow
def test_q5_smoke_and_reuse(tmp_path, capsys):
    out, data = _smoke(q5_rf_ring, tmp_path)
    saved = _check_outputs(out, data, ['gan-seed0', 'rf-seed0'], ['per_run', 'summary', 'paper'])
    assert set(saved['results']['summary']['G']) == {'gan', 'rf'}
    # --reuse evaluates the same runs again without training: same run folders, same numbers.
    capsys.readouterr()
    again = q5_rf_ring.main(['--smoke', '--out', out, '--reuse'])
    assert 'reusing' in capsys.readouterr().out
    assert [run['run_dir'] for run in again['runs']] == [run['run_dir'] for run in saved['runs']]
    assert json.loads(json.dumps(again['results'])) == saved['results']
