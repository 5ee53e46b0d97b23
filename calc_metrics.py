r"""Calculate quality metrics for a network pickle (official `calc_metrics.py` interface).

Examples:
    # Metrics of a training snapshot; the line is appended to the run's metric-<name>.jsonl
    python calc_metrics.py --metrics=fid50k_full,pr50k3_full \
        --network=training-runs/00000-ffhq-auto1/network-snapshot-000000.pkl
    # Any pickle against a given data set, on CPU, with detectors from a local folder
    python calc_metrics.py --metrics=kid50k_full --data=datasets/ffhq.zip --mirror=1 --network=ffhq.pkl \
        --device=cpu --detector-dir=~/detectors
    # List the metrics
    python calc_metrics.py --metrics=help

Detectors (`inception-2015-12-05.pt`, `vgg16.pt`) are looked up in --detector-dir (or
$STYLEGAN_PLUS_DETECTOR_DIR), then in the dnnlib download cache, then downloaded from NVIDIA
unless $STYLEGAN_PLUS_OFFLINE=1; a missing one stops the run before any work with a message
saying where to put it. Each process seeds numpy and torch with its rank, so reruns repeat.
Additions to the official options: --device, --detector-dir, --max-samples, and the AdvLatGAN "-z"
sampling options --latent-steps/--latent-eps (fakes drawn from z moved toward a higher D score,
the "qua+"/"div+" numbers; recorded in the result line).
"""

import copy
import json
import os
import tempfile

import click
import numpy as np
import torch

import dnnlib
from metrics import detectors, metric_main, metric_utils, perceptual_path_length
from stylegan_plus import devices as core_devices
from stylegan_plus.cli import cli_types
from stylegan_plus.cli import device as devices
from stylegan_plus.cli.cli_types import CommaSeparatedList
from stylegan_plus.io import network_files
from stylegan_plus.networks.inference import prepare_generator
from stylegan_plus.sampling import decisions
from stylegan_plus.sampling import latent_steps as latent_mining
from stylegan_plus.sampling import prior
from torch_utils import misc


def _metric_listing():
    return '\n'.join(f'  {name:<14s} {metric_main.describe_metric(name)}' for name in metric_main.list_valid_metrics())


def _load_snapshot(network_pkl, verbose):
    """The snapshot dict of `network_pkl` (path or URL); unreadable input is a --network usage error."""
    try:
        return network_files.load_snapshot(network_pkl, verbose=verbose)
    except network_files.NetworkFileError as err:
        raise click.BadParameter(str(err), param_hint='--network') from err


def _dataset_kwargs(snapshot, G, data, mirror):
    """Data set options: --data, else those stored in the pickle; resolution/labels forced to match G."""
    if data is not None:
        kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data)
    elif snapshot.get('training_set_kwargs') is not None:
        kwargs = dnnlib.EasyDict(snapshot['training_set_kwargs'])
    else:
        raise click.UsageError('the pickle does not say which data set it was trained on: pass --data=PATH')
    kwargs.resolution = G.img_resolution
    kwargs.use_labels = G.c_dim != 0
    if mirror is not None:
        kwargs.xflip = mirror
    try:
        dnnlib.util.construct_class_by_name(**kwargs).close()
    except Exception as err:  # missing folder, wrong resolution, no labels, ...
        where = '--data' if data is not None else 'training_set_kwargs of the pickle (override with --data)'
        raise click.BadParameter(f'cannot open data set {kwargs.get("path")!r}: {err}', param_hint=where) from err
    return kwargs


def _devices(device_name, num_gpus):
    """Base device and a check that `num_gpus` processes fit (CUDA: one GPU each; CPU: any number)."""
    if num_gpus < 1:
        raise click.BadParameter(f'{num_gpus} is not a process count; use 1 or more', param_hint='--gpus')
    device = devices.resolve_device(device_name)
    if device.type == 'cuda':
        first = device.index or 0
        if first + num_gpus > torch.cuda.device_count():
            raise click.BadParameter(f'--gpus={num_gpus} from cuda:{first} needs {first + num_gpus} GPUs, '
                                     f'this machine has {torch.cuda.device_count()}', param_hint='--gpus')
    return device


def _check_path_length(metrics, G):
    """Path-length metrics need a mapping/synthesis split: refuse them up front, before any process starts."""
    if any(metric.startswith('ppl') for metric in metrics):
        try:
            perceptual_path_length.check_generator(G)
        except perceptual_path_length.PathLengthUnsupportedError as err:
            raise click.UsageError(str(err)) from None


def _metric_kwargs(args, rank, device):
    """Keyword arguments of metric_main.calc_metric for one process.

    Options that change how fakes are drawn (e.g. latent refinement before synthesis) belong
    here: they wrap args.G or extend G_kwargs, and every metric picks them up.
    """
    G = args.G
    if args.latent_steps > 0:
        # Prepare G before wrapping, so the fp32-on-CPU rebuild still applies to the real generator.
        D = copy.deepcopy(args.D).eval().requires_grad_(False).to(device)
        D_kwargs = latent_mining.discriminator_kwargs(D, device)
        # The method's own decision (LOGAN-B's joint D, RFGAN's fused head), not D's unused output layer.
        nets = {key: copy.deepcopy(net).eval().requires_grad_(False).to(device)
                for key, net in args.decision_nets.items()}
        nets['D'] = D
        G = latent_mining.LatentStepGenerator(prepare_generator(copy.deepcopy(args.G), device), D,
                                              steps=args.latent_steps, eps=args.latent_eps, D_kwargs=D_kwargs,
                                              decision=decisions.snapshot_decision(nets, D_kwargs))
    return dict(G=G, G_kwargs=dnnlib.EasyDict(), dataset_kwargs=args.dataset_kwargs, num_gpus=args.num_gpus,
                rank=rank, device=device, max_samples=args.max_samples, z_dist=args.z_dist)


def _run_process(rank, args, temp_dir):
    """Body of one process: join the process group, compute every metric, report on rank 0."""
    device = core_devices.resolve_device(args.device, local_rank=rank)   # cuda:N+rank, or cpu
    if args.num_gpus > 1:
        init_file = os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
        backend = 'nccl' if device.type == 'cuda' and os.name != 'nt' else 'gloo'
        torch.distributed.init_process_group(backend=backend, init_method=f'file://{init_file}', rank=rank,
                                             world_size=args.num_gpus)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    np.random.seed(rank)
    torch.manual_seed(rank)

    if rank == 0 and args.verbose:
        G = prepare_generator(copy.deepcopy(args.G), device)
        z = torch.empty([1, G.z_dim], device=device)
        c = torch.empty([1, G.c_dim], device=device)
        misc.print_module_summary(G, [z, c])
        del G
    for metric in args.metrics:
        if rank == 0 and args.verbose:
            print(f'Calculating {metric}...')
        progress = metric_utils.ProgressMonitor(verbose=args.verbose)
        result = metric_main.calc_metric(metric=metric, progress=progress, **_metric_kwargs(args, rank, device))
        if rank == 0:
            if args.latent_steps > 0:
                result.update(latent_steps=args.latent_steps, latent_eps=args.latent_eps)
            metric_main.report_metric(result, run_dir=args.run_dir, snapshot_pkl=args.network_pkl)
        if rank == 0 and args.verbose:
            print()
    if rank == 0 and args.verbose:
        print('Exiting...')
    if args.num_gpus > 1:
        # Tear the group down explicitly: gloo aborts if its threads are still up at interpreter exit.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


@click.command()
@click.option('--network', 'network_pkl', help='Network pickle filename or URL  [required]', metavar='PATH')
@click.option('--metrics', help='Comma-separated list, "none", or "help" to list them', type=CommaSeparatedList(),
              default='fid50k_full', show_default=True)
@click.option('--data', help='Dataset to evaluate metrics against (directory or zip)  [default: same as training data]',
              metavar='PATH')
@click.option('--mirror', help='Whether the dataset was augmented with x-flips during training  [default: look up]',
              type=bool, metavar='BOOL')
@click.option('--gpus', 'num_gpus', help='Number of GPUs (processes) to use', type=int, default=1, metavar='INT',
              show_default=True)
@click.option('--verbose', help='Print progress, throughput and a network summary', type=bool, default=True,
              metavar='BOOL', show_default=True)
@click.option('--device', 'device_name', help=cli_types.DEVICE_HELP, metavar='DEVICE')
@click.option('--detector-dir', help=f'Folder or base URL searched first for detector files  '
              f'[default: ${detectors.DETECTOR_DIR_ENV}]', metavar='DIR')
@click.option('--max-samples', help='Cap every sample count at N for a quick smoke run (not comparable to the '
              'full metric; recorded in the result line)', type=click.IntRange(min=2), metavar='INT')
@cli_types.latent_step_options('generating')
def calc_metrics(network_pkl, metrics, data, mirror, num_gpus, verbose, device_name, detector_dir, max_samples,
                 latent_steps, latent_eps):
    """Calculate quality metrics for a previous training run or a pretrained network pickle.

    \b
    Recommended metrics:
      fid50k_full, kid50k_full, pr50k3_full, ppl2_wend, is50k
    Legacy metrics:
      fid50k, kid50k, pr50k3, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend
    Quick variants (10k fakes): fid10k_full, kid10k_full
    """
    if metrics == ['help']:
        click.echo(_metric_listing())
        return
    if network_pkl is None:
        raise click.UsageError("Missing option '--network' (a network pickle path or URL)")
    for metric in metrics:
        if not metric_main.is_valid_metric(metric):
            raise click.BadParameter(metric_main.unknown_metric_message(metric), param_hint='--metrics')
    if latent_steps > 0:
        ppl = [m for m in metrics if m.startswith('ppl')]
        if ppl:
            raise click.UsageError(f'--latent-steps moves z before synthesis; path-length metrics ({", ".join(ppl)}) '
                                   'interpolate in z/w themselves and cannot use it. Run them without --latent-steps.')
    device = _devices(device_name, num_gpus)
    detectors.set_detector_dir(detector_dir)
    try:
        metric_main.check_metric_requirements(metrics, verbose=verbose)
    except (detectors.DetectorNotFoundError, detectors.DetectorChecksumError) as err:
        raise click.ClickException(str(err)) from None

    if verbose:
        print(f'Loading network from "{network_pkl}"...')
    snapshot = _load_snapshot(network_pkl, verbose)
    args = dnnlib.EasyDict(network_pkl=network_pkl, metrics=metrics, num_gpus=num_gpus, verbose=verbose,
                           device=device, max_samples=max_samples, G=snapshot['G_ema'], run_dir=None,
                           D=snapshot.get('D'), latent_steps=latent_steps, latent_eps=latent_eps,
                           decision_nets={key: snapshot[key] for key in decisions.DECISION_KEYS
                                          if snapshot.get(key) is not None})
    try:
        args.z_dist = prior.snapshot_z_dist(snapshot)   # the fakes' latents follow the training prior
    except ValueError as err:
        raise click.BadParameter(f'{network_pkl}: {err}', param_hint='--network') from None
    if latent_steps > 0 and args.D is None:
        raise click.BadParameter(f'{network_pkl!r} has no discriminator "D", which --latent-steps needs',
                                 param_hint='--network')
    _check_path_length(metrics, args.G)
    args.dataset_kwargs = _dataset_kwargs(snapshot, args.G, data, mirror)
    if verbose:
        print('Dataset options:')
        print(json.dumps(args.dataset_kwargs, indent=2))
    if os.path.isfile(network_pkl):
        pkl_dir = os.path.dirname(os.path.abspath(network_pkl))
        if os.path.isfile(os.path.join(pkl_dir, 'training_options.json')):
            args.run_dir = pkl_dir

    if verbose:
        print('Launching processes...')
    if num_gpus == 1:
        _run_process(0, args, temp_dir=None)
        return
    torch.multiprocessing.set_start_method('spawn', force=True)
    with tempfile.TemporaryDirectory() as temp_dir:
        torch.multiprocessing.spawn(fn=_run_process, args=(args, temp_dir), nprocs=num_gpus)


if __name__ == '__main__':
    calc_metrics()  # pylint: disable=no-value-for-parameter
