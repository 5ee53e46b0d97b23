"""Loss plugin registry, --loss specs and composition, and the plugin interface in a mini loop."""

import copy
import pickle

import click
import pytest
import torch
from click.testing import CliRunner

import dnnlib
from stylegan_plus.training import setup
import training.loss
from stylegan_plus.cli import loss_options
from stylegan_plus.losses import (ComposedLoss, LossAddon, LossOption, LossPlugin, LossRegistry, LossSpecError,
                                  StyleGAN2Loss, build_optimizers, configure_loss, default_phases, format_loss_list,
                                  get_loss, list_losses, plugin_hooks, run_phase)
from stylegan_plus.networks import mlp
from stylegan_plus.training import configs, official_names
from torch_utils import misc, training_stats

from stylegan_plus.losses.declarations import BASE_OPTIONS, base_options_of

from tests.plugins_for_tests import ExtraNetLoss, TracingAddon

EXTRA_PATH = 'tests.plugins_for_tests.ExtraNetLoss'
ADAM = dict(class_name='torch.optim.Adam', lr=0.01, betas=[0, 0.99], eps=1e-8)


class _MainA(StyleGAN2Loss):
    """First test main loss."""
    options = (LossOption('--a-weight', 2.0, help='a weight'),)


class _MainB(StyleGAN2Loss):
    """Second test main loss."""


class _AddonX(LossAddon):
    """Test add-on."""
    options = (LossOption('--x-steps', 3, help='steps'),)


class _MainR1Only(LossPlugin):
    """Test main loss that has an R1 penalty and nothing else of the baseline."""
    base_options = ('r1_gamma',)


@pytest.fixture
def registry():
    reg = LossRegistry()
    reg.register('stylegan2', StyleGAN2Loss, class_name='training.loss.StyleGAN2Loss')
    reg.register('alpha', _MainA)
    reg.register('bravo', _MainB, description='custom line')
    reg.register('xray', _AddonX)
    return reg


def _cifar_args():
    return dnnlib.EasyDict(configs.build_config('cifar', 32, 1).args)

# ---------------------------------------------------------------------------------------------------
# Registry.


def test_default_registry_has_baseline():
    losses = list_losses()
    assert list(losses)[0] == 'stylegan2'
    assert losses['stylegan2'].startswith('StyleGAN2-ADA baseline')
    assert get_loss('stylegan2') is StyleGAN2Loss is training.loss.StyleGAN2Loss
    assert issubclass(training.loss.StyleGAN2Loss, training.loss.Loss)
    text = format_loss_list()
    assert 'stylegan2' in text and '[main, default]' in text


def test_list_with_descriptions_and_roles(registry):
    assert registry.names() == ['stylegan2', 'alpha', 'bravo', 'xray']
    descriptions = {e.name: e.description for e in registry.entries()}
    assert descriptions['alpha'] == 'First test main loss.'
    assert descriptions['bravo'] == 'custom line'
    assert [e.role for e in registry.entries()] == ['main', 'main', 'main', 'addon']
    assert registry.get('alpha').class_name.endswith('test_loss_registry._MainA')
    assert '[addon] Test add-on.' in registry.format_list()


def test_unknown_name_suggests_close_match(registry):
    with pytest.raises(LossSpecError, match=r"unknown loss 'alpah'; did you mean 'alpha'\? Available: stylegan2, alpha, bravo, xray"):
        registry.get('alpah')
    with pytest.raises(LossSpecError) as info:
        registry.get('zzzzzz')
    assert 'did you mean' not in str(info.value) and 'Available' in str(info.value)
    with pytest.raises(LossSpecError, match='did you mean'):
        get_loss('stylegan')


@pytest.mark.parametrize('name', ['', 'a+b', 'a.b', ' a', 'a b', 'help'])
def test_bad_registration_names(registry, name):
    with pytest.raises(ValueError):
        registry.register(name, _MainB)


def test_registration_refusals(registry):
    with pytest.raises(TypeError):
        registry.register('linear', torch.nn.Linear)
    with pytest.raises(ValueError, match='already registered'):
        registry.register('alpha', _MainB)
    registry.register('alpha', _MainA)   # same class again is harmless

    class Clash(StyleGAN2Loss):
        options = (LossOption('--a-weight', 1.0),)
    with pytest.raises(ValueError, match="already belong to loss 'alpha'"):
        registry.register('clash', Clash)


def test_parse_composition(registry):
    main, addons = registry.parse('alpha')
    assert main.name == 'alpha' and addons == []
    main, addons = registry.parse('xray+alpha')
    assert main.name == 'alpha' and [a.name for a in addons] == ['xray']
    main, addons = registry.parse('xray')          # an add-on alone runs on the default main loss
    assert main.name == 'stylegan2' and [a.name for a in addons] == ['xray']


def test_two_main_losses_refused(registry):
    with pytest.raises(LossSpecError, match=r"'alpha' and 'bravo' are both main losses.*add-ons \(xray\)"):
        registry.parse('alpha+bravo')
    with pytest.raises(LossSpecError, match='more than once'):
        registry.parse('xray+xray')
    with pytest.raises(LossSpecError, match='expected NAME'):
        registry.parse('alpha+')


def test_dotted_class_path():
    assert get_loss(EXTRA_PATH) is ExtraNetLoss
    with pytest.raises(LossSpecError, match='not a LossPlugin'):
        get_loss('torch.nn.Linear')
    with pytest.raises(LossSpecError, match='cannot be imported'):
        get_loss('no_such_module_xyz.Loss')


def test_loss_option_key_and_click():
    opt = LossOption('--clr-lambda-latent', 5.0, help='weight')
    assert opt.key == 'clr_lambda_latent'
    with pytest.raises(ValueError):
        LossOption('--Bad_Flag', 1)
    choice = LossOption('--testx-prior', 'normal', choices=('normal', 'uniform'))
    steps = LossOption('--testx-steps', 2, min=1, max=4)
    with pytest.raises(ValueError, match='min/max need type int or float'):
        LossOption('--testx-name', 'a', min=0)

    @click.command()
    @loss_options.click_option(opt)
    @loss_options.click_option(choice)
    @loss_options.click_option(steps)
    def cmd(clr_lambda_latent, testx_prior, testx_steps):
        click.echo(f'{clr_lambda_latent!r} {testx_prior} {testx_steps!r}')
    runner = CliRunner()
    assert runner.invoke(cmd, []).output.strip() == '5.0 normal 2'
    assert runner.invoke(cmd, ['--clr-lambda-latent', '2', '--testx-prior', 'uniform', '--testx-steps=4']).output.strip() \
        == '2.0 uniform 4'
    assert runner.invoke(cmd, ['--testx-prior', 'cauchy']).exit_code == 2
    bounded = runner.invoke(cmd, ['--testx-steps=0'])
    assert bounded.exit_code == 2 and '0 is not in the range 1<=x<=4' in bounded.output
    assert '[default: 5.0]' in runner.invoke(cmd, ['--help']).output

# ---------------------------------------------------------------------------------------------------
# configure_loss: what lands in training_options.json.


def test_configure_default_keeps_official_json():
    args = _cifar_args()
    before = copy.deepcopy(args.loss_kwargs)
    configure_loss('stylegan2', args, {}, cfg='cifar')
    # The baseline may be registered under either name of the compat table: the file gets the official one.
    assert official_names.to_official(args.loss_kwargs) == official_names.to_official(before)
    assert official_names.to_official(args.loss_kwargs).class_name == 'training.loss.StyleGAN2Loss'
    assert list(args.loss_kwargs) == ['class_name', 'r1_gamma', 'pl_weight', 'style_mixing_prob']


def test_configure_main_and_addons(registry):
    args = _cifar_args()
    registry.configure('alpha', args, {'a_weight': 7.0, 'x_steps': 9}, cfg='cifar', given={'a_weight'})
    assert args.loss_kwargs == dict(class_name=registry.get('alpha').class_name, r1_gamma=0.01, pl_weight=0,
                                    style_mixing_prob=0, a_weight=7.0)
    args = _cifar_args()
    registry.configure('alpha+xray', args, {}, cfg='cifar')
    assert args.loss_kwargs.class_name == 'stylegan_plus.losses.compose.ComposedLoss'
    assert args.loss_kwargs.main.a_weight == 2.0 and args.loss_kwargs.main.r1_gamma == 0.01
    assert args.loss_kwargs.addons == [dict(class_name=registry.get('xray').class_name, x_steps=3)]


def test_main_loss_gets_only_the_base_options_it_declares(registry):
    registry.register('r1only', _MainR1Only)
    registry.register('noneofthem', type('_NoBase', (LossPlugin,), {'base_options': ()}))
    args = _cifar_args()
    registry.configure('r1only', args, {}, cfg='cifar')
    assert args.loss_kwargs == dict(class_name=registry.get('r1only').class_name, r1_gamma=0.01)
    args = _cifar_args()
    registry.configure('noneofthem+xray', args, {}, cfg='cifar')
    assert args.loss_kwargs.main == dict(class_name=registry.get('noneofthem').class_name)
    assert args.loss_kwargs.addons == [dict(class_name=registry.get('xray').class_name, x_steps=3)]
    assert base_options_of(StyleGAN2Loss) == BASE_OPTIONS     # the baseline takes every one


def test_configure_refuses_options_of_unselected_losses(registry):
    with pytest.raises(LossSpecError, match='--a-weight belongs to --loss=alpha'):
        registry.configure('bravo', _cifar_args(), {'a_weight': 1.0}, given={'a_weight'})


def test_configure_calls_plugin_adjustment():
    args = configs.build_config('dcgan', 16, 1).args
    configure_loss(EXTRA_PATH, args, {}, cfg='dcgan')
    assert args.g_steps == 2
    assert args.loss_kwargs.testx_prior == 'normal' and args.loss_kwargs.pl_weight == 0
    args = configs.build_config('dcgan', 16, 1).args
    configure_loss(EXTRA_PATH, args, {}, cfg='dcgan', given={'g_steps'})
    assert 'g_steps' not in args

# ---------------------------------------------------------------------------------------------------
# Composition at run time and the adapter for official-style losses.


def _toy_nets(seed=0):
    torch.manual_seed(seed)
    G = mlp.Generator(z_dim=3, c_dim=0, hidden_features=[8]).train().requires_grad_(False)
    D = mlp.Discriminator(c_dim=0, hidden_features=[8]).train().requires_grad_(False)
    return G, D


def test_composed_loss_order_and_latents():
    G, D = _toy_nets()
    main_kwargs = dict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0)
    loss = ComposedLoss('cpu', main=main_kwargs, addons=[dict(class_name='tests.plugins_for_tests.TracingAddon')],
                        G=G, D=D, augment_pipe=None)
    addon = loss.addons[0]
    assert addon.main is loss.main and addon.trace_scale == 0.5
    seen_z = []
    original = loss.main.accumulate_gradients
    loss.main.accumulate_gradients = lambda phase, *args: (seen_z.append(args[2]), original(phase, *args))
    z = torch.randn(4, 3)
    c = torch.zeros(4, 0)
    D.requires_grad_(True)
    loss.accumulate_gradients('Dmain', torch.randn(4, 2), c, z, c, sync=True, gain=1)
    assert torch.equal(seen_z[-1], -z)     # the add-on moved the D step's latents before the main loss
    G.requires_grad_(True)
    collector = training_stats.Collector(regex='Loss/trace/.*')
    loss.accumulate_gradients('Gmain', torch.randn(4, 2), c, z, c, sync=True, gain=1)
    collector.update()
    assert collector.num('Loss/trace/term') == 1
    assert addon.seen == [('transform', 'Dmain'), ('accumulate', 'Dmain'), ('transform', 'Gmain'), ('accumulate', 'Gmain')]
    assert loss.state_dict() == {'main': {'pl_mean': torch.tensor(0.0)}, 'addons': [{'calls': torch.tensor(2)}]}


def test_composed_loss_refuses_two_mains():
    G, D = _toy_nets()
    with pytest.raises(ValueError, match='one main loss'):
        ComposedLoss('cpu', main=dict(class_name='training.loss.StyleGAN2Loss'),
                     addons=[dict(class_name='training.loss.StyleGAN2Loss')], G=G, D=D)


def test_plugin_hooks_for_official_style_loss():
    class OfficialStyle:
        def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
            self.last = phase
    hooks = plugin_hooks(OfficialStyle(), z_dim=5)
    assert hooks.extra_modules() == {} and hooks.state_dict() == {}
    assert hooks.sample_z(3, 'cpu').shape == (3, 5)
    phases = default_phases(ADAM, ADAM)
    assert hooks.phases(phases, None) == phases
    loss = StyleGAN2Loss('cpu', G=_toy_nets()[0], D=_toy_nets()[1], pl_weight=0, style_mixing_prob=0)
    assert plugin_hooks(loss, z_dim=5) is loss

# ---------------------------------------------------------------------------------------------------
# The test plugin in a hand-made loop: extra network, own optimizer and phase, state, resume.


def _make_run(seed=0, prior='normal'):
    G, D = _toy_nets(seed)
    loss = dnnlib.util.construct_class_by_name(class_name=EXTRA_PATH, device='cpu', G=G, D=D, augment_pipe=None,
                                               r1_gamma=1.0, pl_weight=0, style_mixing_prob=0, testx_prior=prior)
    setup.give_z_dist(loss, prior)     # as the loop does: the run's --z-dist, which the plugin defaulted
    modules = {'G': G, 'D': D, **loss.extra_modules()}
    for module in loss.extra_modules().values():
        module.requires_grad_(False)
    phases = loss.phases(default_phases(ADAM, ADAM, G_reg_interval=4, D_reg_interval=2),
                         dnnlib.EasyDict(G=ADAM, D=ADAM))
    return dnnlib.EasyDict(G=G, D=D, loss=loss, modules=modules, phases=phases,
                           opts=build_optimizers(phases, modules))


def _iteration(run, batch_idx, real, batch_gpu=2):
    """One loop iteration as docs/plugins.md describes; returns the modules each phase changed."""
    changed = {}
    draws = run.loss.sample_z(len(run.phases) * real.shape[0], 'cpu').split(real.shape[0])
    c = torch.zeros(real.shape[0], 0)
    for spec, gen_z in zip(run.phases, draws):
        if batch_idx % spec.interval != 0:
            continue
        before = {name: copy.deepcopy(m.state_dict()) for name, m in run.modules.items()}
        rounds = list(zip(real.split(batch_gpu), c.split(batch_gpu), gen_z.split(batch_gpu), c.split(batch_gpu)))
        run_phase(run.loss, spec, run.modules, run.opts[spec.opt], rounds)
        changed[spec.name] = sorted(name for name, m in run.modules.items()
                                    if any(not torch.equal(v, before[name][k]) for k, v in m.state_dict().items()))
    return changed


def _snapshot(run):
    # Network pickle: official keys first, then the extra networks; resume state beside them.
    data = dict(training_set_kwargs=None, G=run.G, D=run.D, G_ema=run.G, augment_pipe=None)
    for name, module in run.loss.extra_modules().items():
        data[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()
    data['resume_state'] = dict(loss=run.loss.state_dict(), optimizers={k: o.state_dict() for k, o in run.opts.items()})
    return pickle.dumps(data)


def test_plugin_phases_grads_and_resume():
    real = torch.randn(4, 2)
    run = _make_run()
    assert [s.name for s in run.phases] == ['Gmain', 'Greg', 'Hmain', 'Dmain', 'Dreg']
    assert sorted(run.opts) == ['D', 'G', 'H'] and run.opts['H'].param_groups[0]['lr'] == 0.01
    collector = training_stats.Collector(regex='Loss/testx/.*')
    changed = _iteration(run, 0, real)
    assert changed == {'Gmain': ['G'], 'Greg': [], 'Hmain': ['H'], 'Dmain': ['D'], 'Dreg': ['D']}
    changed = _iteration(run, 1, real)
    assert sorted(changed) == ['Dmain', 'Gmain', 'Hmain']      # regularisation phases skipped at batch_idx 1
    collector.update()
    assert collector.num('Loss/testx/latent') == 8              # 2 iterations x 2 rounds x 2 samples
    assert int(run.loss.h_calls) == 4 and float(run.loss.h_loss_avg) > 0
    assert all(not p.requires_grad for m in run.modules.values() for p in m.parameters())

    blob = _snapshot(run)
    assert b'plugins_for_tests' not in blob      # extras and state are plain torch data
    data = pickle.loads(blob)
    assert list(data)[:6] == ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe', 'H']

    resumed = _make_run(seed=1)                  # fresh weights, then restore everything
    misc.copy_params_and_buffers(data['G'], resumed.G, require_all=True)
    misc.copy_params_and_buffers(data['D'], resumed.D, require_all=True)
    misc.copy_params_and_buffers(data['H'], resumed.loss.H, require_all=True)
    resumed.loss.load_state_dict(data['resume_state']['loss'])
    for key, opt in resumed.opts.items():
        opt.load_state_dict(data['resume_state']['optimizers'][key])
    assert int(resumed.loss.h_calls) == 4 and torch.equal(resumed.loss.H.weight, run.loss.H.weight)

    # Continuing both runs from the same random state gives the same weights: the state is complete.
    for r in (run, resumed):
        torch.manual_seed(123)
        _iteration(r, 2, real)
    for name in run.modules:
        for a, b in zip(run.modules[name].parameters(), resumed.modules[name].parameters()):
            assert torch.allclose(a, b, atol=1e-6), name
    assert torch.equal(run.loss.h_loss_avg, resumed.loss.h_loss_avg)


def test_plugin_prior_and_state_errors():
    run = _make_run(prior='uniform')
    z = run.loss.sample_z(1000, 'cpu')
    assert z.shape == (1000, 3) and z.min() >= -1 and z.max() <= 1 and z.abs().max() > 0.9
    with pytest.raises(KeyError):
        run.loss.load_state_dict({'pl_mean': torch.tensor(0.0)})
    with pytest.raises(ValueError, match='reserved'):
        run.loss.register_network('D', torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match='twice'):
        run.loss.register_network('H', torch.nn.Linear(1, 1))
