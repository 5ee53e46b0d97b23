"""Loss plugins: the baseline StyleGAN2 loss, the plugin base classes and the `--loss` registry.

A method is one module in this package decorated with `@register_loss(name)`; modules are
imported when the registry is first queried. See docs/plugins.md.

The names below are resolved on first access (PEP 562): importing this package, or its
torch-free modules `declarations` and `catalogue`, must not pull in torch, so that
`train.py --help` stays fast.
"""

import importlib

# Public name -> submodule that defines it.
_EXPORTS = {
    'Loss': 'base', 'LossAddon': 'base', 'LossPlugin': 'base', 'PLUGIN_HOOKS': 'base', 'plugin_hooks': 'base',
    'unwrap_module': 'base',
    'LossOption': 'declarations',
    'Phase': 'phases', 'PhaseSpec': 'phases', 'build_optimizers': 'phases', 'check_phases': 'phases',
    'default_phases': 'phases', 'network_phases': 'phases', 'run_phase': 'phases',
    'LossRegistry': 'registry', 'LossSpecError': 'registry', 'default_registry': 'registry',
    'all_loss_options': 'registry', 'configure_loss': 'registry', 'format_loss_list': 'registry',
    'get_loss': 'registry', 'list_losses': 'registry', 'parse_loss_spec': 'registry', 'register_loss': 'registry',
    'StyleGAN2Loss': 'stylegan2', 'ComposedLoss': 'compose',
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{module_name}'), name)
    globals()[name] = value     # later lookups skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
