"""Official import path `training.dataset` (e.g. `class_name='training.dataset.ImageFolderDataset'`)."""

from stylegan_plus.data.dataset import *  # noqa: F401,F403
from stylegan_plus.data.dataset import __all__  # noqa: F401
