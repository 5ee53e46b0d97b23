"""`TrainingOptions`: every setting of one training run, as one typed object.

`resolve.resolve_options` fills it from the preset, the loss plugin and the command line;
`training_loop(**options.loop_kwargs())` trains with it; `to_json()` is training_options.json.

The fields are declared in the order the official train.py writes its keys (docs/compat.md
sections 1.1 and 6). The first group is always written. The second is written only when set:
a field left at `UNSET` is absent from the file and the training loop's default applies.
`extra` holds keys a loss plugin adds (`adjust_training_options`) that are not fields; they
are written at its place in the order. Class paths inside the `*_kwargs` are canonical
(`stylegan_plus.*`); `to_json()` turns them into the official names and `from_dict()` back
(`official_names`).
"""

import copy
import dataclasses
from typing import Any, Dict, List, Optional, Union

import dnnlib

from . import official_names


class UserError(Exception):
    """A command-line value or combination that cannot be used; the message says why and what is accepted."""


class Unset:
    """Type of `UNSET`: the marker of an option that is not written (the loop default applies)."""

    def __repr__(self):
        return 'UNSET'

    def __reduce__(self):
        return 'UNSET'      # pickled by name, so spawned processes see the same object

    def __bool__(self):
        return False


UNSET = Unset()

Kwargs = Dict[str, Any]     # constructor keywords: `class_name` plus the class's arguments
_NOT_WRITTEN = {'json': False}


def _kwargs_field():
    return dataclasses.field(default_factory=dnnlib.EasyDict)


@dataclasses.dataclass(eq=False)
class TrainingOptions:
    """One run's settings: the keyword arguments of `training_loop` plus the run description.

    Always written:
      num_gpus (int >= 1, a power of two); image_snapshot_ticks, network_snapshot_ticks (int or
      None = never); metrics (list of names, may be empty); random_seed (int);
      training_set_kwargs, data_loader_kwargs, G_kwargs, D_kwargs, G_opt_kwargs, D_opt_kwargs,
      loss_kwargs (EasyDicts, `class_name` + arguments); total_kimg (float or int);
      batch_size, batch_gpu (int, images over all processes / per process and round);
      ema_kimg (float); ema_rampup (float or None).
    Written when set (else UNSET): G_reg_interval, D_reg_interval (int or None), ada_target,
      augment_p (float), augment_kwargs (EasyDict), resume_pkl (path or URL), ada_kimg (float),
      resume_state (path), cudnn_benchmark, allow_tf32 (bool), device ('cuda' or 'cpu'),
      g_steps, d_steps, g_batch_factor (int > 1), z_dist ('uniform'; normal is not written), lr_schedule
      ('step:FACTOR:EVERY'), extra (plugin keys), precision ('fp32' or 'bf16'), kimg_per_tick (float),
      run_dir (str; set when the run folder is chosen).
    Not written: desc, the run-name part after the id (`<id>-<desc>`).
    """
    num_gpus: int = 1
    image_snapshot_ticks: Optional[int] = 50
    network_snapshot_ticks: Optional[int] = 50
    metrics: List[str] = dataclasses.field(default_factory=list)
    random_seed: int = 0
    training_set_kwargs: Kwargs = _kwargs_field()
    data_loader_kwargs: Kwargs = _kwargs_field()
    G_kwargs: Kwargs = _kwargs_field()
    D_kwargs: Kwargs = _kwargs_field()
    G_opt_kwargs: Kwargs = _kwargs_field()
    D_opt_kwargs: Kwargs = _kwargs_field()
    loss_kwargs: Kwargs = _kwargs_field()
    total_kimg: float = 25000
    batch_size: int = 4
    batch_gpu: int = 4
    ema_kimg: float = 10
    ema_rampup: Optional[float] = None

    G_reg_interval: Union[int, None, Unset] = UNSET
    D_reg_interval: Union[int, None, Unset] = UNSET
    ada_target: Union[float, Unset] = UNSET
    augment_p: Union[float, Unset] = UNSET
    augment_kwargs: Union[Kwargs, Unset] = UNSET
    resume_pkl: Union[str, Unset] = UNSET
    ada_kimg: Union[float, Unset] = UNSET
    resume_state: Union[str, Unset] = UNSET
    cudnn_benchmark: Union[bool, Unset] = UNSET
    allow_tf32: Union[bool, Unset] = UNSET
    device: Union[str, Unset] = UNSET
    g_steps: Union[int, Unset] = UNSET
    d_steps: Union[int, Unset] = UNSET
    g_batch_factor: Union[int, Unset] = UNSET
    z_dist: Union[str, Unset] = UNSET
    lr_schedule: Union[str, Unset] = UNSET
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: Union[str, Unset] = UNSET
    kimg_per_tick: Union[float, Unset] = UNSET
    run_dir: Union[str, Unset] = UNSET

    desc: str = dataclasses.field(default='', metadata=_NOT_WRITTEN)

    def loop_kwargs(self):
        """The keyword arguments of `training_loop` (minus rank and the callables), in file order.

        Returns a new dnnlib.EasyDict whose nested dicts are this object's own (not copies), with
        canonical class paths.
        """
        kwargs = dnnlib.EasyDict()
        for field in dataclasses.fields(self):
            if not field.metadata.get('json', True):
                continue
            value = getattr(self, field.name)
            if field.name == 'extra':
                kwargs.update(value)
            elif value is not UNSET:
                kwargs[field.name] = value
        return kwargs

    def to_json(self):
        """The training_options.json dict: `loop_kwargs()` with official class names (a copy)."""
        return official_names.to_official(self.loop_kwargs())

    @classmethod
    def from_dict(cls, kwargs, desc=''):
        """Options from a `loop_kwargs()`-style or training_options.json dict (class names made
        canonical; keys that are not fields go to `extra`)."""
        known = {field.name for field in dataclasses.fields(cls)} - {'extra', 'desc'}
        options = cls(desc=desc)
        for key, value in migrate_retired_options(official_names.to_canonical(dict(kwargs))).items():
            if key in known:
                setattr(options, key, value)
            else:
                options.extra[key] = value
        return options

    def summary_lines(self):
        """The human-readable summary printed after the options JSON."""
        data = self.training_set_kwargs
        return [
            f'Output directory:   {self.run_dir}',
            f'Training data:      {data.path}',
            f'Training duration:  {self.total_kimg} kimg',
            f'Number of GPUs:     {self.num_gpus}',
            f'Number of images:   {data.max_size}',
            f'Image resolution:   {data.resolution}',
            f'Conditional model:  {data.use_labels}',
            f'Dataset x-flips:    {data.xflip}',
        ]


# Plugin options that became loop options: loss kwarg -> (loop option, how its value maps). Runs
# written before the change still resume: `migrate_retired_options` moves them on reading.
RETIRED_LOSS_OPTIONS = {
    'dist_prior': ('z_dist', lambda value: 'normal' if value == 'gaussian' else value),
    'loganb_prior': ('z_dist', lambda value: 'normal' if value == 'gaussian' else value),
    'dist_d_steps': ('d_steps', int),
}


def _loss_kwargs_parts(loss_kwargs):
    """The kwargs dicts of a loss: itself, or a composed loss's `main` and `addons`."""
    if not isinstance(loss_kwargs, dict):
        return []
    if isinstance(loss_kwargs.get('main'), dict):
        return [loss_kwargs['main'], *[part for part in loss_kwargs.get('addons', []) if isinstance(part, dict)]]
    return [loss_kwargs]


def migrate_retired_options(kwargs, log=print):
    """Move retired plugin options (`dist_prior`, `loganb_prior`, `dist_d_steps` in `loss_kwargs`)
    to the loop options that replaced them (`z_dist`, `d_steps`), with one notice.

    kwargs: a loop_kwargs / training_options.json dict; returned as a new dict (nested loss kwargs
    copied) whether or not anything moved. A default value maps to nothing (normal prior, one D
    step are the loop's defaults), so the rewritten options are those a new run would write.
    """
    kwargs = dict(kwargs)
    if not isinstance(kwargs.get('loss_kwargs'), dict):
        return kwargs
    loss_kwargs = copy.deepcopy(kwargs['loss_kwargs'])
    moved = []
    for part in _loss_kwargs_parts(loss_kwargs):
        for old_key in [key for key in part if key in RETIRED_LOSS_OPTIONS]:
            new_key, convert = RETIRED_LOSS_OPTIONS[old_key]
            value = convert(part.pop(old_key))
            if new_key not in kwargs:
                kwargs[new_key] = value
            moved.append(f'{old_key}={value!r} -> {new_key}')
    if not moved:
        return kwargs
    kwargs['loss_kwargs'] = loss_kwargs
    if kwargs.get('z_dist') == 'normal':
        del kwargs['z_dist']
    if kwargs.get('d_steps') == 1:
        del kwargs['d_steps']
    log(f'Note: options of an older run were moved to the loop options that replaced them '
        f'({", ".join(moved)}); the run continues unchanged.')
    return kwargs
