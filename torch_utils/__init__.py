"""torch_utils: persistence, misc helpers, training statistics and custom ops (official module path)."""
