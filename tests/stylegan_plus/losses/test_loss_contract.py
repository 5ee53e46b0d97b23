"""The plugin contract (docs/plugins.md), checked on every registered loss and every main+add-on pair.

Each spec is configured as train.py does (`configure_loss` on the `--cfg=toy` preset, with small
MLPs) and runs one full iteration of its phase list through `run_phase`, as the loop does: the
reported losses are finite, the networks of every phase change, the resume state survives a
weights-only save/load into a fresh loss, and the ADA hook hands over real-logit signs (or says
there are none). Then the contract's own rules: the hooks, the declarations, the shared-helper
module, and the phase names.
"""

import ast
import dataclasses
import glob
import io
import math
import os
import tokenize
import types

import pytest
import torch

import dnnlib
from stylegan_plus.losses import base, common, registry
from stylegan_plus.losses.compose import ComposedLoss
from stylegan_plus.losses.phases import Phase, build_optimizers, run_phase
from stylegan_plus.losses.stylegan2 import StyleGAN2Loss
from stylegan_plus.training import configs, setup
from stylegan_plus.training import data as data_lib
from tests.stylegan_plus.training.test_train_utils import REPO, load_pickle, make_image_dataset, max_weight_difference, only_run_dir, run_train
from torch_utils import training_stats

BATCH = 8
# RFGAN pre-trains its autoencoder on exactly one batch, so its G and D phases run in the same iteration.
OPTION_VALUES = dict(rf_ae_kimg=BATCH / 1000, advlat_div_steps=1)
ENTRIES = registry.default_registry().entries()
HingeLoss = registry.get_loss('hinge')  # after the registry's discovery, which registers the baseline first
MAINS = [entry.name for entry in ENTRIES if entry.role == 'main']
ADDONS = [entry.name for entry in ENTRIES if entry.role == 'addon']
SPECS = MAINS + [f'{main}+{addon}' for main in MAINS for addon in ADDONS]
POINTS = types.SimpleNamespace(label_dim=0, resolution=1, num_channels=2)  # what build_networks reads of a data set

#----------------------------------------------------------------------------
# One iteration of every spec.

def build_run(spec, seed, run_dir):
    """Networks, loss, hooks, phases and optimizers of `--cfg=toy --loss=spec`, built as the loop builds them."""
    args = dnnlib.EasyDict(configs.build_config('toy', 1, 1).args)
    args.G_kwargs.hidden_features = args.D_kwargs.hidden_features = [16, 16]
    registry.configure_loss(spec, args, OPTION_VALUES, cfg='toy')
    torch.manual_seed(seed)
    G, D, _G_ema = setup.build_networks(args.G_kwargs, args.D_kwargs, POINTS, torch.device('cpu'), with_ema=False)
    loss, hooks, extras = setup.build_loss(args.loss_kwargs, G, D, None, torch.device('cpu'))
    setup.give_run_dir(loss, str(run_dir))
    modules = dict(G=G, D=D, **extras)
    phases, optimizers = setup.build_phases(hooks, modules, num_gpus=1, G_opt_kwargs=args.G_opt_kwargs,
                                            D_opt_kwargs=args.D_opt_kwargs, G_reg_interval=args.get('G_reg_interval'),
                                            D_reg_interval=args.get('D_reg_interval'), g_steps=args.get('g_steps', 1))
    return dnnlib.EasyDict(loss=loss, hooks=hooks, modules=modules, phases=phases, optimizers=optimizers)


def run_iteration(run, reals):
    """The loop's `_iteration` for batch 0 on one process: latents per execution, every phase once."""
    executions = sum(spec.repeat for spec in run.phases)
    data = types.SimpleNamespace(label_dim=0)
    z, c = data_lib.draw_fakes_inputs(run.hooks, data, seed=data_lib.iteration_seed(0, 0), count=executions * BATCH,
                                      device=torch.device('cpu'), rank=0, num_gpus=1)
    slots = iter(zip(z.split(BATCH), c.split(BATCH)))
    real_c = torch.zeros([BATCH, 0])
    for spec in run.phases:
        for _ in range(spec.repeat):
            gen_z, gen_c = next(slots)
            run_phase(run.loss, spec, run.modules, run.optimizers[spec.opt], [(reals, real_c, gen_z, gen_c)])


def weights(modules):
    return {name: [t.detach().clone() for t in module.state_dict().values()] for name, module in modules.items()}


def changed(before, after):
    return {name for name in before if any(not torch.equal(a, b) for a, b in zip(before[name], after[name]))}


@pytest.mark.parametrize('spec', SPECS)
def test_one_iteration_keeps_the_contract(spec, tmp_path):
    run = build_run(spec, seed=0, run_dir=tmp_path)
    reals = torch.randn([BATCH, 2])
    collector = training_stats.Collector(regex='Loss/.*')
    before = weights(run.modules)
    run_iteration(run, reals)
    collector.update()

    reported = {name: collector.mean(name) for name in collector.names() if collector.num(name) > 0}
    assert reported and all(math.isfinite(value) for value in reported.values()), reported
    # Each phase's networks moved (some weights may legitimately stay, e.g. D's own output layer
    # under LOGAN-B's joint decision, so per phase at least one of them).
    moved = changed(before, weights(run.modules))
    assert all(moved.intersection(spec_.modules) for spec_ in run.phases), (spec, sorted(moved))
    assert 'G' in moved, spec
    assert not any(p.requires_grad for m in run.modules.values() for p in m.parameters())

    # Resume state: plain data that a weights-only load restores into a fresh loss.
    state = run.hooks.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = build_run(spec, seed=1, run_dir=tmp_path)
    fresh.hooks.load_state_dict(torch.load(buffer, weights_only=True))
    assert repr(fresh.hooks.state_dict()) == repr(state)

    # ADA: the signs of every real logit scored in this iteration, then nothing until the next ones.
    signs = run.hooks.ada_signs()
    if run.hooks.real_decisions:
        count, total = signs
        assert count > 0 and abs(total) <= count and total == int(total)
        assert run.hooks.ada_signs() == (0, 0.0)
    else:
        assert signs is None


def test_ada_signs_count_what_report_scores_saw():
    run = build_run('hinge', seed=0, run_dir=None)
    run.loss.report_scores('real', torch.tensor([[2.0], [-1.0], [0.0], [3.0]]))
    run.loss.report_scores('fake', torch.tensor([[5.0]]))      # fakes are not ADA's business
    assert run.loss.ada_signs() == (4, 1.0)
    blind = type('Blind', (HingeLoss,), {'real_decisions': False})('cpu', G=run.modules['G'], D=run.modules['D'])
    blind.report_scores('real', torch.ones([2, 1]))
    assert blind.ada_signs() is None
    # An official-style loss hands over what it reports under Loss/signs/real (nothing here).
    assert base.plugin_hooks(object(), z_dim=2).ada_signs() == (0, 0.0)

#----------------------------------------------------------------------------
# The contract's rules.

def test_at_most_eight_hooks_and_overriding_anything_else_is_refused():
    assert len(base.PLUGIN_HOOKS) <= 8
    with pytest.raises(TypeError, match=r'backward_D_fake overrides StyleGAN2Loss.backward_D_fake, which is not a '
                                        r'plugin hook; a plugin may override accumulate_gradients, phases'):
        type('Sneaky', (StyleGAN2Loss,), {'backward_D_fake': lambda self, *args: None})
    with pytest.raises(TypeError, match='run_D overrides LossPlugin.run_D'):
        type('Sneaky', (HingeLoss,), {'run_D': lambda self, *args: None})
    allowed = type('Fine', (HingeLoss,), {hook: getattr(HingeLoss, hook) for hook in ('phases', 'decision')})
    assert issubclass(allowed, base.LossPlugin)


def test_registered_plugins_override_only_hooks():
    framework = (base.LossPlugin, base.LossAddon, StyleGAN2Loss)
    for entry in ENTRIES:
        for cls in entry.cls.__mro__:
            if cls in framework or not issubclass(cls, base.LossPlugin):
                continue
            inherited = {name for frame in framework if issubclass(cls, frame) for name in vars(frame)}
            overridden = {name for name in vars(cls) if name in inherited and callable(getattr(cls, name))
                          and not name.startswith('__')}
            assert overridden <= set(base.PLUGIN_HOOKS), (entry.name, cls.__name__, overridden)


@pytest.mark.parametrize('declarations, message', [
    (dict(base_options=('gamma',)), 'a tuple drawn from r1_gamma'),
    (dict(base_options='r1_gamma'), 'a tuple drawn from'),
    (dict(role='addon', base_options=('r1_gamma',)), 'add-ons get no preset kwargs'),
    (dict(role='side'), "role = 'side'; accepted: main, addon"),
    (dict(state_attrs=('pl mean',)), 'must be attribute names'),
    (dict(presets={'toy': dict(loss=dict(advlat_epss=0.3))}), r"names advlat_epss, not among the plugin's options \(none\)"),
    (dict(presets={'toy': dict(losses={})}), "a dict with the keys 'loss' and/or 'loop'"),
    (dict(presets={'toy': [('loop', {})]}), "a dict with the keys"),
])
def test_bad_declarations_are_refused_when_the_class_is_defined(declarations, message):
    with pytest.raises(TypeError, match=message):
        type('Bad', (base.LossPlugin,), dict(declarations))


@pytest.mark.parametrize('name', MAINS)
def test_main_losses_take_exactly_the_base_options_they_declare(name):
    cls = registry.get_loss(name)
    args = dnnlib.EasyDict(configs.build_config('toy', 1, 1).args)
    torch.manual_seed(0)
    G, D, _ = setup.build_networks(args.G_kwargs, args.D_kwargs, POINTS, torch.device('cpu'), with_ema=False)
    own = dict(rf_ae_kimg=0) if name == 'rf' else {}
    cls('cpu', G=G, D=D, **{key: 1 for key in cls.base_options}, **own)
    for key in set(base.BASE_OPTIONS) - set(cls.base_options):
        with pytest.raises(TypeError, match=key):
            cls('cpu', G=G, D=D, **{key: 1}, **own)


def test_hinge_does_not_build_on_the_baseline_and_is_small():
    assert not issubclass(HingeLoss, StyleGAN2Loss) and HingeLoss.base_options == ()
    with open(os.path.join(REPO, 'stylegan_plus', 'losses', 'hinge.py')) as f:
        assert len(f.read().splitlines()) < 80


def test_hinge_loss_by_hand():
    """relu(1 - D(x)) + relu(1 + D(G(z))) for D, -D(G(z)) for G, on a linear G and D."""
    G, D = _LinearG(), _LinearD()
    loss = HingeLoss('cpu', G=G, D=D)
    reals = torch.tensor([[1.0, 0.0], [0.0, 2.0]])        # D: 1, -1
    z = torch.tensor([[0.5], [-2.0]])                     # G(z) = [z, z]: D = 0.25, -1
    D.requires_grad_(True)
    collector = training_stats.Collector(regex='Loss/.*')
    loss.accumulate_gradients(Phase.D_MAIN, reals, torch.zeros([2, 0]), z, torch.zeros([2, 0]), sync=True, gain=2)
    collector.update()
    # per sample: relu(1 - 1) + relu(1 + 0.25) = 1.25; relu(1 + 1) + relu(1 - 1) = 2
    assert collector.mean('Loss/D/loss') == pytest.approx(1.625)
    # gain 2 x the mean over 2 samples = the sum of the active terms' gradients: +G(z_0), -x_1
    torch.testing.assert_close(D.weight.grad, torch.tensor([[0.5, -1.5]]))
    D.requires_grad_(False)
    G.requires_grad_(True)
    loss.accumulate_gradients('Gboth', reals, torch.zeros([2, 0]), z, torch.zeros([2, 0]), sync=True, gain=1)
    collector.update()
    assert collector.mean('Loss/G/loss') == pytest.approx(0.375)  # -(0.25 + -1) / 2
    torch.testing.assert_close(G.scale.grad, torch.tensor(-0.5 * (0.5 - 2.0) * 0.5))
    with pytest.raises(ValueError, match="phase 'Dreg' is not one of its phases"):
        loss.accumulate_gradients('Dreg', reals, None, z, None, sync=True, gain=1)


class _LinearG(torch.nn.Module):
    """G(z) = scale * [z, z]: z [N, 1] -> [N, 2]."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim = 1, 0
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, z, c=None):
        return self.scale * torch.cat([z, z], dim=1)


class _LinearD(torch.nn.Module):
    """D(x) = x w^T with w = [1, -0.5]: x [N, 2] -> [N, 1]."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([[1.0, -0.5]]))

    def forward(self, x, c=None):
        return x @ self.weight.t()


def test_hinge_keeps_one_step_per_network_with_the_configured_optimizer():
    args = dnnlib.EasyDict(configs.build_config('cifar', 32, 1).args)
    run_phases = setup.plan_phases(base.plugin_hooks(HingeLoss('cpu', G=_LinearG(), D=_LinearD()), 1),
                                   G_opt_kwargs=args.G_opt_kwargs, D_opt_kwargs=args.D_opt_kwargs,
                                   G_reg_interval=4, D_reg_interval=16, g_steps=1)
    assert [spec.name for spec in run_phases] == ['Gmain', 'Dmain']
    assert [spec.opt_kwargs.lr for spec in run_phases] == [args.G_opt_kwargs.lr, args.D_opt_kwargs.lr]
    build_optimizers(run_phases, dict(G=_LinearG(), D=_LinearD()))   # float betas: Adam accepts them

#----------------------------------------------------------------------------
# Phases and shared helpers.

def test_phase_names_and_helpers():
    assert Phase.G_MAIN == 'Gmain' and 'Dboth' == Phase.D_BOTH and {'Greg': 1}[Phase.G_REG] == 1
    assert f'Timing/{Phase.D_REG}' == 'Timing/Dreg' and str(Phase.G_BOTH) == 'Gboth'
    table = {p.value: (p.network, p.is_main, p.is_reg) for p in Phase}
    assert table == {'Gmain': ('G', True, False), 'Greg': ('G', False, True), 'Gboth': ('G', True, True),
                     'Dmain': ('D', True, False), 'Dreg': ('D', False, True), 'Dboth': ('D', True, True)}
    assert Phase.of('Dmain') is Phase.D_MAIN and Phase.of('AEmain') is None
    assert Phase.mains('G') == (Phase.G_MAIN, Phase.G_BOTH)
    with pytest.raises(ValueError, match="unknown phase 'Hmain'"):
        StyleGAN2Loss('cpu', G=_LinearG(), D=_LinearD(), pl_weight=0, style_mixing_prob=0) \
            .accumulate_gradients('Hmain', None, None, None, None, True, 1)
    spec = setup.plan_phases(base.plugin_hooks(object(), 1), G_opt_kwargs=dict(lr=1), D_opt_kwargs=dict(lr=1),
                             G_reg_interval=None, D_reg_interval=None, g_steps=1)[0]
    assert dataclasses.replace(spec, repeat=2).name is Phase.G_BOTH


def _plugin_modules():
    folder = os.path.join(REPO, 'stylegan_plus', 'losses')
    defining = {entry.cls.__module__.rsplit('.', 1)[-1] for entry in ENTRIES}
    return {name: os.path.join(folder, f'{name}.py') for name in sorted(defining)}


def test_no_official_phase_name_is_spelled_out_in_a_plugin():
    official = {f"'{p.value}'" for p in Phase} | {f'"{p.value}"' for p in Phase}
    for name, path in _plugin_modules().items():
        with open(path, 'rb') as f:
            strings = [tok.string for tok in tokenize.tokenize(f.readline) if tok.type == tokenize.STRING]
        assert not official.intersection(strings), name


def _imported_modules(node):
    """Absolute module names an import statement brings in (relative ones resolved in stylegan_plus.losses)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module]
    if node.module:
        return [f'stylegan_plus.losses.{node.module}']
    return [f'stylegan_plus.losses.{alias.name}' for alias in node.names]     # from . import common


def test_plugins_import_no_other_plugin_and_no_private_name():
    shared = {'base', 'common', 'phases', 'registry', 'declarations', 'stylegan2', 'penalty_pass'}
    for name, path in _plugin_modules().items():
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for module in _imported_modules(node):
                assert module.split('.')[0] != 'click', f'{name} imports click'
                if module.startswith('stylegan_plus.losses.'):
                    assert module.rsplit('.', 1)[-1] in shared | {name}, f'{name} imports {module}'
            if isinstance(node, ast.ImportFrom):
                assert not any(alias.name.startswith('_') for alias in node.names), f'{name}: {node.module}'


def test_common_helpers():
    a, b = torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.5, -0.5]])
    assert common.sample_distance(a, b, 'mse').tolist() == [2.5, 0.25]
    assert common.sample_distance(a, b, 'l1').tolist() == [3.0, 1.0]
    assert float(common.mean_abs_distance(a, b)) == 1.0
    torch.manual_seed(0)
    uniform = common.sample_prior('uniform', 4000, 3, 'cpu')
    assert uniform.min() >= -1 and uniform.max() <= 1 and uniform.abs().max() > 0.99
    assert common.sample_prior('gaussian', 4000, 3, 'cpu').abs().max() > 1.5
    assert common.sample_prior('normal', 4000, 3, 'cpu').abs().max() > 1.5
    with pytest.raises(ValueError, match="unknown latent distribution 'laplace'; accepted: normal, uniform"):
        common.sample_prior('laplace', 1, 1, 'cpu')
    assert common.extra_opt_kwargs(dict(lr=0.1, betas=[0, 0.99])).betas == [0.0, 0.99]
    collector = training_stats.Collector(regex='Loss/(scores|signs)/probe')
    signs = common.report_scores('probe', torch.tensor([[-2.0], [0.5], [0.0]]))
    collector.update()
    assert signs.flatten().tolist() == [-1.0, 1.0, 0.0]
    assert collector.mean('Loss/scores/probe') == pytest.approx(-0.5) and collector.num('Loss/signs/probe') == 3
    options = dict(d_steps=2)
    common.set_unless_given(options, dict(d_steps=5, z_dist='uniform'), given=frozenset({'d_steps'}))
    assert options == dict(d_steps=2, z_dist='uniform')      # the user's value stays, the default fills in


class PresetProbe(base.LossAddon):
    """Declares a toy preset for one own option and one loop option (test add-on)."""
    options = (base.LossOption('--probe-eps', 0.1, type=float),)
    presets = {'toy': dict(loss=dict(probe_eps=0.5), loop=dict(d_steps=3))}


@pytest.mark.parametrize('cfg, given, expected_kwargs, expected_args', [
    ('toy', frozenset(), dict(probe_eps=0.5), dict(d_steps=3)),
    ('toy', frozenset({'probe_eps', 'd_steps'}), dict(probe_eps=0.2), dict(d_steps=1)),  # the user's values stay
    ('toy', frozenset({'d_steps'}), dict(probe_eps=0.5), dict(d_steps=1)),
    ('dcgan', frozenset(), dict(probe_eps=0.2), dict(d_steps=1)),                       # no preset for this cfg
])
def test_presets_fill_what_the_user_did_not_give(cfg, given, expected_kwargs, expected_args):
    args, kwargs = dnnlib.EasyDict(d_steps=1), dict(probe_eps=0.2)
    PresetProbe.adjust_training_options(args, kwargs, cfg=cfg, given=given)
    assert (kwargs, dict(args)) == (expected_kwargs, expected_args)


def test_every_registered_preset_names_real_options():
    # A preset is applied by the base class; the registered ones name the plugins' own keys.
    assert registry.get_loss('dist').presets['toy']['loop']['z_dist'] == 'uniform'
    assert registry.get_loss('rf').presets['dcgan']['loop'] == dict(g_steps=2)
    assert registry.get_loss('advlat-qua').presets['toy']['loss'] == dict(advlat_eps=0.3, advlat_steps=5)


class MixingProbe(StyleGAN2Loss):
    """Records (phase, style_mixing_prob) of each round instead of computing a loss (test plugin)."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        self.seen.append((str(phase), self.style_mixing_prob))


class LatentMover(base.LossAddon):
    """Replaces the latents of Dmain rounds, keeps the others (test add-on)."""

    def transform_fakes(self, phase, gen_z, gen_c, sync):
        return (gen_z + 1 if phase == Phase.D_MAIN else gen_z), gen_c


def test_composed_loss_runs_moved_latents_without_style_mixing():
    loss = ComposedLoss('cpu', main=dict(class_name='tests.stylegan_plus.losses.test_loss_contract.MixingProbe', pl_weight=0,
                                         style_mixing_prob=0),
                        addons=[dict(class_name='tests.stylegan_plus.losses.test_loss_contract.LatentMover')], G=_LinearG(), D=_LinearD())
    loss.main.seen = []
    loss.main.style_mixing_prob = 0.9          # as on a split generator
    for phase in (Phase.G_MAIN, Phase.D_MAIN):
        loss.accumulate_gradients(phase, None, None, torch.zeros([2, 1]), None, True, 1)
    assert loss.main.seen == [('Gmain', 0.9), ('Dmain', 0)] and loss.main.style_mixing_prob == 0.9
    assert loss.ada_signs() == (0, 0.0) and loss.real_decisions

#----------------------------------------------------------------------------
# Through train.py: the example plugin with add-ons and resume; ADA without real decisions.

class BlindHinge(HingeLoss):
    """Hinge loss that declares no real-image decisions (test plugin)."""
    real_decisions = False


COMMON = ['--cfg=dcgan', '--cbase=128', '--batch=8', '--aug=ada', '--metrics=none', '--device=cpu', '--workers=1',
          '--kimg-per-tick=0.008', '--snap=100']


@pytest.mark.slow
def test_hinge_with_addon_resumes_exactly_and_ada_says_when_it_cannot_adapt(tmp_path):
    data = make_image_dataset(tmp_path / 'rand16', count=16)
    spec = ['--loss=hinge+advlat-qua', '--advlat-steps=1']
    for outdir, extra in [('A', ['--nimg=32']), ('B', ['--nimg=16']), ('B', ['--nimg=32', '--resume=latest'])]:
        proc = run_train(f'--outdir={tmp_path / outdir}', f'--data={data}', *COMMON, *spec, *extra)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert 'ADA cannot adapt' not in proc.stdout
    snapshots = {name: sorted(glob.glob(os.path.join(only_run_dir(tmp_path / name), 'network-snapshot-*.pkl')))
                 for name in 'AB'}
    last = {name: load_pickle(paths[-1]) for name, paths in snapshots.items()}
    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        assert max_weight_difference(last['A'][key], last['B'][key]) == 0, key

    proc = run_train(f'--outdir={tmp_path / "blind"}', f'--data={data}', *COMMON, '--nimg=16',
                     '--loss=tests.stylegan_plus.losses.test_loss_contract.BlindHinge')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    message = ('ADA cannot adapt: --loss=tests.stylegan_plus.losses.test_loss_contract.BlindHinge reports no real-image decisions; '
               'p stays at 0.')
    assert proc.stdout.count(message) == 1, proc.stdout[-3000:]

