"""Official import path `training.loss` (e.g. `class_name='training.loss.StyleGAN2Loss'`).

The implementation lives in `stylegan_plus.losses`; this shim only re-exports it.
"""

from stylegan_plus.losses.base import Loss  # noqa: F401
from stylegan_plus.losses.stylegan2 import StyleGAN2Loss  # noqa: F401

__all__ = ['Loss', 'StyleGAN2Loss']
