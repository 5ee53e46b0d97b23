"""`resolve_options`: preset + loss plugin + command line -> one `TrainingOptions`.

This is the one place where the three sources meet. In order: general options, the data set
(opened once, for its resolution, size and labels), the `--cfg` preset with `--cbase`, `--cmax`
and `--gamma` applied to it, length and batch, augmentation, resume, network switches, device,
and last the loss: `--loss` picks the main loss and add-ons, the main loss receives only the
preset's base options it declares (`base_options`), plugin option values are added, and each
selected plugin may adjust the options (`adjust_training_options`).

For the official options and presets the result writes exactly the official training_options.json
(docs/compat.md sections 1.1 and 6) and the official run description. Options of this fork are
written only when used.

Every check that can fail does so here, before a network is built. Failures are `UserError`s
whose message names the bad value and what is accepted; train.py shows them as usage errors.
Metric names are checked by the caller (the metrics layer is not imported below the CLI).
"""

import os

import torch

import dnnlib
from stylegan_plus.losses import registry
from stylegan_plus.losses.declarations import DEFAULT_LOSS, base_options_of
from stylegan_plus.sampling import prior as prior_lib
from torch_utils import misc

from . import configs
from . import lr_schedule as lr_lib
from . import resume as resume_lib
from .choices import RESUME_SPECS, augpipe_specs
from .options import UNSET, TrainingOptions, UserError

# Loop options that count steps or batches: integers >= 1, left out of the options at 1 (official).
LOOP_COUNTS = ('g_steps', 'd_steps', 'g_batch_factor')
# Command-line flags that override a base option of the preset's loss kwargs: name -> (kwarg, what it is).
BASE_FLAGS = {'gamma': ('r1_gamma', 'R1 penalty')}


def _require(condition, message):
    if not condition:
        raise UserError(message)


def resolve_options(cli_values, given=frozenset()):
    """The TrainingOptions of a train.py command line.

    cli_values: dict train.py parameter name -> value, None for an official option not given
      (they behave differently when given); plugin options under their keys (`clr_dist`, ...).
      Missing names count as not given.
    given: names set on the command line (decides which plugin options were chosen on purpose).
    Raises UserError.
    """
    values = dict(cli_values)
    entry = _config_entry(values.get('cfg'))
    options = TrainingOptions()
    desc = []
    _general_options(options, values, points=(entry.data_kind == 'points'))
    _dataset_options(options, desc, values, entry)
    _preset_options(options, desc, values, entry)
    _length_and_batch(options, desc, values)
    _augment_options(options, desc, values, entry)
    _resume_options(options, desc, values)
    _network_options(options, desc, values, entry)
    _device_option(options, values)
    options = _loss_options(options, values, frozenset(given), entry)
    _schedule_options(options, values)
    options.desc = '-'.join(desc)
    return options


def _general_options(options, values, points):
    gpus = 1 if values.get('gpus') is None else values['gpus']
    _require(gpus >= 1 and gpus & (gpus - 1) == 0, f'--gpus={gpus}: must be a power of two (1, 2, 4, 8, ...)')
    options.num_gpus = gpus
    snap = 50 if values.get('snap') is None else values['snap']
    _require(snap >= 1, f'--snap={snap}: must be at least 1')
    options.image_snapshot_ticks = options.network_snapshot_ticks = snap
    metrics = values.get('metrics')
    if metrics is None:
        metrics = [] if points else ['fid50k_full']   # image metrics mean nothing for 2-D points
    options.metrics = list(metrics)
    options.random_seed = 0 if values.get('seed') is None else values['seed']


def _config_entry(cfg):
    try:
        return configs.get_config('auto' if cfg is None else cfg)
    except configs.ConfigError as err:
        raise UserError(f'--cfg: {err}') from None


def default_workers():
    """DataLoader workers when --workers is not given: the official 3, or every usable CPU when the
    machine has fewer (more workers than CPUs only compete for them, and the DataLoader warns)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:      # no CPU affinity on macOS and Windows
        cpus = os.cpu_count() or 1
    return max(1, min(3, cpus))


def _open_dataset(data_kwargs, values, entry):
    """Open the data set once: (resolution, has labels, size, name); UserError naming --data."""
    try:
        dataset = dnnlib.util.construct_class_by_name(**data_kwargs)
        return dataset.resolution, dataset.has_labels, len(dataset), dataset.name
    except IOError as err:
        hint = ''
        if entry.data_kind == 'image' and str(values['data']).lower().endswith(('.npy', '.npz')):
            hint = ' (2-D point data: use --cfg=toy)'
        raise UserError(f'--data: {err}{hint}') from None


def _dataset_options(options, desc, values, entry):
    data = dnnlib.EasyDict(class_name=entry.dataset_class_name, path=values['data'], use_labels=True,
                           max_size=None, xflip=False)
    if values.get('skip_bad'):
        _require(entry.data_kind == 'image', f'--skip-bad: only image folders and zips have files to skip, '
                                             f'not the point data of --cfg={entry.name}')
        data.skip_bad = True    # the training loop and metrics open the same files
    options.training_set_kwargs = data
    options.data_loader_kwargs = dnnlib.EasyDict(pin_memory=True, num_workers=default_workers(), prefetch_factor=2)
    data.resolution, data.use_labels, data.max_size, name = _open_dataset(data, values, entry)
    desc.append(name)

    if values.get('cond'):
        _require(data.use_labels,
                 f'--cond=1: the data set {values["data"]} has no labels (dataset.json "labels" is missing or null)')
        desc.append('cond')
    else:
        data.use_labels = False
    subset = values.get('subset')
    if subset is not None:
        size = data.max_size
        _require(1 <= subset <= size, f'--subset={subset}: must be between 1 and the data set size {size}')
        desc.append(f'subset{subset}')
        if subset < size:
            data.max_size = subset
            data.random_seed = options.random_seed
    if values.get('mirror'):
        desc.append('mirror')
        data.xflip = True


def _channel_targets(options, entry):
    """The kwargs dicts holding channel_base/channel_max of G and D for this preset family."""
    if entry.family == 'stylegan2':
        return [options.G_kwargs.synthesis_kwargs, options.D_kwargs]
    return [kwargs for kwargs in (options.G_kwargs, options.D_kwargs) if 'channel_base' in kwargs]


def _preset_options(options, desc, values, entry):
    try:
        preset = configs.build_config(entry.name, options.training_set_kwargs.resolution, options.num_gpus)
    except configs.ConfigError as err:
        raise UserError(f'--cfg={entry.name}: {err}') from None
    desc.append(preset.desc)
    preset_options = TrainingOptions.from_dict(preset.args)
    for key in preset.args:
        if key in preset_options.extra:
            options.extra[key] = preset_options.extra[key]     # a loop keyword without a field
        else:
            setattr(options, key, getattr(preset_options, key))
    for flag, key in (('cbase', 'channel_base'), ('cmax', 'channel_max')):
        value = values.get(flag)
        if value is None:
            continue
        _require(value >= 1, f'--{flag}={value}: must be at least 1')
        targets = _channel_targets(options, entry)
        _require(targets, f'--{flag}: the {entry.name} networks have no {key} setting')
        for kwargs in targets:
            kwargs[key] = value
        desc.append(f'{flag}{value}')
    gamma = values.get('gamma')
    if gamma is not None:
        _require(gamma >= 0, f'--gamma={gamma:g}: must be non-negative')
        desc.append(f'gamma{gamma:g}')
        options.loss_kwargs.r1_gamma = gamma


def _length_and_batch(options, desc, values):
    if values.get('kimg') is not None:
        _require(values['kimg'] >= 1, f'--kimg={values["kimg"]}: must be at least 1')
        desc.append(f'kimg{values["kimg"]:d}')
        options.total_kimg = values['kimg']
    if values.get('nimg') is not None:
        _require(values['nimg'] >= 1, f'--nimg={values["nimg"]}: must be at least 1')
        desc.append(f'nimg{values["nimg"]:d}')
        options.total_kimg = values['nimg'] / 1000
    batch = values.get('batch')
    if batch is not None:
        _require(batch >= 1 and batch % options.num_gpus == 0,
                 f'--batch={batch}: must be at least 1 and divisible by --gpus={options.num_gpus}')
        desc.append(f'batch{batch}')
        options.batch_size = batch
        options.batch_gpu = batch // options.num_gpus
    batch_gpu = values.get('batch_gpu')
    if batch_gpu is not None:
        _require(batch_gpu >= 1, f'--batch-gpu={batch_gpu}: must be at least 1')
        options.batch_gpu = batch_gpu
    _check_batch_split(options, batch_given=batch is not None, batch_gpu_given=batch_gpu is not None)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_batch_split(options, batch_given, batch_gpu_given):
    """The total batch must split into `num_gpus` processes x whole accumulation rounds of `batch_gpu`."""
    batch, gpus, batch_gpu = options.batch_size, options.num_gpus, options.batch_gpu
    if batch % (gpus * batch_gpu) == 0:
        return
    batch_name = f'--batch={batch}' if batch_given else f'the batch of {batch} images'
    gpu_name = f'--batch-gpu={batch_gpu}' if batch_gpu_given else f'the per-GPU batch of {batch_gpu}'
    hints = []
    if batch % gpus == 0:
        hints.append(f'pick --batch-gpu from {", ".join(str(d) for d in _divisors(batch // gpus))}')
    hints.append(f'or --batch as a multiple of {gpus * batch_gpu}')
    raise UserError(f'{batch_name} is not divisible by --gpus={gpus} x {gpu_name}; {" ".join(hints)}')


def _augment_mode(desc, values, entry):
    aug = values.get('aug')
    points = entry.data_kind == 'points'
    if aug is None:
        return 'noaug' if points else 'ada'
    _require(not (points and aug != 'noaug'), f'--aug={aug}: 2-D point data (--cfg={entry.name}) cannot be '
             f'augmented; use --aug=noaug')
    desc.append(aug)
    return aug


def _augment_options(options, desc, values, entry):
    aug = _augment_mode(desc, values, entry)
    p, target, augpipe = values.get('p'), values.get('target'), values.get('augpipe')
    if aug == 'ada':
        options.ada_target = 0.6
    elif aug == 'fixed':
        _require(p is not None, '--aug=fixed needs the augment probability --p (a number in [0, 1])')
    if p is not None:
        _require(aug == 'fixed', f'--p={p:g} is only allowed with --aug=fixed (got --aug={aug})')
        _require(0 <= p <= 1, f'--p={p:g}: must be between 0 and 1')
        desc.append(f'p{p:g}')
        options.augment_p = p
    if target is not None:
        _require(aug == 'ada', f'--target={target:g} is only allowed with --aug=ada (got --aug={aug})')
        _require(0 <= target <= 1, f'--target={target:g}: must be between 0 and 1')
        desc.append(f'target{target:g}')
        options.ada_target = target
    if augpipe is None:
        augpipe = 'bgc'
    else:
        _require(aug != 'noaug', f'--augpipe={augpipe} cannot be used with --aug=noaug')
        desc.append(augpipe)
    if aug != 'noaug':
        options.augment_kwargs = dnnlib.EasyDict(class_name='stylegan_plus.training.augment.AugmentPipe',
                                                 **augpipe_specs[augpipe])


def _resume_options(options, desc, values):
    resume = values.get('resume')
    if resume is None:
        return
    if resume == 'noresume':
        desc.append('noresume')
        return
    state_file = None
    if resume in RESUME_SPECS:
        desc.append(f'resume{resume}')
        options.resume_pkl = RESUME_SPECS[resume]
    else:
        options.resume_pkl, state_file, state = _resume_files(resume, values.get('outdir'))
        desc.append('resumecustom')
        _take_recorded_options(values, resume_lib.recorded_options(options.resume_pkl, state), options.resume_pkl,
                               full=state_file is not None)
    if state_file is None:
        # Weights only, as the official trainer: fast ADA adaptation, no EMA ramp-up.
        options.ada_kimg = 100
        options.ema_rampup = None
        return
    saved = dict(state.get('options', {}))
    changed = [f'{key} {saved[key]} -> {getattr(options, key)}' for key in ('batch_size', 'num_gpus', 'random_seed')
               if key in saved and saved[key] != getattr(options, key)]
    if changed:
        print(f'Note: continuing {state_file} with other settings ({", ".join(changed)}); '
              f'the run will not repeat the uninterrupted one exactly.')
    options.ada_kimg = saved.get('ada_kimg', 500)
    options.ema_rampup = saved.get('ema_rampup', options.ema_rampup)
    options.resume_state = state_file


def _canonical_option(name, value, source):
    """A RECORDED_OPTIONS value as resolve writes it (UserError naming `source` for a bad one)."""
    if name == 'z_dist':
        return _checked_z_dist(value, source)
    if name == 'lr_schedule':
        return _checked_lr_schedule(value, source)
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
             f'{source}={value!r}: must be an integer >= 1')
    return value


def _take_recorded_options(values, recorded, pkl, full):
    """Make the options the resumed run recorded (`resume.RECORDED_OPTIONS`) the defaults of this one.

    An option not given takes the recorded value (said once); one given with another value is
    refused for the prior of a full resume (G would continue on latents it was not trained on)
    and noted otherwise. The values are put into `values`, so plugins see them as given.
    """
    taken, changed = [], []
    for name, value in recorded.items():
        flag = '--' + name.replace('_', '-')
        value = _canonical_option(name, value, f'{flag} recorded by {pkl}')
        if values.get(name) is None:
            values[name] = value
            taken.append(f'{flag}={value}')
            continue
        wanted = _canonical_option(name, values[name], flag)
        if wanted == value:
            continue
        _require(not (full and name == 'z_dist'),
                 f'{flag}={wanted}: {pkl} was trained on the {value} prior, and a full resume continues that '
                 f'training; leave {flag} out (or give {flag}={value}), or resume weights only from a copy of the '
                 f'pickle without its training state')
        changed.append(f'{flag} {value} -> {wanted}')
    if taken:
        print(f'Note: resuming with {", ".join(taken)}, as {pkl} records (give an option to change it).')
    if changed:
        print(f'Note: {pkl} was trained with other settings ({", ".join(changed)}); the resumed run uses the '
              f'given ones.')


def _resume_accepts():
    return (f'--resume accepts a network pickle (network-snapshot-*.pkl or an official .pkl), a URL, latest, '
            f'noresume or one of {", ".join(RESUME_SPECS)}')


def _resume_files(resume, outdir):
    """(pickle path or URL, its training-state path or None, the state or None) for --resume=`resume`.

    `latest` takes the newest snapshot whose state belongs to it; a local file is checked for being
    a complete network pickle and for a state beside it that belongs to it. Notes go to stdout.
    """
    try:
        if resume == 'latest':
            pkl, state_file, state, notes = resume_lib.choose_latest(outdir)
        elif dnnlib.util.is_url(resume, allow_file_urls=True):
            return resume, None, None
        else:
            _require(os.path.isfile(resume), f'--resume={resume}: file not found; {_resume_accepts()}')
            pkl = resume
            state_file, state, notes = resume_lib.resolve_local(resume)
    except resume_lib.ResumeError as err:
        if resume == 'latest':
            raise UserError(f'--resume=latest: {err}') from None
        raise UserError(f'--resume: {err}. {_resume_accepts()}') from None   # the message names the file
    for note in notes:
        print(note)
    return pkl, state_file, state


def _network_options(options, desc, values, entry):
    stylegan2 = entry.family == 'stylegan2'
    G_synthesis = options.G_kwargs.get('synthesis_kwargs')
    freezed = values.get('freezed')
    if freezed is not None:
        _require(freezed >= 0, f'--freezed={freezed}: must be non-negative')
        _require(stylegan2, f'--freezed needs a StyleGAN2 discriminator (--cfg={entry.name} has none)')
        desc.append(f'freezed{freezed:d}')
        options.D_kwargs.block_kwargs.freeze_layers = freezed
    if values.get('fp32') and stylegan2:
        G_synthesis.num_fp16_res = options.D_kwargs.num_fp16_res = 0
        G_synthesis.conv_clamp = options.D_kwargs.conv_clamp = None
    if values.get('nhwc') and stylegan2:
        G_synthesis.fp16_channels_last = options.D_kwargs.block_kwargs.fp16_channels_last = True
    if values.get('nobench'):
        options.cudnn_benchmark = False
    if values.get('allow_tf32'):
        options.allow_tf32 = True
    workers = values.get('workers')
    if workers is not None:
        _require(workers >= 1, f'--workers={workers}: must be at least 1')
        options.data_loader_kwargs.num_workers = workers


def _device_option(options, values):
    device = values.get('device')
    if device is None:
        return
    _require(device in ('cpu', 'cuda'), f'--device={device}: accepted are cuda and cpu')
    _require(device == 'cpu' or torch.cuda.is_available(),
             '--device=cuda: CUDA is not available on this machine; use --device=cpu')
    options.device = device


def _check_base_flags(spec, main, values):
    """Refuse a command-line base option (e.g. --gamma) that the chosen main loss does not take."""
    accepted = base_options_of(main.cls)
    for flag, (kwarg, meaning) in BASE_FLAGS.items():
        value = values.get(flag)
        if value is not None and kwarg not in accepted:
            takes = ', '.join(accepted) or 'no base option'
            raise UserError(f'--{flag}={value:g}: --loss={spec} has no {meaning} ({main.name} does not take {kwarg}; '
                            f'it takes {takes}); leave --{flag} out')


def _loss_options(options, values, given, entry):
    """Put the loss of `--loss` into the options; returns the (rebuilt) options.

    Plugins adjust a plain dict of the options (`adjust_training_options`), which is read back.
    """
    spec = values.get('loss') or DEFAULT_LOSS
    try:
        main, addons = registry.parse_loss_spec(spec)
    except registry.LossSpecError as err:
        raise UserError(f'--loss: {err}') from None
    _check_base_flags(spec, main, values)
    plugin_keys = {opt.key for _name, opt in registry.all_loss_options()}
    plugin_keys |= {opt.key for entry_ in (main, *addons) for opt in entry_.cls.options}
    option_values = {key: values[key] for key in plugin_keys if key in values}
    loss_given = {name for name in given if name in plugin_keys}
    for flag in LOOP_COUNTS:
        if values.get(flag) is not None:
            _require(values[flag] >= 1, f'--{flag.replace("_", "-")}={values[flag]}: must be at least 1')
            loss_given.add(flag)
            setattr(options, flag, values[flag])
    if values.get('z_dist') is not None:
        options.z_dist = _checked_z_dist(values['z_dist'], '--z-dist')
        loss_given.add('z_dist')
    if values.get('lr_schedule') is not None:
        options.lr_schedule = _checked_lr_schedule(values['lr_schedule'], '--lr-schedule')
        loss_given.add('lr_schedule')
    view = options.loop_kwargs()
    try:
        registry.configure_loss(spec, view, option_values, cfg=entry.name, given=frozenset(loss_given))
    except registry.LossSpecError as err:
        raise UserError(f'--loss: {err}') from None
    options = TrainingOptions.from_dict(view, desc=options.desc)
    _loop_option_defaults(options, spec)
    return options


def _checked_z_dist(value, source):
    try:
        return prior_lib.canonical_z_dist(value)
    except ValueError:
        raise UserError(f'{source}={value}: accepted are {", ".join(prior_lib.Z_DISTS)}') from None


def _checked_lr_schedule(value, source):
    try:
        return lr_lib.canonical_spelling(value) or 'none'
    except lr_lib.ScheduleError as err:
        raise UserError(str(err).replace('--lr-schedule', source, 1)) from None


def _loop_option_defaults(options, spec):
    """Leave out loop options at their official value (one G or D step, G batch factor 1, the normal
    prior, constant rates): the default options JSON stays the official one. Values a plugin set
    are checked too."""
    for flag in LOOP_COUNTS:
        value = getattr(options, flag)
        if value is UNSET:
            continue
        _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f'{flag}={value!r} (set by --loss={spec}): must be an integer >= 1')
        if value == 1:
            setattr(options, flag, UNSET)
    if options.z_dist is not UNSET:
        options.z_dist = _checked_z_dist(options.z_dist, f'z_dist (--loss={spec} or --z-dist)')
        if options.z_dist == prior_lib.DEFAULT_Z_DIST:
            options.z_dist = UNSET
    if options.lr_schedule is not UNSET:
        spelled = _checked_lr_schedule(options.lr_schedule, f'lr_schedule (--loss={spec} or --lr-schedule)')
        options.lr_schedule = UNSET if spelled == 'none' else spelled


def _schedule_options(options, values):
    precision = values.get('precision')
    if precision is not None:   # written only when given: the default options stay the official ones
        _require(precision in misc.PRECISIONS, f'--precision={precision}: accepted are {", ".join(misc.PRECISIONS)}')
        options.precision = precision
    kimg_per_tick = values.get('kimg_per_tick')
    if kimg_per_tick is not None:
        _require(kimg_per_tick > 0, f'--kimg-per-tick={kimg_per_tick:g}: must be positive')
        options.kimg_per_tick = kimg_per_tick
