"""RFGAN (`--loss=rf`): D decides on its own features plus a frozen autoencoder's representative features.

Reading (docs/methods.md, paper 001):

- A denoising autoencoder `rf_ae` (`stylegan_plus.networks.encoders.RFAutoencoder`: encoder with
  D's architecture, decoder with G's, code of z_dim values) is trained on real data alone:
  `mean((AE(x + n) - x)^2)` with n ~ N(0, sigma^2), sigma = `--rf-ae-noise` (0.1 in [-1, 1] pixel
  units). Then it is frozen; its decoder is not used again.
- The decision: `logit = fc([h_E(x'), h_D(x')])` (+ label projection), x' the image after the
  augment pipe, h_E the frozen encoder's penultimate features (the output of its last
  convolution stage, as in the paper), h_D D's penultimate features; `fc` is the extra network
  `rf_head`, trained with D by D's optimizer. D's own output layer is not used (kept in the graph
  with weight 0); this fused logit is the method's `decision` (the baseline's losses and latent
  mining use it; `stylegan_plus.sampling.decisions.snapshot_decision` rebuilds it from a snapshot). Gradients
  reach the input through E (G must fool the joint decision; R1 is taken through it), never E's
  weights: E is in no phase after pre-training.
- The GAN losses and regularisers are the baseline's (`decision` is the only change).
- `--g-steps=2` with `--cfg=dcgan` (the paper's DCGAN schedule), unless --g-steps is given.

Pre-training happens inside the run, through the phase `RFae` (first in each iteration): until
`rf_ae_nimg` reaches `--rf-ae-kimg` thousand real images it trains `rf_ae` on the iteration's real
batch (its own Adam with G's settings) while the G and D phases do nothing, so the first
`--rf-ae-kimg` of `--kimg` are spent there. Then the AE is frozen and saved as `rf-ae.pkl` in
the run directory (`self.run_dir`, set by the loop); it is also in every network snapshot (key
`rf_ae`), so a resumed run never pre-trains again. `--rf-ae=PATH` (an `rf-ae.pkl` or any
snapshot with an `rf_ae` key) skips pre-training; the `RFae` phase is then left out.

Statistics: `Loss/rf/ae` (denoising MSE per sample, during pre-training), plus the baseline's.
"""

import copy
import dataclasses
import os
import pickle

import torch

import dnnlib
from torch_utils import misc
from torch_utils import training_stats

from stylegan_plus.networks.encoders import build_autoencoder, build_fusion_head, feature_dim
from stylegan_plus.sampling.decisions import fused_logits

from .base import LossOption, unwrap_module
from .common import extra_opt_kwargs, sample_distance
from .phases import PhaseSpec
from .registry import LossSpecError, register_loss
from .stylegan2 import StyleGAN2Loss

AE_NAME = 'rf_ae'
HEAD_NAME = 'rf_head'
AE_FILE = 'rf-ae.pkl'
AE_PHASE = 'RFae'   # this plugin's own phase: autoencoder pre-training
AE_SEED = 0     # own init seeds: building the extra networks leaves the run's random stream alone
HEAD_SEED = 1

#----------------------------------------------------------------------------

def denoising_loss(ae, real_img, noise_std):
    """Per-sample mean squared error [N] of AE(x + N(0, noise_std^2)) against x (float32)."""
    noisy = real_img + torch.randn_like(real_img) * noise_std
    return sample_distance(ae(noisy), real_img, 'mse')


def load_autoencoder(path):
    """The module under key `rf_ae` of a pickle (an rf-ae.pkl or a network snapshot)."""
    with dnnlib.util.open_url(path) as f:
        data = pickle.load(f)
    module = data.get(AE_NAME) if isinstance(data, dict) else None
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f'--rf-ae={path}: the pickle has no "{AE_NAME}" network '
                         f'(expected an {AE_FILE} or a snapshot of an --loss=rf run)')
    return module


def _world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0

#----------------------------------------------------------------------------

@register_loss('rf')
class RFLoss(StyleGAN2Loss):
    """RFGAN: a frozen pre-trained autoencoder's features join D's in the real/fake decision (baseline losses).

    See the module docstring for the exact reading. Extra networks: `rf_ae` (the autoencoder),
    `rf_head` (the joint output layer). Phases: RFae (pre-training), then the baseline's.
    """
    options = (
        LossOption('--rf-ae', None, type=str, metavar='PKL',
                   help=f'RFGAN: pre-trained autoencoder ({AE_FILE} of an earlier run, or a snapshot with an '
                        f'{AE_NAME} network); default: pre-train one at the start of the run'),
        LossOption('--rf-ae-kimg', 200.0, type=float, metavar='KIMG',
                   help='RFGAN: autoencoder pre-training length in thousands of real images (counts toward --kimg)'),
        LossOption('--rf-ae-noise', 0.1, type=float, metavar='STD',
                   help='RFGAN: std of the Gaussian input noise of the denoising autoencoder ([-1, 1] pixel units)'),
    )
    state_attrs = StyleGAN2Loss.state_attrs + ('rf_ae_nimg',)
    presets = {'dcgan': dict(loop=dict(g_steps=2))}    # the paper's DCGAN schedule: 2 G steps per D step

    def __init__(self, device,
                 rf_ae=None,                # path of a pre-trained autoencoder, or None to pre-train
                 rf_ae_kimg=200.0,          # pre-training length (kimg of real images)
                 rf_ae_noise=0.1,           # denoising noise std
                 **kwargs):                 # networks and baseline options
        super().__init__(device, **kwargs)
        if not rf_ae_kimg >= 0 or not rf_ae_noise >= 0:
            raise ValueError(f'rf_ae_kimg={rf_ae_kimg!r} and rf_ae_noise={rf_ae_noise!r} must be numbers >= 0')
        self.rf_ae_path = rf_ae
        self.rf_ae_kimg = float(rf_ae_kimg)
        self.rf_ae_noise = float(rf_ae_noise)
        self.rf_ae_nimg = torch.zeros([], dtype=torch.int64, device=self.device)   # real images seen by the AE
        self._frozen = False
        D = self.D_unwrapped
        decoder_nets = [unwrap_module(self.G_mapping), unwrap_module(self.G_synthesis)] if self.has_mapping \
            else [unwrap_module(self.G)]
        ae = build_autoencoder(D, decoder_nets, self.z_dim, seed=AE_SEED)
        if rf_ae:
            try:
                misc.copy_params_and_buffers(load_autoencoder(rf_ae), ae, require_all=True)
            except (KeyError, RuntimeError) as err:
                raise ValueError(f'--rf-ae={rf_ae}: the autoencoder does not fit this run\'s G and D '
                                 f'(it must come from a run with the same networks): {err}') from None
        self.register_network(AE_NAME, ae.to(self.device).train())
        encoder_width = feature_dim(ae.encoder.net)
        head = build_fusion_head(D, encoder_width, fuse='concat', embed_side=False, seed=HEAD_SEED)
        self.register_network(HEAD_NAME, head.to(self.device))
        if self.pretraining_done():
            self._freeze(save=False)

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        """Refuse a missing `--rf-ae` file before anything is built; then the presets."""
        path = loss_kwargs.get('rf_ae')
        if path and not dnnlib.util.is_url(path) and not os.path.isfile(path):
            raise LossSpecError(f'--rf-ae={path}: no such file')
        super().adjust_training_options(args, loss_kwargs, cfg=cfg, given=given)

    def phases(self, default_phases, opt_kwargs):
        """RFae (unless an AE was given), then the baseline's phases; rf_head trains wherever D trains."""
        phases = [dataclasses.replace(spec, modules=(*spec.modules, HEAD_NAME)) if 'D' in spec.modules else spec
                  for spec in default_phases]
        if self.rf_ae_path or self.rf_ae_kimg == 0:
            return phases
        # Kept after pre-training (it then does nothing), so resumed runs build the same optimizers.
        ae_phase = PhaseSpec(AE_PHASE, modules=(AE_NAME,), opt=AE_NAME, opt_kwargs=extra_opt_kwargs(opt_kwargs.G))
        return [ae_phase] + phases

    # --- Pre-training -----------------------------------------------------------------------------

    def pretraining_done(self):
        return bool(self.rf_ae_path) or int(self.rf_ae_nimg) >= self.rf_ae_kimg * 1000

    def _freeze(self, save):
        unwrap_module(self.rf_ae).eval()
        self._frozen = True
        if save and _world()[1] == 0:
            self._save_autoencoder()

    def _save_autoencoder(self):
        run_dir = self.run_dir
        if run_dir is None:
            print(f'RFGAN: autoencoder pre-trained; no run folder known, it is saved in the network snapshots '
                  f'(key "{AE_NAME}").')
            return
        path = os.path.join(run_dir, AE_FILE)
        ae = unwrap_module(self.rf_ae)
        frozen = copy.deepcopy(ae).eval().requires_grad_(False).cpu()
        data = dict(rf_ae=frozen, rf_ae_kimg=self.rf_ae_kimg, rf_ae_noise=self.rf_ae_noise)
        with open(path + '.tmp', 'wb') as f:
            pickle.dump(data, f)
        os.replace(path + '.tmp', path)
        print(f'RFGAN: autoencoder pre-trained on {int(self.rf_ae_nimg)} images, saved as {path} '
              f'(reuse with --rf-ae={path}).')

    def backward_autoencoder(self, real_img, gain):
        """One round of denoising-AE training on reals; counts the images seen (all processes)."""
        world, _rank = _world()
        loss = denoising_loss(self.rf_ae, real_img.detach(), self.rf_ae_noise)
        training_stats.report('Loss/rf/ae', loss)
        loss.mean().mul(gain).backward()
        self.rf_ae_nimg += real_img.shape[0] * world

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        if phase == AE_PHASE:
            if not self.pretraining_done():
                self.backward_autoencoder(real_img, gain)
            return
        if not self.pretraining_done():
            return      # G and D wait for the encoder
        if not self._frozen:
            self._freeze(save=True)
        super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if self.pretraining_done() and not self._frozen:
            self._freeze(save=False)

    # --- The joint discriminator ------------------------------------------------------------------

    def decision(self, img, c, z=None, sync=False):
        """Augment, then logit = rf_head([h_D(x'), h_E(x')], c): [N, 1]; z is not used.

        The baseline's losses and latent mining use this fused logit; the same function
        (`stylegan_plus.sampling.decisions.fused_logits`) computes it from a snapshot's networks.
        """
        del z
        img = self.augment(img)
        encoder = unwrap_module(self.rf_ae).encoder
        with misc.ddp_sync(self.D, sync), misc.ddp_sync(self.rf_head, sync):
            joint, logits, _features = fused_logits(self.D, encoder, self.rf_head, img, c)
        return joint + logits * 0

#----------------------------------------------------------------------------
