"""Loss classes for a StyleGAN2 whose latent width equals D's feature width (`--loss=<this module>.NAME`).

Use as `--loss=benchmarks.common.matched_latent.CLR` (or `.Baseline`), from the repository root.

CLR-GAN's authors read the predicted z straight off D's epilogue fc output, which works because
every config they ship has z_dim = 512 = the fc width. A CPU-sized StyleGAN2 (`--cbase=1024
--cmax=64`) has a 64-wide fc, and train.py has no option for z_dim or w_dim, so these classes set
`G_kwargs.z_dim = G_kwargs.w_dim = min(cbase / 4, cmax)` in the training options (recorded in
training_options.json, so the run is reproducible from it): the generator has the authors'
proportions (z_dim = w_dim = D's fc width). The project's CLR reads z through a linear head on
the epilogue's conv output (stylegan_plus/losses/clr.py says why). Q6 gives the baseline the same
generator, so CLR and the baseline differ in the loss alone. The losses themselves are the
project's, unchanged.
"""

from stylegan_plus.losses.clr import CLRLoss, stylegan2_channels_from_kwargs, stylegan2_width_from_kwargs
from stylegan_plus.losses.registry import LossSpecError
from stylegan_plus.losses.stylegan2 import StyleGAN2Loss


class MatchedLatentWidth:
    """Mixin: before the plugin's own adjustments, set G's z_dim and w_dim to D's epilogue fc width."""

    @classmethod
    def adjust_training_options(cls, args, loss_kwargs, *, cfg, given):
        if stylegan2_width_from_kwargs(args.D_kwargs) is None:
            raise LossSpecError(f'{cls.__name__} sizes a StyleGAN2 generator from its discriminator; '
                                f'--cfg={cfg} builds {args.D_kwargs.get("class_name")}')
        width = stylegan2_channels_from_kwargs(args.D_kwargs)
        args.G_kwargs.z_dim = width
        args.G_kwargs.w_dim = width
        super().adjust_training_options(args, loss_kwargs, cfg=cfg, given=given)


class Baseline(MatchedLatentWidth, StyleGAN2Loss):
    """The baseline loss (`--loss=stylegan2`) on a StyleGAN2 with z_dim = w_dim = D's fc width."""


class CLR(MatchedLatentWidth, CLRLoss):
    """CLR-GAN (`--loss=clr`) on a StyleGAN2 with z_dim = w_dim = D's fc width (the authors' proportions)."""
