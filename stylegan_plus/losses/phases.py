"""Training phases: what the loop optimises, in which order, how often, with which optimizer.

The default list reproduces the official loop (Gmain/Greg/Dmain/Dreg with lazy regularisation, or
Gboth/Dboth); plugins edit it in `LossPlugin.phases()`. `Phase` names those six official phases, so
plugins test `phase.network` / `phase.is_main` / `phase.is_reg` instead of comparing strings that
depend on the preset. `build_optimizers` and `run_phase` are the loop's side of a phase, kept here
so every loop (and the tests) drive plugins the same way. See docs/plugins.md.
"""

import dataclasses
import enum
from typing import Optional

import dnnlib
from torch_utils import misc


class Phase(str, enum.Enum):
    """The six official phases. A `str` enum: `Phase.G_MAIN == 'Gmain'`, so the official
    `accumulate_gradients(phase='Gmain', ...)` strings keep working in both directions.

    `<net>main` trains on the loss, `<net>reg` on the lazy regulariser (R1 for D, path length for
    G), `<net>both` does both in one step (a preset without lazy regularisation).
    """
    G_MAIN = 'Gmain'
    G_REG = 'Greg'
    G_BOTH = 'Gboth'
    D_MAIN = 'Dmain'
    D_REG = 'Dreg'
    D_BOTH = 'Dboth'

    # Formatting gives the bare name ('Gmain'), as the statistics `Timing/<name>` need.
    __str__ = str.__str__
    __format__ = str.__format__

    @property
    def network(self):
        """'G' or 'D': the network this phase trains."""
        return self.value[0]

    @property
    def is_main(self):
        """True for `<net>main` and `<net>both`: the step computes the network's loss."""
        return self.value[1:] in ('main', 'both')

    @property
    def is_reg(self):
        """True for `<net>reg` and `<net>both`: the step computes the network's regulariser."""
        return self.value[1:] in ('reg', 'both')

    @classmethod
    def of(cls, name):
        """The official phase called `name` (a str or a Phase), or None for any other name
        (a plugin's own phase such as 'AEmain')."""
        try:
            return cls(name)
        except ValueError:
            return None

    @classmethod
    def mains(cls, network):
        """The two phases that compute `network`'s loss: (`<net>main`, `<net>both`)."""
        return tuple(phase for phase in cls if phase.network == network and phase.is_main)


@dataclasses.dataclass
class PhaseSpec:
    """One optimisation phase.

    name:       passed to `accumulate_gradients`; also the `Timing/<name>` statistic. A `Phase`
                for the official phases, a plain str for a plugin's own.
    modules:    names of the networks trained here ('G', 'D' or extra network names); only
                these have `requires_grad` during the phase.
    opt:        optimizer key; phases with the same key share one optimizer.
    opt_kwargs: `construct_class_by_name` kwargs of that optimizer (lazy-regularisation
                adjustment already applied).
    interval:   runs when `batch_idx % interval == 0`, with `gain = interval`.
    repeat:     executions per iteration, each with fresh latents and its own optimizer step.
    batch_factor: latents per execution, in batches: the loop accumulates each execution over
                batch_factor x the usual rounds (fresh latents each, the iteration's reals again)
                at gain / batch_factor, so one step sees the mean over batch_factor x the batch
                (`--g-batch-factor` on the G main phase; 1 elsewhere).
    """
    name: str
    modules: tuple
    opt: str
    opt_kwargs: dict
    interval: int = 1
    repeat: int = 1
    batch_factor: int = 1

    def __post_init__(self):
        self.modules = tuple(self.modules)
        if not self.modules:
            raise ValueError(f'phase {self.name!r} trains no module')
        for field in ('interval', 'repeat', 'batch_factor'):
            value = getattr(self, field)
            if int(value) != value or value < 1:
                raise ValueError(f'phase {self.name!r}: {field} must be an integer >= 1, got {value!r}')

    @property
    def latent_batches(self):
        """Batches of latents the phase consumes per iteration: `repeat` x `batch_factor`."""
        return self.repeat * self.batch_factor


def lazy_regularization_kwargs(opt_kwargs, reg_interval):
    """Optimizer kwargs for a network regularised every `reg_interval` steps.

    The main and regulariser phases share the optimizer, so it takes I+1 steps per I iterations;
    `mb_ratio = I / (I + 1)` rescales lr and each Adam beta (`beta ** mb_ratio`) to compensate.
    Returns a new EasyDict; `reg_interval=None` returns an unchanged copy.
    """
    kwargs = dnnlib.EasyDict(opt_kwargs)
    if reg_interval is None:
        return kwargs
    mb_ratio = reg_interval / (reg_interval + 1)
    kwargs.lr = kwargs.lr * mb_ratio
    if 'betas' in kwargs:
        kwargs.betas = [beta ** mb_ratio for beta in kwargs.betas]
    return kwargs


def network_phases(prefix, modules, opt_kwargs, reg_interval, main_repeat=1, main_batch_factor=1):
    """`[<prefix>main, <prefix>reg]` with interval `reg_interval`, or `[<prefix>both]` for None.

    Both phases share the optimizer key `prefix`; `main_repeat` and `main_batch_factor` are the
    main phase's `repeat` and `batch_factor`.
    """
    if reg_interval is None:
        return [PhaseSpec(Phase(f'{prefix}both'), modules, prefix, dnnlib.EasyDict(opt_kwargs), 1, main_repeat,
                          main_batch_factor)]
    kwargs = lazy_regularization_kwargs(opt_kwargs, reg_interval)
    return [PhaseSpec(Phase(f'{prefix}main'), modules, prefix, kwargs, 1, main_repeat, main_batch_factor),
            PhaseSpec(Phase(f'{prefix}reg'), modules, prefix, kwargs, reg_interval, 1)]


def default_phases(G_opt_kwargs, D_opt_kwargs, G_reg_interval=4, D_reg_interval=16, g_steps=1, d_steps=1,
                   g_batch_factor=1):
    """The official phase list: G phases then D phases; `g_steps` G and `d_steps` D main steps per
    iteration (`--g-steps`, `--d-steps`; each execution draws its own latents), each G main step
    on `g_batch_factor` x the batch (`--g-batch-factor`)."""
    return (network_phases('G', ('G',), G_opt_kwargs, G_reg_interval, main_repeat=g_steps,
                           main_batch_factor=g_batch_factor) +
            network_phases('D', ('D',), D_opt_kwargs, D_reg_interval, main_repeat=d_steps))


def check_phases(phases, module_names):
    """Raise ValueError if a phase names an unknown module, names repeat, or a shared optimizer
    key comes with different modules or kwargs."""
    seen_names = set()
    by_key = {}
    for spec in phases:
        if not isinstance(spec, PhaseSpec):
            raise TypeError(f'phases must be PhaseSpec objects, got {type(spec).__name__}')
        if spec.name in seen_names:
            raise ValueError(f'phase name {spec.name!r} appears twice; use repeat= for repeated steps')
        seen_names.add(spec.name)
        unknown = [m for m in spec.modules if m not in module_names]
        if unknown:
            raise ValueError(f'phase {spec.name!r} trains unknown module(s) {unknown}; known: {sorted(module_names)}')
        first = by_key.setdefault(spec.opt, spec)
        if first.modules != spec.modules or dict(first.opt_kwargs) != dict(spec.opt_kwargs):
            raise ValueError(f'phases {first.name!r} and {spec.name!r} share optimizer {spec.opt!r} '
                             'but differ in modules or optimizer kwargs')


def _unique_parameters(modules):
    params, seen = [], set()
    for module in modules:
        for param in module.parameters():
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return params


def build_optimizers(phases, modules):
    """One optimizer per distinct `opt` key: dict key -> optimizer over its modules' parameters.

    modules: dict name -> (unwrapped) torch.nn.Module covering every name the phases use.
    """
    check_phases(phases, set(modules))
    optimizers = {}
    for spec in phases:
        if spec.opt not in optimizers:
            params = _unique_parameters(modules[name] for name in spec.modules)
            optimizers[spec.opt] = dnnlib.util.construct_class_by_name(params, **spec.opt_kwargs)
    return optimizers


def run_phase(loss, spec, modules, optimizer, rounds, gain: Optional[float] = None):
    """Run one execution of a phase: zero grads, accumulate over rounds, clean grads, step.

    rounds: list of (real_img, real_c, gen_z, gen_c) per accumulation round (batch_gpu slices);
    `sync` is True for the last one. gain defaults to `spec.interval`.
    """
    trained = [modules[name] for name in spec.modules]
    gain = spec.interval if gain is None else gain
    optimizer.zero_grad(set_to_none=True)
    for module in trained:
        module.requires_grad_(True)
    try:
        for round_idx, (real_img, real_c, gen_z, gen_c) in enumerate(rounds):
            loss.accumulate_gradients(phase=spec.name, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                      gen_c=gen_c, sync=(round_idx == len(rounds) - 1), gain=gain)
    finally:
        for module in trained:
            module.requires_grad_(False)
    for param in _unique_parameters(trained):
        if param.grad is not None:
            misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
    optimizer.step()
