"""Loss plugins: the baseline StyleGAN2 loss, the plugin base classes and the `--loss` registry.

A method is one module in this package decorated with `@register_loss(name)`; modules are
imported when the registry is first queried. See docs/plugins.md.
"""

from .base import Loss, LossAddon, LossOption, LossPlugin, plugin_hooks, unwrap_module
from .phases import PhaseSpec, build_optimizers, check_phases, default_phases, network_phases, run_phase
from .registry import (LossRegistry, LossSpecError, all_loss_options, configure_loss, default_registry, format_loss_list,
                       get_loss, list_losses, parse_loss_spec, register_loss)
from .stylegan2 import StyleGAN2Loss
from .compose import ComposedLoss

__all__ = [
    'Loss', 'LossAddon', 'LossOption', 'LossPlugin', 'plugin_hooks', 'unwrap_module',
    'PhaseSpec', 'build_optimizers', 'check_phases', 'default_phases', 'network_phases', 'run_phase',
    'LossRegistry', 'LossSpecError', 'default_registry', 'all_loss_options', 'configure_loss', 'format_loss_list',
    'get_loss', 'list_losses', 'parse_loss_spec', 'register_loss',
    'StyleGAN2Loss', 'ComposedLoss',
]
