r"""Project photos into the latent space of a trained generator (official `projector.py` interface).

Examples:
    python projector.py --outdir=out --target=face.png --network=ffhq.pkl
    # Several photos in one call (one sub-folder per photo), per-layer W, on CPU
    python projector.py --outdir=out --target=a.jpg --target=b.jpg --w-plus=1 --network=afhqcat.pkl \
        --device=cpu --num-steps=300 --detector-dir=~/detectors
    # Render the result again
    python generate.py --outdir=out --projected-w=out/projected_w.npz --network=ffhq.pkl

Each target is center-cropped to a square and Lanczos-resized to the network resolution (any size,
grayscale or RGBA photos are accepted). Outputs: target.png, proj.png, projected_w.npz (key `w`,
[1, num_ws, w_dim]), compare.png (target | projection; under 64 px enlarged) and, with imageio +
imageio-ffmpeg installed, proj.mp4. The VGG16 detector
(`vgg16.pt`) is found as for calc_metrics.py (--detector-dir, $STYLEGAN_PLUS_DETECTOR_DIR, cache).
Additions to the official options: several --target, --w-plus, --device, --detector-dir; to the
outputs: compare.png.
"""

import os
import time

import click
import numpy as np
import torch

from metrics import detectors
from stylegan_plus.cli import outputs, projection
from stylegan_plus.cli import device as devices
from stylegan_plus.cli.cli_types import DEVICE_HELP
from stylegan_plus.io import images
from stylegan_plus.networks.inference import prepare_generator


def _output_dirs(outdir, targets):
    """outdir itself for one target; else outdir/<file stem>, made unique with -2, -3, ..."""
    if len(targets) == 1:
        return [outdir]
    dirs, used = [], set()
    for target in targets:
        stem = os.path.splitext(os.path.basename(target))[0] or 'target'
        name, n = stem, 1
        while name in used:
            n += 1
            name = f'{stem}-{n}'
        used.add(name)
        dirs.append(os.path.join(outdir, name))
    return dirs


def _load_targets(paths, G):
    """Every target preprocessed to uint8 [H, W, C], checked before any optimisation starts."""
    targets = []
    for path in paths:
        try:
            targets.append(projection.load_target(path, G.img_resolution, G.img_channels))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint='--target') from None
    return targets


def _project_one(G, vgg16, target_uint8, outdir, *, num_steps, seed, save_video, w_plus, device):
    """Project one preprocessed target and write all outputs into `outdir`."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    target = torch.tensor(target_uint8.transpose([2, 0, 1]), device=device)
    start_time = time.time()
    ws_steps = projection.project(G, target, num_steps=num_steps, device=device, w_plus=w_plus, vgg16=vgg16,
                                  verbose=True, progress=True)
    print(f'Elapsed: {time.time() - start_time:.1f} s')

    outputs.make_outdir(outdir)
    images.save_png(target_uint8, os.path.join(outdir, 'target.png'))
    final_w = ws_steps[-1].unsqueeze(0)
    projected = projection.render(G, final_w)[0]
    images.save_png(projected, os.path.join(outdir, 'proj.png'))
    # The photo beside its projection, small networks enlarged: the one picture to look at when no video is made.
    images.save_png(images.display_grid([target_uint8, projected], cols=2), os.path.join(outdir, 'compare.png'))
    images.save_npz(os.path.join(outdir, 'projected_w.npz'), w=final_w.cpu().numpy())
    if save_video:
        path = os.path.join(outdir, 'proj.mp4')
        print(f'Saving optimization progress video "{path}"')
        projection.write_video(path, target_uint8, (projection.render(G, w.unsqueeze(0))[0] for w in ws_steps))


@click.command()
@click.option('--network', 'network_pkl', help='Snapshot pickle whose G_ema is searched (path or URL)', required=True,
              metavar='PATH')
@click.option('--target', 'target_fnames', help='Photo to reproduce (repeat the option for several)',
              required=True, multiple=True, type=click.Path(exists=True, dir_okay=False), metavar='FILE')
@click.option('--num-steps', help='Optimiser steps per photo', type=click.IntRange(min=1), default=1000,
              show_default=True)
@click.option('--seed', help='Seed of numpy and torch before each photo', type=int, default=303, show_default=True)
@click.option('--save-video', help='Also write proj.mp4: the photo beside each step\'s image', type=bool, default=True,
              show_default=True, metavar='BOOL')
@click.option('--outdir', help='Folder for the results (created if missing)', required=True, metavar='DIR')
@click.option('--w-plus', help='Optimise one w per layer (W+) instead of a single w', type=bool, default=False,
              show_default=True, metavar='BOOL')
@click.option('--device', 'device_name', help=DEVICE_HELP, metavar='DEVICE')
@click.option('--detector-dir', help=f'Folder or base URL searched first for vgg16.pt  '
              f'[default: ${detectors.DETECTOR_DIR_ENV}]', metavar='DIR')
def run_projection(network_pkl, target_fnames, num_steps, seed, save_video, outdir, w_plus, device_name,
                   detector_dir):
    """Search the W space of a snapshot's generator for the w whose image looks most like each photo."""
    target_dirs = _output_dirs(outdir, target_fnames)
    for target_dir in [outdir] + target_dirs:
        outputs.check_outdir(target_dir)
    device = devices.resolve_device(device_name)
    detectors.set_detector_dir(detector_dir)
    try:
        vgg16 = detectors.load_detector(detectors.VGG16_URL, device, verbose=True)
    except (detectors.DetectorNotFoundError, detectors.DetectorChecksumError) as err:
        raise click.ClickException(str(err)) from None
    if save_video:
        ok, notice = projection.video_support()
        if not ok:
            print(f'Notice: no video will be written. {notice}')
            save_video = False

    print(f'Loading networks from "{network_pkl}"...')
    G = devices.load_network(network_pkl)
    devices.require_mapping_synthesis(G, 'projector.py')  # the projection optimises w, fed to G.synthesis
    G = prepare_generator(G, device)
    targets = _load_targets(target_fnames, G)
    for path, target_uint8, target_dir in zip(target_fnames, targets, target_dirs):
        print(f'Projecting "{path}" -> "{target_dir}"')
        _project_one(G, vgg16, target_uint8, target_dir, num_steps=num_steps, seed=seed, save_video=save_video,
                     w_plus=w_plus, device=device)


if __name__ == '__main__':
    run_projection()  # pylint: disable=no-value-for-parameter
