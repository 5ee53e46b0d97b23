"""Custom ops with a CUDA kernel and a reference implementation (official module path)."""
