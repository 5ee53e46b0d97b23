"""ADA with an official-style loss object (only `accumulate_gradients`, no LossPlugin): the loop
adapts p from what the loss reports under `Loss/signs/real`, as the official trainer does
(docs/compat.md section 6), and says once when nothing arrives.

The runs are in-process `training_loop` calls on a tiny DCGAN (16 px, 8 images per batch, 4
iterations = one ADA interval, no DataLoader workers). That the adapter hands over exactly what a
LossPlugin hands over for the same logits is checked on the hooks directly, without a loop.
"""

import os

import pytest
import torch

from stylegan_plus.losses import base
from stylegan_plus.training import resolve, training_loop as training_loop_lib
from tests.stylegan_plus.training.test_train_utils import make_image_dataset
from torch_utils import training_stats

BATCH = 8
ITERATIONS = 4      # ada_interval 4: p is adjusted once, at the end
ADA_KIMG = 0.5      # each adjustment moves p by BATCH * 4 / (ADA_KIMG * 1000) = 0.064


def _d_step(D, augment_pipe, real_img, real_c, gain, shift):
    """The official D main loss on real images, with its logits moved by `shift` (their signs are what ADA sees)."""
    logits = D(augment_pipe(real_img) if augment_pipe is not None else real_img, real_c) + shift
    (torch.nn.functional.softplus(-logits).mean() * gain).backward()
    return logits


class OfficialStyleLoss:
    """Written like an official fork's loss: keywords from the loop, statistics via training_stats."""

    report_signs = True
    shift = 0.0

    def __init__(self, device, G=None, G_mapping=None, G_synthesis=None, D=None, augment_pipe=None, **_kwargs):
        del device, G_mapping, G_synthesis
        self.G, self.D, self.augment_pipe = G, D, augment_pipe

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        del sync
        if phase in ('Gmain', 'Gboth'):
            fake_logits = self.D(self.G(gen_z, gen_c), gen_c)
            (torch.nn.functional.softplus(-fake_logits).mean() * gain).backward()
        if phase in ('Dmain', 'Dboth'):
            real_logits = _d_step(self.D, self.augment_pipe, real_img, real_c, gain, self.shift)
            training_stats.report('Loss/scores/real', real_logits)
            if self.report_signs:
                training_stats.report('Loss/signs/real', real_logits.sign())


class OfficialStyleSilent(OfficialStyleLoss):
    """The same loss without the `Loss/signs/real` report."""
    report_signs = False


class OfficialStylePositive(OfficialStyleLoss):
    """Logits moved far up: every sign is +1, so p must rise at each adjustment (target 0.6)."""
    shift = 100.0


class PluginTwin(base.LossPlugin):
    """The same computation as a LossPlugin, handing ADA its signs through `report_scores`."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase in ('Gmain', 'Gboth'):
            fake_logits = self.D(self.G(gen_z, gen_c), gen_c)
            (torch.nn.functional.softplus(-fake_logits).mean() * gain).backward()
        if phase in ('Dmain', 'Dboth'):
            self.report_scores('real', _d_step(self.D, self.augment_pipe, real_img, real_c, gain, 0.0))


@pytest.fixture(scope='module')
def loop_kwargs(tmp_path_factory):
    """training_loop keywords of a tiny `--cfg=dcgan --aug=ada` run, resolved as train.py does."""
    data = make_image_dataset(tmp_path_factory.mktemp('ada') / 'rand16', count=16)
    options = resolve.resolve_options(dict(data=data, cfg='dcgan', cbase=64, cmax=64, batch=BATCH, aug='ada',
                                           metrics=[], device='cpu', workers=1, nimg=BATCH * ITERATIONS, snap=100,
                                           kimg_per_tick=BATCH * ITERATIONS / 1000))
    kwargs = options.loop_kwargs()
    kwargs.data_loader_kwargs = dict(num_workers=0)     # no worker processes: the test stays in-process
    kwargs.ada_kimg = ADA_KIMG
    kwargs.image_snapshot_ticks = None
    return kwargs


def train(kwargs, loss_class, run_dir, capsys):
    """Run the loop with `loss_class`; returns (final p, everything it printed)."""
    os.makedirs(run_dir)
    args = dict(kwargs, run_dir=str(run_dir), loss_kwargs=dict(class_name=f'{__name__}.{loss_class.__name__}'))
    training_loop_lib.training_loop(rank=0, **args)
    out = capsys.readouterr().out
    last = sorted(name for name in os.listdir(run_dir) if name.startswith('training-state-'))[-1]
    assert last == f'training-state-000000_{BATCH * ITERATIONS:03d}.pt'
    state = torch.load(os.path.join(run_dir, last), weights_only=True)
    return state['augment_p'], out


def test_official_style_loss_moves_p(loop_kwargs, tmp_path, capsys):
    p, out = train(loop_kwargs, OfficialStylePositive, tmp_path / 'up', capsys)
    assert p == pytest.approx(BATCH * 4 / (ADA_KIMG * 1000))      # one adjustment, upwards
    assert 'ADA cannot adapt' not in out


def test_adapter_hands_over_what_a_plugin_hands_over():
    torch.manual_seed(0)
    linear = torch.nn.Linear(2, 1)
    D = lambda img, c: linear(img)  # noqa: E731
    reals = torch.randn([16, 2])
    official = base.plugin_hooks(OfficialStyleLoss('cpu', D=D), z_dim=2)
    twin = PluginTwin('cpu', G=linear, D=D)
    for hooks in (official, twin):
        hooks.accumulate_gradients(phase='Dmain', real_img=reals, real_c=None, gen_z=None, gen_c=None, sync=True,
                                   gain=1)
    count, total = official.ada_signs()
    assert (count, total) == twin.ada_signs() and count == 16 and abs(total) < 16


def test_official_style_loss_without_signs_is_noticed_once(loop_kwargs, tmp_path, capsys):
    p, out = train(loop_kwargs, OfficialStyleSilent, tmp_path / 'silent', capsys)
    assert p == 0
    message = (f'ADA cannot adapt: --loss={__name__}.OfficialStyleSilent reported no real-image signs '
               f'(Loss/signs/real) in 4 iterations; p stays at 0 until it does.')
    assert out.count('ADA cannot adapt') == 1 and message in out, out


def test_adapter_counts_only_the_reports_of_its_own_calls():
    hooks = base.plugin_hooks(OfficialStyleLoss('cpu'), z_dim=2)
    training_stats.report('Loss/signs/real', torch.ones([5, 1]))     # outside its calls: not its loss's
    assert hooks.ada_signs() == (0, 0.0)

    class Reporter:
        def accumulate_gradients(self, **_kwargs):
            training_stats.report('Loss/signs/real', torch.tensor([[1.0], [-1.0], [1.0]]))
            training_stats.report('Loss/signs/fake', torch.ones([4, 1]))      # fakes are not ADA's business
            training_stats.report('Loss/signs/real', [1.0, 0.0])
    hooks = base.plugin_hooks(Reporter(), z_dim=2)
    hooks.accumulate_gradients(phase='Dmain')
    assert hooks.ada_signs() == (5, 2.0) and hooks.ada_signs() == (0, 0.0)
    assert training_stats._report_listeners == []   # pylint: disable=protected-access  # removed after the call
