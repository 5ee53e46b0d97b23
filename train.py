"""Train a GAN with the StyleGAN2-ADA options, loss plugins, small-network configs and full resume.

\b
Examples:
  # The official way: CIFAR-10 settings, 2 GPUs, ADA
  python train.py --outdir=runs --data=cifar10.zip --cfg=cifar --gpus=2
  # DCGAN on 16-32 px images, on CPU, with a loss plugin
  python train.py --outdir=runs --data=digits32 --cfg=dcgan --loss=stylegan2 --device=cpu --metrics=none
  # 2-D points (.npy/.npz), e.g. the 8-Gaussian ring
  python -m stylegan_plus.cli.make_points --dest=ring.npy --kind=ring8 --std=0.02
  python train.py --outdir=runs --data=ring.npy --cfg=toy --metrics=none --device=cpu
  # Less memory per GPU: the batch of 64 as 4 accumulation rounds of 16 (gradients averaged over
  # them); network sizes and a memory/speed estimate, without training
  python train.py --outdir=runs --data=ffhq.zip --cfg=paper256 --batch=64 --batch-gpu=16 --dry-run
  # Continue the newest run in runs/ exactly where it stopped
  python train.py --outdir=runs --data=digits32 --cfg=dcgan --resume=latest
  # Several nodes: one torchrun per node
  torchrun --nnodes=2 --nproc-per-node=8 ... train.py --outdir=runs --data=ffhq.zip --cfg=paper256
\b
--loss=help lists the loss plugins; each plugin's own options are listed below.
"""

import os
import sys

import click
from click.core import ParameterSource

# Only torch-free modules here: --help and --loss=help must answer without importing torch.
# The training modules are imported in the functions that run after parsing.
from stylegan_plus.cli import loss_options
from stylegan_plus.cli.cli_types import CommaSeparatedList
from stylegan_plus.losses import catalogue
from stylegan_plus.training import configs
from stylegan_plus.training.choices import AUG_MODES, RESUME_SPECS, augpipe_specs


def _print_losses(ctx, _param, value):
    if value == 'help':
        click.echo(catalogue.load_catalogue().format_list())
        ctx.exit(0)
    return value


_OPTIONS = [
    # General.
    click.option('--outdir', help='Where to save the results', required=True, metavar='DIR'),
    click.option('--gpus', help='Number of GPUs (processes) to use  [default: 1]', type=int, metavar='INT'),
    click.option('--snap', help='Snapshot interval in ticks  [default: 50]', type=int, metavar='INT'),
    click.option('--metrics', help='Comma-separated list or "none"  [default: fid50k_full]', type=CommaSeparatedList()),
    click.option('--seed', help='Random seed  [default: 0]', type=int, metavar='INT'),
    click.option('-n', '--dry-run', help='Print training options, network sizes and a memory/speed estimate, '
                 'then exit', is_flag=True),
    # Dataset.
    click.option('--data', help='Training data (folder or zip; .npy/.npz points with --cfg=toy)', metavar='PATH',
                 required=True),
    click.option('--cond', help='Train conditional model based on dataset labels  [default: false]', type=bool,
                 metavar='BOOL'),
    click.option('--subset', help='Train with only N images  [default: all]', type=int, metavar='INT'),
    click.option('--mirror', help='Enable dataset x-flips  [default: false]', type=bool, metavar='BOOL'),
    click.option('--skip-bad', help='Train on the readable images, leaving out (and listing) the ones the start-up '
                 'check rejects, instead of stopping', is_flag=True),
    # Base configuration.
    click.option('--cfg', help='Base config  [default: auto]', type=click.Choice(list(configs.list_configs()))),
    click.option('--gamma', help='Override R1 gamma', type=float),
    click.option('--kimg', help='Override training duration', type=int, metavar='INT'),
    click.option('--batch', help='Override batch size', type=int, metavar='INT'),
    click.option('--batch-gpu', help='Images per GPU and accumulation round (gradients are accumulated over '
                 '--batch / (--gpus x --batch-gpu) rounds)  [default: the preset\'s, or --batch / --gpus]',
                 type=int, metavar='INT'),
    # Discriminator augmentation.
    click.option('--aug', help='Augmentation mode  [default: ada]', type=click.Choice(list(AUG_MODES))),
    click.option('--p', help='Augmentation probability for --aug=fixed', type=float),
    click.option('--target', help='ADA target value for --aug=ada  [default: 0.6]', type=float),
    click.option('--augpipe', help='Augmentation pipeline  [default: bgc]', type=click.Choice(list(augpipe_specs))),
    # Transfer learning.
    click.option('--resume', help='Resume from network pickle, "latest" (newest snapshot in --outdir) or a preset '
                 f'({", ".join(RESUME_SPECS)})  [default: noresume]', metavar='PKL'),
    click.option('--freezed', help='Freeze-D  [default: 0 layers]', type=int, metavar='INT'),
    # Performance options.
    click.option('--fp32', help='Disable mixed-precision training', type=bool, metavar='BOOL'),
    click.option('--nhwc', help='Use NHWC memory format with FP16', type=bool, metavar='BOOL'),
    click.option('--nobench', help='Disable cuDNN benchmarking', type=bool, metavar='BOOL'),
    click.option('--allow-tf32', help='Allow PyTorch to use TF32 internally', type=bool, metavar='BOOL'),
    click.option('--workers', help='Override number of DataLoader workers', type=int, metavar='INT'),
    # Additions of this fork.
    click.option('--loss', help='Loss plugin: NAME, MAIN+ADDON, a dotted class path, or help  [default: stylegan2]',
                 metavar='SPEC', is_eager=True, callback=_print_losses),
    click.option('--device', help='cuda or cpu  [default: cuda if available]', type=click.Choice(['cuda', 'cpu'])),
    click.option('--cbase', help='Override channel_base of G and D (capacity)', type=int, metavar='INT'),
    click.option('--cmax', help='Override channel_max of G and D', type=int, metavar='INT'),
    click.option('--g-steps', help='G main steps per iteration  [default: 1, or set by the loss]', type=int,
                 metavar='INT'),
    click.option('--d-steps', help='D main steps per iteration, each with fresh latents  [default: 1, or set by '
                 'the loss]', type=int, metavar='INT'),
    click.option('--g-batch-factor', help='Latents of each G main step, in multiples of --batch (2 = the G batch of '
                 'pytorch-gan-collections, which AdvLatGAN trains with)  [default: 1, or set by the loss]', type=int,
                 metavar='INT'),
    click.option('--z-dist', help='Latent prior of G: normal = N(0, I), uniform = U[-1, 1]; recorded in every '
                 'snapshot, and generate.py and the metrics draw from it  [default: normal, or set by the loss]',
                 metavar='normal|uniform'),
    click.option('--lr-schedule', help='Learning-rate schedule of every optimizer: none, step:FACTOR:EVERY '
                 '(times FACTOR every EVERY iterations, e.g. step:0.9:10000), or linear:ITERS (straight down to 0 at '
                 'iteration ITERS)  [default: none, or set by the loss]',
                 metavar='SPEC'),
    click.option('--precision', help='Compute precision of the training phases: fp32, or bf16 (autocast to bfloat16 '
                 'on CPUs with AMX/AVX512-BF16 and on bf16-capable GPUs; weights and optimizer state stay float32; '
                 'fp32 with a notice where bf16 is not native)  [default: fp32]',
                 type=click.Choice(['fp32', 'bf16'])),
    click.option('--kimg-per-tick', help='Progress tick interval in kimg  [default: 4]', type=float, metavar='FLOAT'),
    click.option('--nimg', help='Training duration in images (overrides --kimg; for quick tests)', type=int,
                 metavar='INT', hidden=True),
]


# Unknown options are set aside (ctx.args) rather than refused: those of a plugin named by class
# path become known once --loss is parsed (stylegan_plus/cli/loss_options.py).
_CONTEXT = dict(ignore_unknown_options=True, allow_extra_args=True)


def build_command(argv=None):
    """The train.py click command, with the options of every registered loss plugin.

    argv: not used; the command no longer depends on the command line (accepted for older callers).
    """
    del argv
    plugin_options = [opt for _name, opt in catalogue.load_catalogue().options()]

    @click.pass_context
    def train(ctx, **values):
        run_training(ctx, values)

    command = train
    for decorator in reversed(_OPTIONS + [loss_options.click_option(opt) for opt in plugin_options]):
        command = decorator(command)
    return click.command(help=__doc__, context_settings=_CONTEXT)(command)


def _class_path_plugins(ctx, spec):
    """The LossPlugin classes that `--loss` names by dotted class path (imports torch only then)."""
    paths = [part.strip() for part in (spec or '').split('+') if '.' in part]
    if not paths:
        return []
    from stylegan_plus.losses import registry  # pylint: disable=import-outside-toplevel
    try:
        return [registry.get_loss(path) for path in paths]
    except registry.LossSpecError as err:
        ctx.fail(f'--loss: {err}')


def _late_options(ctx, spec):
    """(values, given keys) of the set-aside arguments, parsed against the class-path plugins' options."""
    if not ctx.args:
        return {}, set()
    declared = {param.name for param in ctx.command.params}
    options = {}
    for cls in _class_path_plugins(ctx, spec):
        options.update((opt.key, opt) for opt in cls.options if opt.key not in declared)
    return loss_options.parse_late_options(list(options.values()), ctx.args, ctx)


def run_training(ctx, values):
    """Resolve the options, print them, then launch (or stop after printing for --dry-run)."""
    # pylint: disable=import-outside-toplevel  # heavy (torch); not needed for --help
    from metrics import training_hook
    from stylegan_plus.training import distributed, estimate, launch, run_dirs
    given = {name for name in values if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}
    late_values, late_given = _late_options(ctx, values.get('loss'))
    values.update(late_values)
    dry_run = values.pop('dry_run')
    env = distributed.torchrun_env()
    if not dry_run and (env is None or env[0] == 0):
        _remove_leftovers(values['outdir'], values['resume'])
    options = _resolve(ctx, values, given | late_given, env)
    rank = env[0] if env is not None else 0
    options.run_dir = run_dirs.next_run_dir(values['outdir'], options.desc)
    if rank == 0:
        launch.print_options(options)
    if dry_run:
        if rank == 0:
            print('\n'.join([*estimate.estimate_lines(options.loop_kwargs()), '', 'Dry run; exiting.']))
        return
    _check_metrics(ctx, training_hook.check_detectors, options.metrics)
    _launch(ctx, options, values['outdir'], env, metrics_fn=training_hook.evaluate)


def _resolve(ctx, values, given, env):
    """The TrainingOptions of the command line, with --metrics names checked; usage error otherwise."""
    # pylint: disable=import-outside-toplevel
    from metrics import training_hook
    from stylegan_plus.training import resolve, run_dirs
    from stylegan_plus.training.options import UserError
    try:
        if env is not None:
            _use_torchrun_world(values, env)
        run_dirs.check_outdir(values['outdir'])
        options = resolve.resolve_options(values, given)
    except UserError as err:
        ctx.fail(str(err))
    _check_metrics(ctx, training_hook.check_metrics, options.metrics)
    return options


def _check_metrics(ctx, check, names):
    """Run a check of the metrics layer on the --metrics names; its error becomes a usage error."""
    try:
        check(names)
    except Exception as err: # pylint: disable=broad-except  # unknown names, missing detector files
        ctx.fail(f'--metrics={",".join(names)}: {err}')


def _remove_leftovers(outdir, resume):
    """Delete snapshot temporaries of killed runs (in the runs under `outdir` and beside a local
    `--resume` pickle) before anything else, so that even a start that fails cleans them up."""
    from stylegan_plus.training import run_dirs  # pylint: disable=import-outside-toplevel
    resume_pkl = resume if resume and os.path.isfile(resume) else None
    for path in run_dirs.remove_stale_temps(outdir, resume_pkl):
        print(f'Removed {path}, left over by an interrupted run.')


def _launch(ctx, options, outdir, env, metrics_fn):
    """Train; a run that fails before writing anything worth keeping takes its run folder with it."""
    # pylint: disable=import-outside-toplevel
    from stylegan_plus.training import launch, run_dirs
    from stylegan_plus.training import resume as resume_lib
    rank = env[0] if env is not None else 0
    existing = run_dirs.folder_entries(outdir)
    try:
        if env is not None:
            launch.launch_torchrun(options, outdir, env, metrics_fn=metrics_fn)
        else:
            launch.launch_local(options, outdir, metrics_fn=metrics_fn)
    except BaseException as err:
        if rank == 0 and run_dirs.remove_failed_run_dir(options.run_dir or None, existing):
            print(f'Removed the run folder {options.run_dir}: the run stopped before writing anything worth '
                  f'keeping.', file=sys.stderr)
        if isinstance(err, resume_lib.ResumeError):
            ctx.fail(f'--resume: {err}')   # the message names the pickle
        raise


def _use_torchrun_world(values, env):
    from stylegan_plus.training.options import UserError  # pylint: disable=import-outside-toplevel
    world_size = env[1]
    if values['gpus'] not in (None, world_size):
        raise UserError(f'--gpus={values["gpus"]} differs from torchrun\'s WORLD_SIZE={world_size}; '
                        f'leave --gpus out under torchrun')
    values['gpus'] = world_size


def main(argv=None):
    """Entry point: `python train.py ...` (argv defaults to sys.argv[1:])."""
    build_command(argv)(args=argv)  # pylint: disable=no-value-for-parameter


if __name__ == '__main__':
    main()
