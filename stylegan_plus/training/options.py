"""Command-line values -> the training-options dict written to `training_options.json`.

For the official options and presets the dict has exactly the keys, values and key order of the
official train.py (COMPAT.md sections 1.1 and 6), and the run description follows the same rules.
Options of this fork only add keys when they are used: `device` (when given), `g_steps` (when not
1), `kimg_per_tick` (when given), `resume_state` (a full resume), and the loss plugin's keys under
`loss_kwargs`.

Every check that can fail does so here, before a network is built: bad values, wrong
combinations, unknown metrics or losses, a data set the preset cannot use, an outdir that cannot
be written. Failures are `UserError`s, which train.py reports as click usage errors (exit code 2).
"""

import json
import os
import re
import shutil

import torch

import dnnlib
from stylegan_plus.losses.registry import LossSpecError, configure_loss
from stylegan_plus.training import configs
from stylegan_plus.training.choices import AUG_MODES, RESUME_SPECS, augpipe_specs  # noqa: F401
from torch_utils import misc

from . import metrics_hook, resume as resume_lib, snapshots


class UserError(Exception):
    """A command-line value or combination that cannot be used; the message says why and what is accepted."""


def _require(condition, message):
    if not condition:
        raise UserError(message)


def setup_training_options(values, given=frozenset()):
    """Build (run description, options EasyDict) from the CLI values.

    values: dict of every train.py parameter (None = not given, for the official options that
    behave differently when given); given: names of the parameters set on the command line.
    """
    args = dnnlib.EasyDict()
    desc = []
    entry = _config_entry(values['cfg'])
    _general_options(args, values, points=(entry.data_kind == 'points'))
    _dataset_options(args, desc, values, entry)
    _preset_options(args, desc, values, entry)
    _length_and_batch(args, desc, values)
    _augment_options(args, desc, values, entry)
    _resume_options(args, desc, values)
    _network_options(args, desc, values, entry)
    _fork_options(args, values, entry, given)
    return '-'.join(desc), args


def _general_options(args, values, points):
    gpus = 1 if values['gpus'] is None else values['gpus']
    _require(gpus >= 1 and gpus & (gpus - 1) == 0, f'--gpus={gpus}: must be a power of two (1, 2, 4, 8, ...)')
    args.num_gpus = gpus

    snap = 50 if values['snap'] is None else values['snap']
    _require(snap >= 1, f'--snap={snap}: must be at least 1')
    args.image_snapshot_ticks = snap
    args.network_snapshot_ticks = snap

    metrics = values['metrics']
    if metrics is None:
        metrics = [] if points else ['fid50k_full']   # image metrics mean nothing for 2-D points
    try:
        metrics_hook.check_metrics(metrics)
    except Exception as err: # pylint: disable=broad-except
        raise UserError(f'--metrics={",".join(metrics)}: {err}') from None
    args.metrics = metrics
    args.random_seed = 0 if values['seed'] is None else values['seed']


def _config_entry(cfg):
    try:
        return configs.get_config('auto' if cfg is None else cfg)
    except configs.ConfigError as err:
        raise UserError(f'--cfg: {err}') from None


def _dataset_options(args, desc, values, entry):
    args.training_set_kwargs = dnnlib.EasyDict(class_name=entry.dataset_class_name, path=values['data'],
                                               use_labels=True, max_size=None, xflip=False)
    if values.get('skip_bad'):
        _require(entry.data_kind == 'image', f'--skip-bad: only image folders and zips have files to skip, '
                                             f'not the point data of --cfg={entry.name}')
        args.training_set_kwargs.skip_bad = True    # the training loop and metrics open the same files
    args.data_loader_kwargs = dnnlib.EasyDict(pin_memory=True, num_workers=default_workers(), prefetch_factor=2)
    try:
        dataset = dnnlib.util.construct_class_by_name(**args.training_set_kwargs)
        args.training_set_kwargs.resolution = dataset.resolution
        args.training_set_kwargs.use_labels = dataset.has_labels
        args.training_set_kwargs.max_size = len(dataset)
        desc.append(dataset.name)
        del dataset
    except IOError as err:
        hint = ''
        if entry.data_kind == 'image' and str(values['data']).lower().endswith(('.npy', '.npz')):
            hint = ' (2-D point data: use --cfg=toy)'
        raise UserError(f'--data: {err}{hint}') from None

    if values['cond']:
        _require(args.training_set_kwargs.use_labels,
                 f'--cond=1: the data set {values["data"]} has no labels (dataset.json "labels" is missing or null)')
        desc.append('cond')
    else:
        args.training_set_kwargs.use_labels = False

    subset = values['subset']
    if subset is not None:
        size = args.training_set_kwargs.max_size
        _require(1 <= subset <= size, f'--subset={subset}: must be between 1 and the data set size {size}')
        desc.append(f'subset{subset}')
        if subset < size:
            args.training_set_kwargs.max_size = subset
            args.training_set_kwargs.random_seed = args.random_seed

    if values['mirror']:
        desc.append('mirror')
        args.training_set_kwargs.xflip = True


def _preset_options(args, desc, values, entry):
    try:
        preset = configs.build_config(entry.name, args.training_set_kwargs.resolution, args.num_gpus)
    except configs.ConfigError as err:
        raise UserError(f'--cfg={entry.name}: {err}') from None
    desc.append(preset.desc)
    args.update(preset.args)
    for flag, key in (('cbase', 'channel_base'), ('cmax', 'channel_max')):
        value = values.get(flag)
        if value is None:
            continue
        _require(value >= 1, f'--{flag}={value}: must be at least 1')
        targets = _channel_targets(args, entry)
        _require(targets, f'--{flag}: the {entry.name} networks have no {key} setting')
        for kwargs in targets:
            kwargs[key] = value
        desc.append(f'{flag}{value}')
    if values['gamma'] is not None:
        _require(values['gamma'] >= 0, f'--gamma={values["gamma"]:g}: must be non-negative')
        desc.append(f'gamma{values["gamma"]:g}')
        args.loss_kwargs.r1_gamma = values['gamma']


def _channel_targets(args, entry):
    """The kwargs dicts holding channel_base/channel_max of G and D for this preset family."""
    if entry.family == 'stylegan2':
        return [args.G_kwargs.synthesis_kwargs, args.D_kwargs]
    return [kwargs for kwargs in (args.G_kwargs, args.D_kwargs) if 'channel_base' in kwargs]


def _length_and_batch(args, desc, values):
    if values['kimg'] is not None:
        _require(values['kimg'] >= 1, f'--kimg={values["kimg"]}: must be at least 1')
        desc.append(f'kimg{values["kimg"]:d}')
        args.total_kimg = values['kimg']
    if values.get('nimg') is not None:
        _require(values['nimg'] >= 1, f'--nimg={values["nimg"]}: must be at least 1')
        desc.append(f'nimg{values["nimg"]:d}')
        args.total_kimg = values['nimg'] / 1000
    batch = values['batch']
    if batch is not None:
        _require(batch >= 1 and batch % args.num_gpus == 0,
                 f'--batch={batch}: must be at least 1 and divisible by --gpus={args.num_gpus}')
        desc.append(f'batch{batch}')
        args.batch_size = batch
        args.batch_gpu = batch // args.num_gpus
    batch_gpu = values.get('batch_gpu')
    if batch_gpu is not None:
        _require(batch_gpu >= 1, f'--batch-gpu={batch_gpu}: must be at least 1')
        args.batch_gpu = batch_gpu
    _check_batch_split(args, batch_given=batch is not None, batch_gpu_given=batch_gpu is not None)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_batch_split(args, batch_given, batch_gpu_given):
    """The total batch must split into `num_gpus` processes x whole accumulation rounds of `batch_gpu`."""
    batch, gpus, batch_gpu = args.batch_size, args.num_gpus, args.batch_gpu
    if batch % (gpus * batch_gpu) == 0:
        return
    batch_name = f'--batch={batch}' if batch_given else f'the batch of {batch} images'
    gpu_name = f'--batch-gpu={batch_gpu}' if batch_gpu_given else f'the per-GPU batch of {batch_gpu}'
    hints = []
    if batch % gpus == 0:
        choices = ', '.join(str(d) for d in _divisors(batch // gpus))
        hints.append(f'pick --batch-gpu from {choices}')
    hints.append(f'or --batch as a multiple of {gpus * batch_gpu}')
    raise UserError(f'{batch_name} is not divisible by --gpus={gpus} x {gpu_name}; {" ".join(hints)}')


def _augment_options(args, desc, values, entry):
    aug, p, target, augpipe = values['aug'], values['p'], values['target'], values['augpipe']
    points = entry.data_kind == 'points'
    if aug is None:
        aug = 'noaug' if points else 'ada'
    else:
        _require(not (points and aug != 'noaug'), f'--aug={aug}: 2-D point data (--cfg={entry.name}) cannot be '
                 f'augmented; use --aug=noaug')
        desc.append(aug)
    if aug == 'ada':
        args.ada_target = 0.6
    elif aug == 'fixed':
        _require(p is not None, '--aug=fixed needs the augment probability --p (a number in [0, 1])')

    if p is not None:
        _require(aug == 'fixed', f'--p={p:g} is only allowed with --aug=fixed (got --aug={aug})')
        _require(0 <= p <= 1, f'--p={p:g}: must be between 0 and 1')
        desc.append(f'p{p:g}')
        args.augment_p = p
    if target is not None:
        _require(aug == 'ada', f'--target={target:g} is only allowed with --aug=ada (got --aug={aug})')
        _require(0 <= target <= 1, f'--target={target:g}: must be between 0 and 1')
        desc.append(f'target{target:g}')
        args.ada_target = target

    if augpipe is None:
        augpipe = 'bgc'
    else:
        _require(aug != 'noaug', f'--augpipe={augpipe} cannot be used with --aug=noaug')
        desc.append(augpipe)
    if aug != 'noaug':
        args.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', **augpipe_specs[augpipe])


def _resume_options(args, desc, values):
    resume = values['resume']
    if resume is None:
        return
    if resume == 'noresume':
        desc.append('noresume')
        return
    state_file = None
    if resume in RESUME_SPECS:
        desc.append(f'resume{resume}')
        args.resume_pkl = RESUME_SPECS[resume]
    else:
        args.resume_pkl, state_file, state = _resume_files(resume, values['outdir'])
        desc.append('resumecustom')
    if state_file is None:
        # Weights only, as the official trainer: fast ADA adaptation, no EMA ramp-up.
        args.ada_kimg = 100
        args.ema_rampup = None
        return
    saved = dict(state.get('options', {}))
    changed = [f'{key} {saved[key]} -> {args[key]}' for key in ('batch_size', 'num_gpus', 'random_seed')
               if key in saved and key in args and saved[key] != args[key]]
    if changed:
        print(f'Note: continuing {state_file} with other settings ({", ".join(changed)}); '
              f'the run will not repeat the uninterrupted one exactly.')
    args.ada_kimg = saved.get('ada_kimg', 500)
    args.ema_rampup = saved.get('ema_rampup', args.ema_rampup)
    args.resume_state = state_file


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


def default_workers():
    """DataLoader workers when --workers is not given: the official 3, or every usable CPU when the
    machine has fewer (more workers than CPUs only compete for them, and the DataLoader warns)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:      # no CPU affinity on macOS and Windows
        cpus = os.cpu_count() or 1
    return max(1, min(3, cpus))


def _network_options(args, desc, values, entry):
    stylegan2 = entry.family == 'stylegan2'
    freezed = values['freezed']
    if freezed is not None:
        _require(freezed >= 0, f'--freezed={freezed}: must be non-negative')
        _require(stylegan2, f'--freezed needs a StyleGAN2 discriminator (--cfg={entry.name} has none)')
        desc.append(f'freezed{freezed:d}')
        args.D_kwargs.block_kwargs.freeze_layers = freezed
    if values['fp32'] and stylegan2:
        args.G_kwargs.synthesis_kwargs.num_fp16_res = args.D_kwargs.num_fp16_res = 0
        args.G_kwargs.synthesis_kwargs.conv_clamp = args.D_kwargs.conv_clamp = None
    if values['nhwc'] and stylegan2:
        args.G_kwargs.synthesis_kwargs.fp16_channels_last = args.D_kwargs.block_kwargs.fp16_channels_last = True
    if values['nobench']:
        args.cudnn_benchmark = False
    if values['allow_tf32']:
        args.allow_tf32 = True
    if values['workers'] is not None:
        _require(values['workers'] >= 1, f'--workers={values["workers"]}: must be at least 1')
        args.data_loader_kwargs.num_workers = values['workers']


def _fork_options(args, values, entry, given):
    device = values.get('device')
    if device is not None:
        _require(device in ('cpu', 'cuda'), f'--device={device}: accepted are cuda and cpu')
        _require(device == 'cpu' or torch.cuda.is_available(),
                 '--device=cuda: CUDA is not available on this machine; use --device=cpu')
        args.device = device
    loss_given = {name for name in given if name in values.get('_loss_option_keys', ())}
    if values.get('g_steps') is not None:
        _require(values['g_steps'] >= 1, f'--g-steps={values["g_steps"]}: must be at least 1')
        loss_given.add('g_steps')
        args.g_steps = values['g_steps']
    try:
        configure_loss(values.get('loss') or 'stylegan2', args, values.get('_loss_values', {}), cfg=entry.name,
                       given=frozenset(loss_given))
    except LossSpecError as err:
        raise UserError(f'--loss: {err}') from None
    if args.get('g_steps', 1) == 1:
        args.pop('g_steps', None)
    precision = values.get('precision')
    if precision is not None:   # recorded only when given: the default options stay the official ones
        _require(precision in misc.PRECISIONS, f'--precision={precision}: accepted are {", ".join(misc.PRECISIONS)}')
        args.precision = precision
    if values.get('kimg_per_tick') is not None:
        _require(values['kimg_per_tick'] > 0, f'--kimg-per-tick={values["kimg_per_tick"]:g}: must be positive')
        args.kimg_per_tick = values['kimg_per_tick']


def check_outdir(outdir):
    """Raise UserError unless `outdir` exists as a writable folder or can be created."""
    path = os.path.abspath(outdir)
    if os.path.exists(path):
        _require(os.path.isdir(path), f'--outdir={outdir}: exists and is not a folder')
        _require(os.access(path, os.W_OK | os.X_OK), f'--outdir={outdir}: the folder is not writable')
        return
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    _require(os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK),
             f'--outdir={outdir}: cannot be created ({parent} is not a writable folder)')


def next_run_dir(outdir, desc):
    """`{outdir}/{id:05d}-{desc}`, id = 1 + the largest leading number of the existing sub-folders."""
    run_ids = []
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            match = re.match(r'^\d+', name)
            if match and os.path.isdir(os.path.join(outdir, name)):
                run_ids.append(int(match.group()))
    return os.path.join(outdir, f'{max(run_ids, default=-1) + 1:05d}-{desc}')


def create_run_dir(outdir, desc):
    """Create the next run folder and return its path (a concurrent run taking the id is skipped)."""
    for _attempt in range(100):
        run_dir = next_run_dir(outdir, desc)
        try:
            os.makedirs(run_dir)
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f'--outdir={outdir}: could not allocate a new run folder')


def folder_entries(outdir):
    """Normalised paths of what `outdir` holds now (empty when it does not exist)."""
    try:
        return {os.path.normpath(os.path.join(outdir, name)) for name in os.listdir(outdir)}
    except OSError:
        return set()


# Files a run writes while setting up; all of them are made again by the next run.
_SETUP_FILES = ('training_options.json', 'log.txt', 'reals.png', 'fakes_init.png')


def _worth_keeping(path):
    name = os.path.basename(path)
    if not os.path.isfile(path) or os.path.islink(path):
        return True
    if name in _SETUP_FILES or name.startswith('events.out.tfevents.'):
        return False
    return os.path.getsize(path) > 0     # e.g. stats.jsonl gets its first line at the first tick


def _created_by(run_dir, existing_before):
    """True when `run_dir` appeared after `existing_before` was listed and belongs to this run: its
    training_options.json names it, or it is still empty."""
    if os.path.normpath(run_dir) in existing_before or not os.path.isdir(run_dir):
        return False
    options_path = os.path.join(run_dir, 'training_options.json')
    if not os.path.isfile(options_path):
        return not os.listdir(run_dir)
    try:
        with open(options_path) as f:
            return json.load(f).get('run_dir') == run_dir
    except (OSError, ValueError, AttributeError):
        return False


def remove_failed_run_dir(run_dir, existing_before):
    """Delete the folder of a run that failed before writing anything worth keeping (snapshots,
    states, image snapshots, statistics or files of a loss plugin are worth keeping). Only a
    folder this run created is touched. Returns True when it was removed."""
    if not run_dir or not _created_by(run_dir, existing_before):
        return False
    if any(_worth_keeping(os.path.join(run_dir, name)) for name in os.listdir(run_dir)):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not os.path.exists(run_dir)


def remove_stale_temps(outdir, resume_pkl=None):
    """Delete snapshot temporaries that killed runs left in the run folders of `outdir` (and in the
    folder of a local `resume_pkl`); returns the removed paths. Files of live runs stay."""
    folders = resume_lib.run_folders(outdir)
    if resume_pkl and not dnnlib.util.is_url(resume_pkl, allow_file_urls=True):
        folders.append(os.path.dirname(os.path.abspath(resume_pkl)))
    return snapshots.remove_stale_temps(sorted(set(folders)))


def summary_lines(args):
    """The human-readable summary printed after the options JSON."""
    kwargs = args.training_set_kwargs
    return [
        f'Output directory:   {args.run_dir}',
        f'Training data:      {kwargs.path}',
        f'Training duration:  {args.total_kimg} kimg',
        f'Number of GPUs:     {args.num_gpus}',
        f'Number of images:   {kwargs.max_size}',
        f'Image resolution:   {kwargs.resolution}',
        f'Conditional model:  {kwargs.use_labels}',
        f'Dataset x-flips:    {kwargs.xflip}',
    ]
