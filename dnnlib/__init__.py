"""dnnlib: small utilities shared by every tool (official module path kept for pickles)."""

from .util import EasyDict, make_cache_dir_path
