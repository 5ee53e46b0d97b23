"""Quality metrics (official module path)."""
