"""Loss classes the toy benchmarks name by dotted path: `--loss=benchmarks.common.toy_losses.NAME`.

train.py has no options for the widths, depth, activation slope or Adam betas of the `--cfg=toy`
MLPs, and no "BiGAN" or "GAN with an idle encoder" loss. A plugin may edit the training options
before they are written (`LossPlugin.adjust_training_options`), so each class here is an
unchanged project plugin plus a fixed set of option overrides (recorded in
training_options.json, so a run stays reproducible from that file), or, for the baselines of
Q1, a plugin with one step left out. The losses themselves are the project's own.
"""

from stylegan_plus.losses.dist import DistGANLoss
from stylegan_plus.losses.logan_b import S_PHASE, LOGANBLoss
from stylegan_plus.losses.rf import RFLoss
from stylegan_plus.losses.stylegan2 import StyleGAN2Loss

#----------------------------------------------------------------------------


def set_dotted(tree, dotted_key, value):
    """`tree['a']['b'] = value` for `dotted_key='a.b'` (nested dicts must exist)."""
    *parents, leaf = dotted_key.split('.')
    node = tree
    for key in parents:
        if key not in node:
            raise KeyError(f'training option {dotted_key!r}: no {key!r} in {sorted(node)}')
        node = node[key]
    node[leaf] = value


class ToyOptionOverrides:
    """Mixin: after the plugin's own adjustments, write `option_overrides` into the training options.

    option_overrides: dict dotted option key (e.g. 'G_kwargs.hidden_features') -> value.
    """
    option_overrides = {}

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        super().adjust_training_options(args, loss_kwargs, cfg=cfg, given=given)
        if cfg != 'toy':
            raise ValueError(f'{cls.__name__} sets the 2-D MLP networks of --cfg=toy; got --cfg={cfg}')
        for key, value in cls.option_overrides.items():
            set_dotted(args, key, list(value) if isinstance(value, (list, tuple)) else value)

#----------------------------------------------------------------------------
# Q1: the LOGAN-B paper's 2-D networks.

Q1_NETWORKS = {
    'G_kwargs.z_dim': 5,                    # G: 5-10-10-2
    'G_kwargs.hidden_features': [10, 10],
    'D_kwargs.hidden_features': [10, 10],   # D (and E, built as a copy of D): 2-10-10-*
    'D_kwargs.lrelu_slope': 0.1,
}


def _without_phase(phases, name):
    return [spec for spec in phases if spec.name != name]


class LoganBRing(ToyOptionOverrides, LOGANBLoss):
    """LOGAN-B (`--loss=logan-b`, unchanged) with the paper's 2-D networks (z_dim 5, widths 10-10, D slope 0.1)
    and the notebook's Adam betas (0.9, 0.999)."""
    option_overrides = dict(Q1_NETWORKS, **{'G_opt_kwargs.betas': [0.9, 0.999], 'D_opt_kwargs.betas': [0.9, 0.999]})


class BiGANRing(LoganBRing):
    """BiGAN: LOGAN-B without the surrogate reconstruction step (phase Smain left out)."""

    def phases(self, default_phases, opt_kwargs):
        return _without_phase(super().phases(default_phases, opt_kwargs), S_PHASE)


class GANRing(BiGANRing):
    """GAN: D ignores z (plain logistic GAN), so the encoder gets zero gradients and stays as initialised.

    The paper's GAN has an "ad hoc" encoder that "does not affect training": E is kept (same
    phase, same optimizer), but the joint decision is D's own logit, with the z branch in the
    graph at weight 0.
    """

    def decision(self, img, c, z=None, sync=False):
        logits = self.run_D(img, c, sync)
        # The joint D stays in the graph at weight 0 (no gradient reaches E through it).
        return logits + super().decision(img, c, z=z, sync=sync) * 0

#----------------------------------------------------------------------------
# Q2: the Dist-GAN paper's 2-D settings (ReLU MLPs 128-128-128, Adam beta1 0.8), and its authors' 2-D
# code's sigmoid at G's output (their data are scaled into [0, 1]: benchmarks/q2_dist_grid.py).

Q2_SETTINGS = {
    'G_kwargs.output_activation': 'sigmoid',
    'G_kwargs.lrelu_slope': 0.0,
    'D_kwargs.lrelu_slope': 0.0,
    'G_opt_kwargs.betas': [0.8, 0.999],
    'D_opt_kwargs.betas': [0.8, 0.999],
}


class DistGrid(ToyOptionOverrides, DistGANLoss):
    """Dist-GAN (`--loss=dist`, unchanged) with ReLU networks and Adam beta1 = 0.8 (the paper's 2-D settings)
    and a sigmoid at G's output (the authors' 2-D code)."""
    option_overrides = Q2_SETTINGS


class GANGrid(ToyOptionOverrides, StyleGAN2Loss):
    """The baseline GAN (`--loss=stylegan2` on --cfg=toy) with the same networks and Adam settings as DistGrid."""
    option_overrides = Q2_SETTINGS

#----------------------------------------------------------------------------
# Q3: the AdvLatGAN appendix networks (MLP G and D with hidden widths 100-200-100).

Q3_NETWORKS = {
    'G_kwargs.hidden_features': [100, 200, 100],
    'D_kwargs.hidden_features': [100, 200, 100],
}


class GANAdvLatToy(ToyOptionOverrides, StyleGAN2Loss):
    """The baseline GAN with MLPs 100-200-100 (the toy preset's leaky ReLU, slope 0.2); add `+advlat-qua`
    for AdvLatGAN-qua."""
    option_overrides = Q3_NETWORKS


class GANAdvLatToyReLU(GANAdvLatToy):
    """GANAdvLatToy with plain ReLU in G and D, the activation the AdvLatGAN appendix names for its 2-D MLPs."""
    option_overrides = dict(Q3_NETWORKS, **{'G_kwargs.lrelu_slope': 0.0, 'D_kwargs.lrelu_slope': 0.0})

#----------------------------------------------------------------------------
# Q5: Metz et al.'s 8-Gaussian networks and optimiser (unrolled GAN, appendix A), a setting where a
# plain GAN collapses: G 2 x 128 ReLU, D 1 x 128 ReLU, z_dim 256, Adam beta1 0.5 (the toy
# preset's), lr 1e-3 for G and 1e-4 for D.

Q5_METZ = {
    'G_kwargs.z_dim': 256,
    'G_kwargs.hidden_features': [128, 128],
    'G_kwargs.lrelu_slope': 0.0,
    'D_kwargs.hidden_features': [128],
    'D_kwargs.lrelu_slope': 0.0,
    'G_opt_kwargs.lr': 1e-3,
    'D_opt_kwargs.lr': 1e-4,
}
# The same networks with the RFGAN paper's own optimiser (its DCGAN baseline code: Adam 2e-4 for G and D).
Q5_METZ_RFOPT = dict(Q5_METZ, **{'G_opt_kwargs.lr': 2e-4, 'D_opt_kwargs.lr': 2e-4})


class GANMetzRing(ToyOptionOverrides, StyleGAN2Loss):
    """The baseline GAN (`--loss=stylegan2` on --cfg=toy) with Metz et al.'s 2-D networks and learning rates."""
    option_overrides = Q5_METZ


class RFMetzRing(ToyOptionOverrides, RFLoss):
    """RFGAN (`--loss=rf`, unchanged) with Metz et al.'s networks and learning rates (its AE: E like D,
    decoder like G)."""
    option_overrides = Q5_METZ


class GANMetzRingRFOpt(ToyOptionOverrides, StyleGAN2Loss):
    """GANMetzRing with Adam 2e-4 for both networks (the RFGAN paper's baseline optimiser)."""
    option_overrides = Q5_METZ_RFOPT


class RFMetzRingRFOpt(ToyOptionOverrides, RFLoss):
    """RFMetzRing with Adam 2e-4 for both networks (the RFGAN paper's baseline optimiser)."""
    option_overrides = Q5_METZ_RFOPT

#----------------------------------------------------------------------------


def describe_overrides(cls):
    """{dotted key: value} that class `cls` writes into the training options (for results.json)."""
    return {key: (list(value) if isinstance(value, (list, tuple)) else value)
            for key, value in getattr(cls, 'option_overrides', {}).items()}

