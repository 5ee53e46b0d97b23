"""Loop-level protocol options for any loss: --z-dist, --d-steps, --g-batch-factor, --lr-schedule.

Accepted values and clean errors (usage errors naming the value), the options JSON (a key only
when the option is used), plugin defaults through `adjust_training_options`, the retired plugin
options of older runs, the schedule's factor as a function of the iteration count, the prior in
every snapshot, and generate.py drawing its latents from it.
"""

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import generate
import train
from stylegan_plus.losses.base import LossPlugin
from stylegan_plus.losses.phases import default_phases
from stylegan_plus.networks import mlp
from stylegan_plus.sampling import prior
from stylegan_plus.training import data as data_lib, lr_schedule, options as options_lib, resolve, setup, snapshots, \
    training_loop
from stylegan_plus.training.options import TrainingOptions
from tests.stylegan_plus.training.test_train_utils import make_point_dataset

LOOP_KEYS = ('d_steps', 'g_batch_factor', 'z_dist', 'lr_schedule')
ADAM = dict(class_name='torch.optim.Adam', lr=0.002, betas=[0, 0.99], eps=1e-8)


@pytest.fixture(scope='module')
def points(tmp_path_factory):
    return make_point_dataset(tmp_path_factory.mktemp('data') / 'ring.npy', count=64)


def invoke(*args):
    argv = [str(a) for a in args]
    return CliRunner().invoke(train.build_command(argv), argv)


def dry_run(points, outdir, *args):
    """The options JSON printed by `train.py --dry-run` on the 2-D toy preset (asserts success)."""
    result = invoke(f'--outdir={outdir}', f'--data={points}', '--cfg=toy', '--metrics=none', *args, '--dry-run')
    assert result.exit_code == 0, result.output
    text = result.output.split('Training options:\n', 1)[1]
    return json.JSONDecoder().raw_decode(text)[0]

#----------------------------------------------------------------------------
# train.py: values, errors, JSON keys.


def test_defaults_write_no_loop_key(points, tmp_path):
    opts = dry_run(points, tmp_path)
    assert not set(LOOP_KEYS) & set(opts)
    # Their official values are the defaults: given explicitly, still nothing is written.
    opts = dry_run(points, tmp_path, '--z-dist=normal', '--d-steps=1', '--lr-schedule=none', '--g-steps=1',
                   '--g-batch-factor=1')
    assert not set(LOOP_KEYS + ('g_steps',)) & set(opts)
    opts = dry_run(points, tmp_path, '--lr-schedule=step:1:50')   # a factor of 1 changes nothing
    assert 'lr_schedule' not in opts


def test_used_values_are_written_in_order(points, tmp_path):
    opts = dry_run(points, tmp_path, '--z-dist=uniform', '--d-steps=3', '--lr-schedule=step:0.50:200', '--g-steps=2',
                   '--g-batch-factor=2')
    assert (opts['z_dist'], opts['d_steps'], opts['lr_schedule'], opts['g_steps'], opts['g_batch_factor']) == \
        ('uniform', 3, 'step:0.5:200', 2, 2)
    keys = list(opts)
    assert keys.index('g_steps') < keys.index('d_steps') < keys.index('g_batch_factor') < keys.index('z_dist') < \
        keys.index('lr_schedule')


@pytest.mark.parametrize('args, message', [
    (['--z-dist=laplace'], '--z-dist=laplace: accepted are normal, uniform'),
    (['--d-steps=0'], '--d-steps=0: must be at least 1'),
    (['--g-batch-factor=0'], '--g-batch-factor=0: must be at least 1'),
    (['--lr-schedule=cosine'], '--lr-schedule=cosine: not a schedule; accepted: none, step:FACTOR:EVERY'),
    (['--lr-schedule=linear:0'], 'ITERS 0 must be at least 1'),
    (['--lr-schedule=linear:1e4'], "ITERS '1e4' is not a whole number"),
    (['--lr-schedule=linear'], '--lr-schedule=linear: not a schedule; accepted: none, step:FACTOR:EVERY (FACTOR > 0'),
    (['--lr-schedule=step:x:10'], "FACTOR 'x' is not a number"),
    (['--lr-schedule=step:-0.5:10'], 'FACTOR -0.5 must be a finite number > 0'),
    (['--lr-schedule=step:0.9:0'], 'EVERY 0 must be at least 1'),
    (['--lr-schedule=step:0.9:1.5'], "EVERY '1.5' is not a whole number"),
])
def test_bad_values_are_usage_errors(points, tmp_path, args, message):
    result = invoke(f'--outdir={tmp_path}', f'--data={points}', '--cfg=toy', '--metrics=none', *args, '--dry-run')
    assert result.exit_code == 2, result.output
    assert message in result.output and 'Traceback' not in result.output


def test_dist_toy_defaults_and_given_values(points, tmp_path):
    opts = dry_run(points, tmp_path, '--loss=dist')
    assert (opts['z_dist'], opts['d_steps'], opts['lr_schedule']) == ('uniform', 5, 'step:0.9:1429')
    assert not {'dist_prior', 'dist_d_steps'} & set(opts['loss_kwargs'])
    # Given values win over the plugin's paper defaults, also the official ones (then not written).
    opts = dry_run(points, tmp_path, '--loss=dist', '--z-dist=normal', '--d-steps=2', '--lr-schedule=none')
    assert 'z_dist' not in opts and 'lr_schedule' not in opts and opts['d_steps'] == 2
    opts = dry_run(points, tmp_path, '--loss=logan-b')
    assert opts['z_dist'] == 'uniform' and 'd_steps' not in opts and 'lr_schedule' not in opts


def test_retired_plugin_options_are_refused(points, tmp_path):
    for flag in ('--dist-prior=uniform', '--dist-d-steps=5', '--loganb-prior=uniform'):
        result = invoke(f'--outdir={tmp_path}', f'--data={points}', '--cfg=toy', '--loss=dist+advlat-qua', flag,
                        '--dry-run')
        assert result.exit_code == 2 and flag.split('=')[0] in result.output, result.output

#----------------------------------------------------------------------------
# Older runs: retired loss kwargs move to the loop options, with one notice.


def test_retired_options_are_migrated_once(capsys):
    old = dict(total_kimg=1, loss_kwargs=dict(class_name='stylegan_plus.losses.dist.DistGANLoss', dist_gp=0.1,
                                              dist_prior='uniform', dist_d_steps=5))
    options = TrainingOptions.from_dict(old)
    assert (options.z_dist, options.d_steps) == ('uniform', 5)
    assert dict(options.loss_kwargs) == dict(class_name='stylegan_plus.losses.dist.DistGANLoss', dist_gp=0.1)
    assert 'dist_prior' in old['loss_kwargs']     # the caller's dict is left alone
    notices = [line for line in capsys.readouterr().out.splitlines() if line.startswith('Note:')]
    assert len(notices) == 1 and "dist_prior='uniform' -> z_dist" in notices[0] and 'dist_d_steps=5' in notices[0]

    composed = dict(loss_kwargs=dict(class_name='stylegan_plus.losses.compose.ComposedLoss',
                                     main=dict(class_name='x.LOGANBLoss', loganb_prior='gaussian'), addons=[]))
    options = TrainingOptions.from_dict(composed)
    assert options.z_dist is options_lib.UNSET and 'loganb_prior' not in options.loss_kwargs['main']
    assert 'z_dist' not in options.to_json()      # gaussian is the loop's default: nothing to write
    capsys.readouterr()
    TrainingOptions.from_dict(dict(loss_kwargs=dict(class_name='a.B', dist_gp=1)))
    assert 'Note:' not in capsys.readouterr().out

#----------------------------------------------------------------------------
# The schedule.


def test_schedule_factor_depends_on_the_iteration_only():
    schedule = lr_schedule.parse_schedule('step:0.9:10000')
    assert [schedule.factor_at(i) for i in (0, 9999, 10000, 19999, 20000)] == [1, 1, 0.9, 0.9, 0.9 ** 2]
    assert lr_schedule.parse_schedule('none') is None and lr_schedule.parse_schedule(None) is None
    assert lr_schedule.canonical_spelling(' STEP:0.90:00100 ') == 'step:0.9:100'


def test_linear_schedule_reaches_zero_at_its_length_and_stays_there():
    schedule = lr_schedule.parse_schedule('Linear:0400')
    factors = [schedule.factor_at(i) for i in (0, 100, 200, 399, 400, 10 ** 6)]
    assert factors == pytest.approx([1, 0.75, 0.5, 1 / 400, 0, 0])
    assert lr_schedule.canonical_spelling(' LINEAR:0400 ') == 'linear:400'
    assert lr_schedule.canonical_spelling('step:1:7') is None       # a factor of 1 is the constant schedule


def test_linear_schedule_is_written_and_drives_the_rates(points, tmp_path):
    opts = dry_run(points, tmp_path, '--lr-schedule=linear:00250')
    assert opts['lr_schedule'] == 'linear:250'
    net = torch.nn.Linear(2, 1)
    optimizers = {'G': torch.optim.Adam(net.parameters(), lr=0.002), 'D': torch.optim.Adam(net.parameters(), lr=0.01)}
    rates = lr_schedule.configured_rates(optimizers)
    lr_schedule.apply_factor(optimizers, rates, lr_schedule.parse_schedule(opts['lr_schedule']).factor_at(125))
    assert [opt.param_groups[0]['lr'] for opt in optimizers.values()] == [0.001, 0.005]


def test_schedule_rates_are_exact_after_a_resume():
    """Rates at iteration i equal configured * factor(i), whatever the optimizer state says (resume)."""
    schedule = lr_schedule.parse_schedule('step:0.5:3')
    net = torch.nn.Linear(2, 1)
    fresh = {'G': torch.optim.Adam(net.parameters(), lr=0.002)}
    rates = lr_schedule.configured_rates(fresh)
    for i in range(8):      # an uninterrupted run
        lr_schedule.apply_factor(fresh, rates, schedule.factor_at(i))
    resumed = {'G': torch.optim.Adam(net.parameters(), lr=0.002)}
    resumed_rates = lr_schedule.configured_rates(resumed)         # taken before the saved state is loaded
    resumed['G'].load_state_dict(fresh['G'].state_dict())        # carries the decayed lr of iteration 7
    lr_schedule.apply_factor(resumed, resumed_rates, schedule.factor_at(7))
    assert resumed['G'].param_groups[0]['lr'] == fresh['G'].param_groups[0]['lr'] == 0.002 * 0.25
    lr_schedule.apply_factor(resumed, resumed_rates, schedule.factor_at(9))     # never compounded
    assert resumed['G'].param_groups[0]['lr'] == 0.002 * 0.125

#----------------------------------------------------------------------------
# Phases and the prior inside the loop.


def test_d_steps_repeat_the_d_main_phase():
    lazy = default_phases(ADAM, ADAM, 4, 16, g_steps=2, d_steps=3)
    assert [(s.name, s.repeat) for s in lazy] == [('Gmain', 2), ('Greg', 1), ('Dmain', 3), ('Dreg', 1)]
    both = default_phases(ADAM, ADAM, None, None, d_steps=5)
    assert [(s.name, s.repeat) for s in both] == [('Gboth', 1), ('Dboth', 5)]


def test_g_batch_factor_is_set_on_the_g_main_phase_only():
    lazy = default_phases(ADAM, ADAM, 4, 16, g_batch_factor=2)
    assert [(s.name, s.batch_factor) for s in lazy] == [('Gmain', 2), ('Greg', 1), ('Dmain', 1), ('Dreg', 1)]
    both = default_phases(ADAM, ADAM, None, None, g_batch_factor=3)
    assert [(s.name, s.batch_factor) for s in both] == [('Gboth', 3), ('Dboth', 1)]
    with pytest.raises(ValueError, match="batch_factor must be an integer >= 1, got 0"):
        default_phases(ADAM, ADAM, None, None, g_batch_factor=0)


class DropsGMain(LossPlugin):
    """A plugin whose phase list rebuilds G's main phase from scratch (and so loses its batch factor)."""

    def phases(self, default_phases, opt_kwargs):
        return [dataclasses.replace(spec, batch_factor=1) for spec in default_phases]


def test_a_plugin_that_loses_the_g_batch_factor_is_refused():
    G, D = _toy_networks()
    hooks = setup.build_loss(dict(class_name=f'{__name__}.DropsGMain'), G, D, None, torch.device('cpu'))[1]
    kwargs = dict(G_opt_kwargs=ADAM, D_opt_kwargs=ADAM, G_reg_interval=None, D_reg_interval=None, g_steps=1)
    with pytest.raises(ValueError, match=r'--g-batch-factor=2: the loss.s phases \(Gboth, Dboth\) have no G main'):
        setup.plan_phases(hooks, g_batch_factor=2, **kwargs)
    assert [s.batch_factor for s in setup.plan_phases(hooks, g_batch_factor=1, **kwargs)] == [1, 1]


def _toy_networks():
    G = mlp.Generator(z_dim=3, c_dim=0, hidden_features=[8])       # 2-D points
    D = mlp.Discriminator(c_dim=0, hidden_features=[8])
    return G, D


def test_loss_draws_from_the_run_prior():
    G, D = _toy_networks()
    kwargs = dict(class_name='stylegan_plus.losses.stylegan2.StyleGAN2Loss', r1_gamma=0, pl_weight=0,
                  style_mixing_prob=0)
    loss, hooks, _extras = setup.build_loss(kwargs, G, D, None, torch.device('cpu'), z_dist='uniform')
    assert loss.z_dist == 'uniform'
    z = hooks.sample_z(4000, 'cpu')
    assert z.shape == (4000, 3) and z.min() >= -1 and z.max() <= 1 and z.abs().max() > 0.99
    _loss, hooks, _extras = setup.build_loss(kwargs, G, D, None, torch.device('cpu'))
    torch.manual_seed(5)
    normal = hooks.sample_z(6, 'cpu')
    torch.manual_seed(5)
    assert torch.equal(normal, torch.randn([6, 3]))     # the official draw, bit for bit
    with pytest.raises(ValueError, match="'cauchy'; accepted: normal, uniform"):
        setup.build_loss(kwargs, G, D, None, torch.device('cpu'), z_dist='cauchy')

#----------------------------------------------------------------------------
# Snapshots record the prior; generate.py draws from it.


def _write_snapshot(path, z_dist):
    G, D = _toy_networks()
    data = snapshots.snapshot_data(dnnlib.EasyDict(class_name='x.Points', path='p.npy'), G, D, G, None, {},
                                   z_dist=z_dist)
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    return data


def test_snapshot_records_the_prior(tmp_path):
    data = _write_snapshot(tmp_path / 'uniform.pkl', 'uniform')
    assert list(data)[-1] == 'z_dist' and prior.snapshot_z_dist(data) == 'uniform'
    assert _write_snapshot(tmp_path / 'default.pkl', None)['z_dist'] == 'normal'
    official = {key: value for key, value in data.items() if key != 'z_dist'}
    assert prior.snapshot_z_dist(official) == 'normal'          # official pickles record none
    with pytest.raises(ValueError, match="records z_dist='beta'"):
        prior.snapshot_z_dist(dict(official, z_dist='beta'))


@pytest.mark.parametrize('z_dist', ['uniform', 'normal', None])
def test_generate_draws_from_the_snapshot_prior(tmp_path, z_dist):
    pkl = tmp_path / 'snap.pkl'
    data = _write_snapshot(pkl, z_dist)
    if z_dist is None:      # an official-style pickle without the key
        del data['z_dist']
        with open(pkl, 'wb') as f:
            pickle.dump(data, f)
    seeds = [0, 7, 123]
    result = CliRunner().invoke(generate.generate_images, [f'--network={pkl}', '--seeds=0,7,123', '--device=cpu',
                                                           f'--outdir={tmp_path / "out"}',
                                                           f'--vector-out={tmp_path / "z.npz"}'])
    assert result.exit_code == 0, result.output
    z = np.load(tmp_path / 'z.npz')['z']
    if z_dist == 'uniform':
        expected = [np.random.RandomState(s).uniform(-1, 1, size=(1, 3)) for s in seeds]
        assert 'uniform prior' in result.output
    else:
        expected = [np.random.RandomState(s).randn(1, 3) for s in seeds]   # the official per-seed draw
    np.testing.assert_array_equal(z, np.concatenate(expected))


class _RecordingGenerator(torch.nn.Module):
    """Stands in for G in the metrics: records the latents it is given, returns black 4x4 RGB images."""
    z_dim, c_dim, img_resolution, img_channels = 3, 0, 4, 3

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, z, c, **_kwargs):
        self.seen.append(z.clone())
        return torch.zeros([z.shape[0], 3, 4, 4])


@pytest.mark.parametrize('z_dist', ['uniform', None])
def test_metrics_draw_fakes_from_the_prior(z_dist):
    from metrics import metric_utils  # pylint: disable=import-outside-toplevel
    G = _RecordingGenerator()
    opts = metric_utils.MetricOptions(G=G, device='cpu', z_dist=z_dist)
    source = metric_utils._image_source(opts, G, lambda n: torch.zeros([n, 0]), batch_gen=2000, jit=False)  # pylint: disable=protected-access
    torch.manual_seed(1)
    source()
    z = G.seen[-1]
    if z_dist == 'uniform':
        assert z.min() >= -1 and z.max() <= 1 and z.abs().max() > 0.99
    else:
        torch.manual_seed(1)
        assert torch.equal(z, torch.randn([2000, 3]))     # the official draw

#----------------------------------------------------------------------------
# What the loop hands each main phase: --d-steps (each extra D step reads a real batch of its own)
# and --g-batch-factor (each G main step averages over factor x the batch of fresh latents).


MAIN_ROUNDS = []    # per main-phase round of the run below: (network 'G' or 'D', gen_z, real_img, gain)


class RecordingLoss(LossPlugin):
    """Trains nothing; keeps each main-phase round's latents, reals and gain in MAIN_ROUNDS."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase.is_main:
            MAIN_ROUNDS.append((phase.network, gen_z.detach().clone(), real_img.detach().clone(), gain))
        net = self.D if phase.network == 'D' else self.G
        sum(p.sum() for p in net.parameters()).mul(0).backward()    # zero gradients for the optimizer step


def _recorded_rounds(points, run_dir, network, **loop_options):
    """Train 2 iterations of batch 8 with RecordingLoss and `loop_options` (given on the command
    line); returns (gen_z, real_img, gain) of every main round of `network`, in order."""
    batch, iterations = 8, 2
    options = resolve.resolve_options(dict(data=points, cfg='toy', batch=batch, metrics=[], device='cpu', workers=1,
                                           nimg=batch * iterations, snap=100, kimg_per_tick=batch * iterations / 1000,
                                           loss=f'{__name__}.RecordingLoss', **loop_options), given=set(loop_options))
    kwargs = options.loop_kwargs()
    kwargs.data_loader_kwargs = dict(num_workers=0)
    kwargs.image_snapshot_ticks = None
    MAIN_ROUNDS.clear()
    run_dir.mkdir(exist_ok=True)
    training_loop.training_loop(rank=0, run_dir=str(run_dir), **kwargs)
    return [record[1:] for record in MAIN_ROUNDS if record[0] == network]


def test_extra_d_steps_read_their_own_real_batches(points, tmp_path):
    seen = [reals for _z, reals, _gain in _recorded_rounds(points, tmp_path, 'D', d_steps=3)]
    assert len(seen) == 3 * 2
    # Six D steps, six different batches (the points are random: equal batches would be a re-use).
    assert all(not torch.equal(seen[i], seen[j]) for i in range(len(seen)) for j in range(i))
    # All of them come from the data set.
    data = torch.from_numpy(np.load(points))
    for reals in seen:
        assert all(any(torch.allclose(row, d) for d in data) for row in reals)


def test_g_batch_factor_gives_g_main_fresh_latents_at_a_divided_gain(points, tmp_path):
    plain = _recorded_rounds(points, tmp_path / 'plain', 'G')
    doubled = _recorded_rounds(points, tmp_path / 'doubled', 'G', g_batch_factor=2)
    assert len(plain) == 2 and len(doubled) == 4               # two iterations, one or two rounds each
    assert all(gain == 1 for _z, _r, gain in plain) and all(gain == 0.5 for _z, _r, gain in doubled)
    for first, second in (doubled[0:2], doubled[2:4]):
        assert not torch.equal(first[0], second[0])            # fresh latents in the extra round
        assert torch.equal(first[1], second[1])                # the iteration's reals again
        assert first[0].shape == second[0].shape == (8, 2)
    # One global draw per iteration, G's batches first: factor 1 draws as before the option existed
    # (Gboth, Dboth: 2 batches), factor 2 one batch more, G main taking the first two.
    seed = data_lib.iteration_seed(0, 0)
    torch.manual_seed(seed)
    assert torch.equal(plain[0][0], torch.randn([16, 2])[:8])
    torch.manual_seed(seed)
    drawn = torch.randn([24, 2])
    assert torch.equal(doubled[0][0], drawn[:8]) and torch.equal(doubled[1][0], drawn[8:16])
