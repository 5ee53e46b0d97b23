"""Official import path of the augmentation pipeline (`training.augment.AugmentPipe`).

The implementation lives in `stylegan_plus.training.augment`; its source is what snapshot
pickles embed.
"""

from stylegan_plus.training.augment import AugmentPipe  # noqa: F401
from stylegan_plus.training.choices import augpipe_specs  # noqa: F401  (torch-free table)

__all__ = ['AugmentPipe', 'augpipe_specs']
