"""CLR-GAN (`--loss=clr`): consistent latent representation and real-image reconstruction.

Reading (docs/methods.md): D's penultimate features, through a latent head phi, predict the z
that made a fake; G reconstructs reals from phi(x_real) through its mapping network.

- D step (Dmain/Dboth): `L_D' = L_D + lambda_latent * dist(phi(D_features(G(z))), z)`, on the
  same D pass as the baseline's fake term. With style mixing the target is the first z (the one
  passed to the step); the second z only feeds the layers after the mixing cutoff.
- G step (Gmain/Gboth): `L_G' = L_G + lambda_rec * dist(G(phi(x_real)), x_real)`. phi(x_real) comes
  from D (frozen in this phase, no gradient) on the image as D sees it (through the augment pipe,
  as in the D step); the target is the un-augmented real image. The reconstruction runs mapping
  then synthesis without style mixing and without updating the mapping's `w_avg` or G's BatchNorm
  running statistics (phi(x) is not a draw from the prior; truncation and eval-mode sampling
  must keep describing the prior only).
- dist: `mse` (default; mean of squares over all elements, the authors' release and the variant
  behind the paper's StyleGAN2 results) or `l1` (per-sample sum of absolute values, batch mean,
  the paper's Eq. 6/8).
- phi: a linear head `clr_head` (torch.nn.Linear, features -> z_dim), registered as an extra
  network: trained with D by D's optimizer (it joins every phase that trains D), saved in
  snapshots and resumed with them. Its input ("D's features", `latent_features`):
  - DCGAN, MLP: `D(x, c, return_features=True)[1]`, the penultimate features;
  - StyleGAN2: the epilogue's flattened 3x3 conv output, i.e. the input of its fc layer
    (C * 4 * 4 values for C channels at 4x4), read by a forward hook for the duration of one D call.
  **Deviation from the authors' release**, which reads z straight off the fc output (C = 512 =
  z_dim values, after the fc's lrelu, no new parameters). On the tiny StyleGAN2 of Q6 (C = 64 =
  z_dim, 16 px) that output never learned z: its latent MSE on fakes sat at 0.99-1.00, the score
  of predicting 0 (E[z^2] = 1), from 2 kimg to 20 kimg on all three seeds, and in 300 in-process
  iterations (batch 32, the cifar cfg's Adam) it ended at 1.00 while a linear head on the conv
  output reached 0.94-0.96 (docs/results_images.md, Q6). The fc's 64 lrelu outputs are also the
  only input of the realness `out` layer, and the adversarial term shrinks them on fakes (std
  0.08 per dimension); z is only weakly present in a StyleGAN2's fakes (a random G's images depend
  on 8 of 64 z directions for 90 % of |dG/dz|^2), so the small signal needs more features
  than the 64 the realness decision squeezes. The paper itself allows this: phi(x) = sigma(f(x))
  with sigma an affine map (docs/reference-code.md, 1.1), f being D's feature extractor.
  StyleGAN2 CLR snapshots written before this reading: one without a head (fc width = z_dim)
  resumes with a fresh head; one with a head on the fc output does not fit the new head's width.
- A D with fewer head-input features F than z_dim is refused (before training, with the widths and
  the options that fix it): a linear map from F features spans only F of the z_dim directions,
  so the latent error cannot fall much below its starting value, and G would be asked to rebuild
  every real from a latent that says little about it. For StyleGAN2, F = 16 * min(cbase / 4, cmax).

Statistics: `Loss/clr/latent` (dist of the latent term, unweighted, per sample), `Loss/clr/latent_mse`
(its mean squared error whatever `dist`), `Loss/clr/rec` (dist of the reconstruction, unweighted);
the official `Loss/G/loss` and `Loss/D/loss` keep reporting the baseline terms only.
"""

import contextlib
import dataclasses

import torch
import torch.nn.functional as F

from torch_utils import training_stats
from stylegan_plus.sampling import latent_steps

from .base import LossOption
from .common import DISTANCES, run_module, sample_distance
from .phases import Phase
from .registry import LossSpecError, register_loss
from .stylegan2 import StyleGAN2Loss

HEAD_NAME = 'clr_head'
_HEAD_INIT_SEED = 0     # the head's own init seed: building it must not shift the run's random stream


def stylegan2_fc(D):
    """The epilogue fc layer of a StyleGAN2 discriminator (its input feeds CLR's head), or None for other nets."""
    fc = getattr(getattr(D, 'b4', None), 'fc', None)
    return fc if getattr(fc, 'weight', None) is not None else None


@contextlib.contextmanager
def captured_input(module):
    """Within the block, `seen['x']` is the first input of `module`'s latest forward call.

    The hook lives only inside the block, so D is never pickled or copied with it.
    """
    seen = {}
    handle = module.register_forward_hook(lambda _module, inputs, _output: seen.__setitem__('x', inputs[0]))
    try:
        yield seen
    finally:
        handle.remove()


def latent_features(D, img, c, call=None):
    """(logits [N, 1], features [N, F] float32) that CLR's head reads, from one D pass on img [N, ...].

    StyleGAN2: the epilogue's flattened conv output (the fc's input, F = C * 16); other nets:
    `D(img, c, return_features=True)[1]`. `call(img, c, return_features)` runs D (default: D itself),
    so that a loss can route it through its DDP wrapper; `D` is the unwrapped network.
    """
    call = call or (lambda x, labels, return_features: D(x, labels, return_features=return_features))
    fc = stylegan2_fc(D)
    if fc is None:
        return call(img, c, True)
    with captured_input(fc) as seen:
        logits = call(img, c, False)
    return logits, seen['x']


def feature_width(D):
    """Width F of the features CLR's head reads (`latent_features`): StyleGAN2 fc input, declared, or probed.

    The probe runs D once on a zero input of shape [1, img_channels, img_resolution, img_resolution]
    in eval mode without gradients, then restores D's mode.
    """
    fc = stylegan2_fc(D)
    if fc is not None:
        return int(fc.weight.shape[1])
    if getattr(D, 'num_features', None) is not None:
        return int(D.num_features)
    shape = [1, D.img_channels, D.img_resolution, D.img_resolution]
    device = next(D.parameters()).device
    was_training = D.training
    try:
        with torch.no_grad():
            D.eval()
            _logits, features = D(torch.zeros(shape, device=device), torch.zeros([1, D.c_dim], device=device),
                                  return_features=True)
    finally:
        D.train(was_training)
    return int(features.shape[1])


def narrow_features_message(width, z_dim):
    """Why CLR refuses a D with `width` < z_dim features, and what to change."""
    return (f'CLR-GAN predicts z ({z_dim} values) from D\'s {width} features: a linear map from '
            f'{width} features covers at most {width} of the {z_dim} latent directions, so the latent '
            f'loss cannot be learned. Use a D with at least {z_dim} features (StyleGAN2: 16 * min(cbase / 4, cmax) '
            f'>= {z_dim}, e.g. --cmax=32 --cbase=128 or more) or a generator with z_dim <= {width}')


STYLEGAN2_DISCRIMINATORS = ('training.networks.Discriminator', 'stylegan_plus.networks.stylegan2.Discriminator')
STYLEGAN2_EPILOGUE_PIXELS = 4 * 4   # the epilogue's conv output is C x 4 x 4, flattened for the head


def stylegan2_width_from_kwargs(D_kwargs):
    """The head-input width a StyleGAN2 D built from `D_kwargs` will have, or None for other networks.

    The epilogue's conv has as many channels as the 4x4 stage, min(channel_base // 4, channel_max)
    (official defaults 32768 and 512), times 4 * 4 positions.
    """
    if D_kwargs.get('class_name') not in STYLEGAN2_DISCRIMINATORS:
        return None
    return STYLEGAN2_EPILOGUE_PIXELS * stylegan2_channels_from_kwargs(D_kwargs)


def stylegan2_channels_from_kwargs(D_kwargs):
    """Channels at 4x4 (= the epilogue fc width) of a StyleGAN2 D built from `D_kwargs`."""
    return min(int(D_kwargs.get('channel_base', 32768)) // 4, int(D_kwargs.get('channel_max', 512)))


def build_latent_head(D, z_dim):
    """The linear head features -> z [F -> z_dim] for D (see `latent_features` for F).

    Built on CPU from its own seed (the caller's random stream is left untouched). Raises
    ValueError when D has fewer features than z_dim (`narrow_features_message`).
    """
    width = feature_width(D)
    if width < z_dim:
        raise ValueError(narrow_features_message(width, z_dim))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_HEAD_INIT_SEED)
        return torch.nn.Linear(width, z_dim)


@register_loss('clr')
class CLRLoss(StyleGAN2Loss):
    """CLR-GAN: D predicts the z of fakes, G reconstructs reals from D's latent (baseline + 2 terms).

    See the module docstring for the exact reading. Options: --clr-lambda-latent (lambda_1),
    --clr-lambda-rec (lambda_2), --clr-dist (mse|l1).
    """
    options = (
        LossOption('--clr-lambda-latent', 5.0, type=float, metavar='FLOAT',
                   help='CLR-GAN: weight of the latent consistency term dist(phi(G(z)), z) in the D loss'),
        LossOption('--clr-lambda-rec', 0.5, type=float, metavar='FLOAT',
                   help='CLR-GAN: weight of the real reconstruction term dist(G(phi(x)), x) in the G loss'),
        LossOption('--clr-dist', 'mse', choices=DISTANCES,
                   help='CLR-GAN distance: mse = mean squared error (authors\' code), l1 = per-sample L1 (paper)'),
    )

    def __init__(self, device,
                 clr_lambda_latent=5.0,     # lambda_1: latent consistency on fakes, D step
                 clr_lambda_rec=0.5,        # lambda_2: real reconstruction, G step
                 clr_dist='mse',            # 'mse' or 'l1'
                 **kwargs):                 # networks and baseline options
        super().__init__(device, **kwargs)
        if clr_dist not in DISTANCES:
            raise ValueError(f'clr_dist={clr_dist!r} is not supported; expected one of {", ".join(DISTANCES)}')
        self.clr_lambda_latent = float(clr_lambda_latent)
        self.clr_lambda_rec = float(clr_lambda_rec)
        self.clr_dist = clr_dist
        self._sync = True   # the current round's DDP sync flag, for the head's forward
        self.register_network(HEAD_NAME, build_latent_head(self.D_unwrapped, self.z_dim).to(self.device))

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        # Refuse a too narrow StyleGAN2 D before anything is built (other networks: in __init__).
        width = stylegan2_width_from_kwargs(args.get('D_kwargs') or {})
        z_dim = (args.get('G_kwargs') or {}).get('z_dim')
        if width is not None and z_dim is not None and width < z_dim:
            raise LossSpecError(narrow_features_message(width, z_dim))
        super().adjust_training_options(args, loss_kwargs, cfg=cfg, given=given)

    def phases(self, default_phases, opt_kwargs):
        """The baseline's phases; the latent head (if any) trains wherever D trains, with D's optimizer."""
        phases = super().phases(default_phases, opt_kwargs)
        return [dataclasses.replace(spec, modules=(*spec.modules, HEAD_NAME)) if 'D' in spec.modules else spec
                for spec in phases]

    def predict_latent(self, features):
        """phi: D features [N, F] (`latent_features`) -> predicted z [N, z_dim]."""
        return run_module(self.clr_head, self._sync, features)

    def run_D_latent(self, img, c, sync):
        """Augment (if a pipe is set) and run D once: (logits [N, 1], head-input features [N, F])."""
        return latent_features(self.D_unwrapped, self.augment(img), c,
                               call=lambda x, labels, return_features: self.discriminate(
                                   x, labels, sync, return_features=return_features))

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        self._sync = sync
        step = Phase.of(phase)
        if step is not None and step.network == 'D' and step.is_main:
            # The baseline's D step with the latent term on the fake pass (R1 too for Dboth).
            loss_fake = self.backward_D_fake_with_latent(gen_z, gen_c, gain)
            self.backward_D_real(real_img, real_c, sync=sync, gain=gain, loss_fake=loss_fake,
                                 with_r1=(step.is_reg and self.r1_gamma != 0))
            return
        do_rec = step is not None and step.network == 'G' and step.is_main and self.clr_lambda_rec != 0
        # When the reconstruction follows in this round, it does the DDP sync instead.
        super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync=(sync and not do_rec), gain=gain)
        if do_rec:
            self.backward_G_reconstruction(real_img, real_c, sync=sync, gain=gain)

    def backward_D_fake_with_latent(self, gen_z, gen_c, gain):
        """Baseline fake term softplus(D(G(z))) plus lambda_latent * dist(phi(G(z)), z), one D pass.

        Returns the baseline per-sample loss [N, 1] (detached), as the baseline's `backward_D_fake`.
        """
        gen_img, _ws = self.run_G(gen_z, gen_c, sync=False)
        gen_logits, gen_features = self.run_D_latent(gen_img, gen_c, sync=False)
        self.report_scores('fake', gen_logits)
        loss_fake = F.softplus(gen_logits)
        latent = self.latent_consistency(gen_features, gen_z)
        (loss_fake + self.clr_lambda_latent * latent.unsqueeze(1)).mean().mul(gain).backward()
        return loss_fake.detach()

    def latent_consistency(self, features, z):
        """dist(phi(features), z) per sample [N]; reports Loss/clr/latent and Loss/clr/latent_mse."""
        predicted = self.predict_latent(features)
        latent = sample_distance(predicted, z, self.clr_dist)
        training_stats.report('Loss/clr/latent', latent)
        latent_mse = latent if self.clr_dist == 'mse' else sample_distance(predicted, z, 'mse')
        training_stats.report('Loss/clr/latent_mse', latent_mse)
        return latent

    def reconstruct(self, real_img, real_c, sync):
        """G(phi(x)) for reals x: [N, ...] like real_img. phi from the frozen D without gradient."""
        with torch.no_grad():
            _logits, features = self.run_D_latent(real_img, real_c, sync=False)
            latent = self.predict_latent(features)
        return latent_steps.plugin_generator(self, sync=sync)(latent, real_c)

    def backward_G_reconstruction(self, real_img, real_c, sync, gain):
        """lambda_rec * dist(G(phi(x)), x) with x the un-augmented reals; reports Loss/clr/rec."""
        rec = sample_distance(self.reconstruct(real_img, real_c, sync), real_img.detach(), self.clr_dist)
        training_stats.report('Loss/clr/rec', rec)
        rec.mul(self.clr_lambda_rec).mean().mul(gain).backward()
