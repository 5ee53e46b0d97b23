"""Official import path `training.networks` (e.g. `class_name='training.networks.Generator'`).

The implementation lives in `stylegan_plus.networks.stylegan2`; this shim only re-exports it,
including the module-level functions that scripts import by name.
"""

from stylegan_plus.networks.stylegan2 import *  # noqa: F401,F403
from stylegan_plus.networks.stylegan2 import __all__  # noqa: F401
from stylegan_plus.networks.stylegan2 import normalize_2nd_moment, modulated_conv2d  # noqa: F401
