"""Official import path `training.training_loop` (`training_loop.training_loop(rank=..., **options)`).

The implementation lives in `stylegan_plus.training.training_loop`. Metrics arrive as a callable:
callers that keep a non-empty `metrics` list pass `metrics_fn=metrics.training_hook.evaluate`.
"""

from stylegan_plus.training.training_loop import training_loop  # noqa: F401

__all__ = ['training_loop']
