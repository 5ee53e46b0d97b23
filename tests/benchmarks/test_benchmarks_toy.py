"""The 2-D benchmarks (Q1, Q2, Q3, Q5) end to end on a few iterations, plus their metric helpers.

Each benchmark runs in its hidden `--smoke` mode: the real train.py commands (as subprocesses)
for a handful of iterations, then the evaluation, results.json and the PNG figures. Nothing here
checks a benchmark's numbers (a few iterations train nothing); the benchmarks report those.
"""

import argparse
import json
import os
import pickle

import numpy as np
import pytest
import torch

import dnnlib
from benchmarks import q1_loganb_ring, q2_dist_grid, q3_advlat_toy, q5_rf_ring
from benchmarks.common import coverage, reconstruction, report, runner, runs, toy_losses, toy_metrics
from stylegan_plus.data import toy_data
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


def test_per_mode_closeness_ignores_how_many_modes_hold_the_samples():
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    packed = np.zeros([40, 2]) + [0.01, 0.0]                       # all on mode 0, 0.01 away
    spread = np.concatenate([np.zeros([20, 2]) + [0.01, 0.0],      # mode 0, 0.01 away
                             np.zeros([20, 2]) + [2.0, 0.03],      # mode 1, 0.03 away
                             np.zeros([5, 2]) + [0.0, 2.001],      # mode 2: 5 < min_count, left out
                             np.zeros([10, 2]) + [1.0, 1.0]])      # registers nowhere
    one = toy_metrics.per_mode_closeness(packed, centres, radius=0.1414, min_count=20)
    two = toy_metrics.per_mode_closeness(spread, centres, radius=0.1414, min_count=20)
    assert one['modes'] == 1 and one['per_mode_median'] == pytest.approx(0.01)
    assert two['modes'] == 2 and two['per_mode_median'] == pytest.approx(0.02)
    assert two['medians'][2] is None
    nowhere = toy_metrics.per_mode_closeness(np.ones([30, 2]), centres, radius=0.1414, min_count=20)
    assert nowhere['modes'] == 0 and np.isnan(nowhere['per_mode_median'])


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

def test_unit_box_maps_the_grid_into_0_1_and_back():
    reals = toy_data.make_toy_points('grid25', 0.05, 200)[0]
    box = toy_metrics.UnitBox(reals)
    unit = box.to_unit(reals)
    assert 4.1 < box.maxabs < 4.3 and unit.dtype == np.float32
    assert float(unit.min()) >= 0 and float(unit.max()) <= 1 and min(float(unit.min()), 1 - float(unit.max())) < 1e-6
    assert np.allclose(box.to_data(unit), reals, atol=1e-5)
    # One uniform scale: distances shrink by 2 * maxabs, so the scoring radius keeps its meaning in data units.
    assert np.isclose(np.linalg.norm(unit[0] - unit[1]) * 2 * box.maxabs, np.linalg.norm(reals[0] - reals[1]),
                      rtol=1e-4)


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

def test_post_hoc_encoders_side_by_side_match_lone_fits():
    """The stacked fit (one Adam over K encoders, vmap) takes each encoder along its lone path."""
    torch.manual_seed(0)
    G = mlp.Generator(z_dim=5, c_dim=0, hidden_features=[10, 10])
    D = mlp.Discriminator(c_dim=0, hidden_features=[10, 10])
    together = reconstruction.train_post_hoc_encoders(G, D, 'uniform', seeds=[100, 101], iterations=20, batch=64)
    for seed, encoder in zip([100, 101], together):
        alone = reconstruction.train_post_hoc_encoder(G, D, 'uniform', seed, iterations=20, batch=64)
        for (name, a), (_name, b) in zip(encoder.named_parameters(), alone.named_parameters()):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (seed, name, float((a - b).abs().max()))
    start = reconstruction.build_encoder(D, 5, seed=100)
    assert not torch.allclose(next(start.parameters()), next(together[0].parameters()))   # it did train

#----------------------------------------------------------------------------
# Option overrides of the benchmark loss classes.


def test_metz_ring_classes_set_the_networks_and_learning_rates():
    for cls, lr in ((toy_losses.GANMetzRing, (1e-3, 1e-4)), (toy_losses.RFMetzRing, (1e-3, 1e-4)),
                    (toy_losses.GANMetzRingRFOpt, (2e-4, 2e-4)), (toy_losses.RFMetzRingRFOpt, (2e-4, 2e-4))):
        args = _toy_options()
        cls.adjust_training_options(args, dnnlib.EasyDict(), cfg='toy', given=frozenset())
        assert args.G_kwargs.z_dim == 256 and args.G_kwargs.hidden_features == [128, 128], cls
        assert args.D_kwargs.hidden_features == [128] and args.G_kwargs.lrelu_slope == args.D_kwargs.lrelu_slope == 0
        assert (args.G_opt_kwargs.lr, args.D_opt_kwargs.lr) == lr, cls
    assert issubclass(toy_losses.RFMetzRing, toy_losses.RFLoss)

#----------------------------------------------------------------------------
# Script options: parsing, jobs, comparisons (no training).


class RowRecorder:
    """Stands in for report.Report in `compare`: keeps {label: (ours, met)}."""

    def __init__(self):
        self.rows = {}

    def compare(self, label, paper, ours, goal, met=None):
        self.rows[label] = (ours, met)


def test_q3_option_types_parse_and_refuse():
    assert q3_advlat_toy.qua_list('0.1x3, 0.3x5') == [(0.1, 3), (0.3, 5)]
    assert q3_advlat_toy.kimg_map('ring=800,grid=2500') == {'ring': 800, 'grid': 2500}
    for bad in ('0.1', '0.1x3x2', 'ax3', '0x3', '0.1x0', ''):
        with pytest.raises(argparse.ArgumentTypeError, match='--qua='):
            q3_advlat_toy.qua_list(bad)
    for bad in ('ring', 'moon=3', 'ring=0', 'ring=x'):
        with pytest.raises(argparse.ArgumentTypeError, match='--kimg='):
            q3_advlat_toy.kimg_map(bad)
    args = q3_advlat_toy.parse_args(['--datasets', 'grid', '--qua', '0.3x3', '--z-on', 'base'])
    assert args.datasets == ['grid'] and args.qua == [(0.3, 3)] and args.z_on == 'base' and args.kimg is None


def test_q3_bad_option_is_a_clean_error(capsys):
    with pytest.raises(SystemExit) as exc:
        q3_advlat_toy.parse_args(['--kimg', 'moon=3'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--kimg='moon=3'" in err and 'ring, grid' in err and 'Traceback' not in err


def test_q3_sweep_methods_stages_and_lengths():
    methods = q3_advlat_toy.qua_methods([(0.3, 3), (0.1, 5)])
    assert list(methods) == ['base', 'qua-e0.3-s3', 'qua-e0.1-s5']
    assert methods['qua-e0.3-s3'][-2:] == ['--advlat-eps=0.3', '--advlat-steps=3']
    assert q3_advlat_toy.stages_of(methods, 'base') == {'base': ('base', 'before'), 'base -z': ('base', 'after_z'),
                                                         'qua-e0.3-s3': ('qua-e0.3-s3', 'before'),
                                                         'qua-e0.1-s5': ('qua-e0.1-s5', 'before')}
    assert q3_advlat_toy.stages_of(q3_advlat_toy.METHODS) == q3_advlat_toy.STAGES
    proto = dict(kimg=256, kimg_per_dataset={'grid': 2500})
    jobs = q3_advlat_toy.build_jobs(proto, {'ring': 'r.npy', 'grid': 'g.npy'}, [0], methods)
    lengths = {job.name: [a for a in job.args if a.startswith('--kimg=')] for job in jobs}
    assert lengths['ring-base-seed0'] == ['--kimg=256'] and lengths['grid-qua-e0.1-s5-seed0'] == ['--kimg=2500']
    assert len(jobs) == 6
    # The default methods: advlat-qua with the plugin's own (--cfg=toy) defaults, no explicit eps/steps.
    default = q3_advlat_toy.build_jobs(dict(kimg=256), {'ring': 'r.npy'}, [1])
    assert [job.name for job in default] == ['ring-base-seed1', 'ring-qua-seed1']
    assert not any(arg.startswith('--advlat-') for arg in default[1].args)
    assert not any(arg.startswith(('--lr-schedule', '--g-batch-factor')) for job in jobs + default for arg in job.args)
    doubled = q3_advlat_toy.build_jobs(dict(kimg=256), {'ring': 'r.npy'}, [1], g_batch_factor=2)
    assert all(job.args[-1] == '--g-batch-factor=2' for job in doubled)
    assert q3_advlat_toy.parse_args(['--g-batch-factor', '2']).g_batch_factor == 2
    assert q3_advlat_toy.parse_args([]).g_batch_factor == 1


def test_q3_linear_decay_reaches_zero_at_each_runs_last_iteration():
    """--lr-decay=linear: every model of a data set gets the same schedule, its length that data
    set's run in --cfg=toy iterations (batch 128), rounded up so the last iteration still trains."""
    proto = dict(kimg=256, kimg_per_dataset={'grid': 2500})
    jobs = q3_advlat_toy.build_jobs(proto, {'ring': 'r.npy', 'grid': 'g.npy'}, [0], q3_advlat_toy.METHODS, 'linear')
    schedules = {job.name: [a for a in job.args if a.startswith('--lr-schedule=')] for job in jobs}
    ring, grid = ['--lr-schedule=linear:2000'], ['--lr-schedule=linear:19532']
    assert schedules == {'ring-base-seed0': ring, 'ring-qua-seed0': ring, 'grid-base-seed0': grid,
                         'grid-qua-seed0': grid}
    assert q3_advlat_toy.linear_decay_args(dict(nimg=384)) == ['--lr-schedule=linear:3']
    assert q3_advlat_toy.parse_args(['--lr-decay', 'linear']).lr_decay == 'linear'


def _q3_metrics(median_dist, hq_share=0.0):
    return dict(hq_share=hq_share, hq_modes=0, hq_counts=[], median_dist=median_dist,
                per_mode_median=median_dist / 2, registered_modes=1)


def test_q3_compare_judges_the_median_distance_on_every_seed():
    per_run = {}
    for seed, (base, base_z, qua) in enumerate([(0.10, 0.05, 0.09), (0.20, 0.08, 0.25)]):
        per_run[f'ring-base-seed{seed}'] = dict(before=_q3_metrics(base), after_z=_q3_metrics(base_z, 0.01))
        per_run[f'ring-qua-seed{seed}'] = dict(before=_q3_metrics(qua), after_z=_q3_metrics(qua))
    rep = RowRecorder()
    summary = q3_advlat_toy.compare(rep, per_run, ['ring'], [0, 1])
    assert rep.rows['ring: median distance to a centre base -z'] == ('0.050, 0.080', True)
    assert rep.rows['ring: median distance to a centre qua'] == ('0.090, 0.250', False)     # seed 1 is higher
    assert rep.rows['ring: median distance to a centre base'][1] is None
    assert rep.rows['ring: HQ share base -z'][1] is True and rep.rows['ring: HQ share qua'][1] is False
    assert summary['ring']['qua']['median_dist']['mean'] == pytest.approx(0.17)
    assert rep.rows['ring: per-mode closeness qua (reported)'] == ('0.0450, 0.1250', None)


def test_q1_methods_option_and_subset_ranking():
    assert q1_loganb_ring.parse_args([]).methods == list(q1_loganb_ring.METHODS)
    assert q1_loganb_ring.parse_args(['--methods', 'bigan-coop,gan']).methods == ['gan', 'bigan-coop']
    jobs = q1_loganb_ring.build_jobs(dict(kimg=16), 'd.npy', [0, 1], ['bigan-coop'])
    assert [job.name for job in jobs] == ['bigan-coop-seed0', 'bigan-coop-seed1']
    assert jobs[0].args[-2:] == ['--loss=benchmarks.common.toy_losses.BiGANRing', '--loganb-e-loss=cooperative']

    def run(ad_hoc, post_hoc):
        return dict(ad_hoc=ad_hoc, post_hoc=dict(mean=post_hoc, std=0.0))
    per_run = {'loganb-coop-seed0': run(0.02, 0.04), 'gan-seed0': run(2.8, 0.13), 'bigan-coop-seed0': run(2.4, 2.0),
               'bigan-seed0': run(1.8, 0.06)}
    rep = RowRecorder()
    q1_loganb_ring.compare(rep, per_run, 0)
    # Each LOGAN-B sign is ranked with the BiGAN of its sign; loganb-bigan is absent, so its trio is skipped.
    assert rep.rows['ordering post hoc (loganb-coop, bigan-coop, seed 0)'] == ('LOGAN-B < GAN < BiGAN', True)
    assert rep.rows['ordering ad hoc (loganb-coop, bigan-coop, seed 0)'] == ('LOGAN-B < BiGAN < GAN', True)
    assert not any('loganb-bigan' in label for label in rep.rows)
    assert rep.rows['loganb-coop post hoc'] == ('0.0400 +- 0.0000', True)


def test_q5_settings_build_the_metz_commands():
    methods, common = q5_rf_ring.SETTINGS['metz']
    jobs = q5_rf_ring.build_jobs(dict(kimg=2000, ae_kimg=200), 'd.npy', [0], methods, common, snap_ticks=4)
    gan, rf = jobs
    assert gan.args[-4:] == ['--batch=512', '--g-steps=2', '--loss=benchmarks.common.toy_losses.GANMetzRing',
                             '--snap=4']
    assert '--kimg=2000' in gan.args and '--kimg=2200' in rf.args and rf.args[-1] == '--rf-ae-kimg=200'
    # The later --snap overrides toy_train_args' --snap=1000000 (click keeps the last value).
    assert gan.args.index('--snap=1000000') < gan.args.index('--snap=4')
    args = q5_rf_ring.parse_args(['--setting', 'metz-rfopt', '--kimg', '500', '--snap-ticks', '2'])
    assert (args.setting, args.kimg, args.snap_ticks) == ('metz-rfopt', 500, 2)
    with pytest.raises(SystemExit):
        q5_rf_ring.parse_args(['--setting', 'metzz'])

def _constant_generator(point):
    """An MLP G whose every sample is `point` (zero weights, output bias = point)."""
    G = mlp.Generator(z_dim=2, c_dim=0, hidden_features=[4])
    with torch.no_grad():
        for param in G.parameters():
            param.zero_()
        G.out.bias.copy_(torch.tensor(point))
    return G.eval().requires_grad_(False)


def _fake_run(run_dir, points_by_kimg):
    os.makedirs(run_dir)
    for kimg, point in points_by_kimg.items():
        G = _constant_generator(point)
        with open(os.path.join(run_dir, f'network-snapshot-{kimg:06d}.pkl'), 'wb') as f:
            pickle.dump(dict(G=G, G_ema=G), f)
    return str(run_dir)


def test_q5_modes_over_time_scores_every_snapshot_after_the_autoencoder(tmp_path):
    on_mode, off_mode = [2.0, 0.0], [1.0, 1.0]       # a ring centre, and a point 1.4 from every centre
    gan_dir = _fake_run(tmp_path / 'gan', {0: off_mode, 10: on_mode, 20: off_mode})
    gan = runner.TrainJob('gan-seed0', [], run_dir=gan_dir)
    rf = runner.TrainJob('rf-seed0', [], run_dir=_fake_run(tmp_path / 'rf', {0: off_mode, 5: off_mode, 15: on_mode}))
    curves = q5_rf_ring.modes_over_time([gan, rf], toy_data.ring_centers(), ae_kimg=5)
    assert curves['gan-seed0']['G'] == [(10, 1, 1.0), (20, 0, 0.0)]      # kimg 0 (initialisation) skipped
    assert curves['rf-seed0']['G_ema'] == [(10, 1, 1.0)]                 # placed after its 5 kimg of AE training

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


def test_q2_length_is_the_protocols_or_given_epochs():
    proto, seeds = q2_dist_grid.protocol_of(q2_dist_grid.parse_args([]))
    assert proto == dict(kimg=5000) and seeds == [0, 1, 2]      # full: 100 epochs of the 50 000 points
    proto, seeds = q2_dist_grid.protocol_of(q2_dist_grid.parse_args(['--epochs', '60', '--seeds', '4,5']))
    assert proto == dict(kimg=3000) and seeds == [4, 5]
    jobs = q2_dist_grid.build_jobs(proto, 'grid.npy', seeds)
    assert all('--kimg=3000' in job.args for job in jobs) and len(jobs) == 4       # both methods, both seeds
    proto, _ = q2_dist_grid.protocol_of(q2_dist_grid.parse_args(['--smoke', '--epochs', '2']))
    assert proto == dict(kimg=100)
    with pytest.raises(SystemExit):
        q2_dist_grid.parse_args(['--epochs', '0'])


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
    # Both train on the grid scaled into [0, 1] with a sigmoid G; the scored points are back in data units.
    train_data = np.load(os.path.join(out, 'grid25_std0.05_unit.npy'))
    assert float(train_data.min()) >= 0 and float(train_data.max()) <= 1
    for name in ('gan-seed0', 'dist-seed0'):
        assert runs.load_final_snapshot(run_dirs[name])['G'].output_activation == 'sigmoid'


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


@pytest.mark.slow
def test_q3_sweep_options_smoke(tmp_path):
    out = str(tmp_path / 'out')
    data = q3_advlat_toy.main(['--smoke', '--out', out, '--qua', '0.3x1', '--z-on', 'base'])
    saved = _check_outputs(out, data, ['ring-base-seed0', 'ring-qua-e0.3-s1-seed0'], ['per_run', 'summary'])
    qua = saved['results']['per_run']['ring-qua-e0.3-s1-seed0']
    assert qua['after_z'] == qua['before']          # --z-on base: the -qua model is scored as trained
    assert set(saved['results']['summary']['ring']) == {'base', 'base -z', 'qua-e0.3-s1'}
    command = [run['command'] for run in saved['runs'] if run['name'].startswith('ring-qua')][0]
    assert command.endswith('+advlat-qua --advlat-eps=0.3 --advlat-steps=1')



def test_q3_close_up_offsets_stack_every_mode_on_one_origin():
    centres = np.array([[0.0, 0.0], [2.0, 0.0]])
    points = np.array([[0.001, -0.002], [2.003, 0.0], [1.0, 0.5], [2.0, 0.02]])
    offsets, shown = q3_advlat_toy.offsets_from_centres(points, centres, half_width=0.01)
    np.testing.assert_allclose(offsets, [[0.001, -0.002], [0.003, 0.0]], atol=1e-12)   # the far two left out
    assert shown == pytest.approx(0.5)


def test_q3_activation_picks_the_networks_loss_class():
    relu, lrelu = q3_advlat_toy.loss_methods('relu'), q3_advlat_toy.loss_methods('lrelu')
    assert relu['base'] == ['--loss=benchmarks.common.toy_losses.GANAdvLatToyReLU']
    assert relu['qua'] == ['--loss=benchmarks.common.toy_losses.GANAdvLatToyReLU+advlat-qua']
    assert lrelu['base'] == ['--loss=benchmarks.common.toy_losses.GANAdvLatToy']
    assert q3_advlat_toy.parse_args([]).activation == 'relu'
    assert q3_advlat_toy.parse_args(['--activation', 'lrelu']).activation == 'lrelu'
    swept = q3_advlat_toy.qua_methods([(0.3, 3)], lrelu)
    assert swept['qua-e0.3-s3'][0].endswith('GANAdvLatToy+advlat-qua')
    # The ReLU class writes slope 0 into both networks' options, on top of the appendix widths.
    args = dnnlib.EasyDict(G_kwargs=dnnlib.EasyDict(lrelu_slope=0.2, hidden_features=[128]),
                           D_kwargs=dnnlib.EasyDict(lrelu_slope=0.2, hidden_features=[128]))
    toy_losses.GANAdvLatToyReLU.adjust_training_options(args, dnnlib.EasyDict(), cfg='toy', given=set())
    assert args.G_kwargs == dict(lrelu_slope=0.0, hidden_features=[100, 200, 100])
    assert args.D_kwargs == dict(lrelu_slope=0.0, hidden_features=[100, 200, 100])
