"""Style-mixing grids (official `style_mixing.py` interface).

Examples:
    python style_mixing.py --outdir=out --rows=85,100,75 --cols=55,821,1789 --network=ffhq.pkl
    python style_mixing.py --outdir=out --rows=0-2 --cols=3-5 --styles=0-3 --network=snap.pkl --device=cpu

Each output image takes the W vector of its row seed and replaces the layers listed in --styles
by those of its column seed. Writes `{row}-{col}.png` for every pair, `{seed}-{seed}.png` for
every seed alone, and `grid.png` (images under 64 px enlarged and 2 px apart there, as in
generate.py). Additions to the official options: --device, and --class for
conditional networks (the official script only handles unconditional ones). Without --styles, the
column seed gives ws 0-6 (the official default), limited to the ws the network has (0-5 at 16 px).
"""

import os

import click
import numpy as np
import torch

from stylegan_plus.cli import cli_types, outputs
from stylegan_plus.cli import device as devices
from stylegan_plus.io import images
from stylegan_plus.networks.inference import prepare_generator
from stylegan_plus.sampling import prior

DEFAULT_STYLES = 7  # without --styles: ws 0-6 (the official default), or fewer if the network has fewer

@torch.no_grad()
def style_mix(G, row_seeds, col_seeds, col_styles, label, truncation_psi=1, noise_mode='const', z_dist='normal'):
    """Mix the styles of row and column seeds.

    G: generator on its device; label: [1, c_dim] float32; col_styles: ws indices in
    [0, G.num_ws) taken from the column seed. W is truncated as `w_avg + (w - w_avg) * psi`.
    z_dist: the prior the snapshot records; each seed's z is drawn from it (`images.seed_to_z`).
    Returns {(row_seed, col_seed): [H, W, C] uint8}, including (s, s) for every seed.
    """
    seeds = sorted(set(row_seeds) | set(col_seeds))
    z = np.concatenate([images.seed_to_z(seed, G.z_dim, z_dist) for seed in seeds])
    z = torch.from_numpy(z).to(device=label.device, dtype=torch.float32)
    w = G.mapping(z, label.expand(len(seeds), -1))
    w_avg = G.mapping.w_avg
    w = w_avg + (w - w_avg) * truncation_psi
    w_of = dict(zip(seeds, w))

    def render(ws):
        return images.to_uint8(G.synthesis(ws.unsqueeze(0), noise_mode=noise_mode))[0]

    print('Generating images...')
    result = {(seed, seed): render(w_of[seed]) for seed in seeds}
    print('Generating style-mixed images...')
    for row_seed in row_seeds:
        for col_seed in col_seeds:
            mixed = w_of[row_seed].clone()
            mixed[col_styles] = w_of[col_seed][col_styles]
            result[(row_seed, col_seed)] = render(mixed)
    return result


def mixing_grid(mixed, row_seeds, col_seeds) -> np.ndarray:
    """Grid of (len(cols)+1) x (len(rows)+1) cells: unmixed column seeds across the top, unmixed row
    seeds down the left, mixes inside, top-left cell black. Returns [H*(rows+1), W*(cols+1), C] uint8
    for images of 64 px and more (the official grid); smaller ones enlarged and spaced as in
    generate.py (`images.display_grid`)."""
    blank = np.zeros_like(next(iter(mixed.values())))
    cells = [blank] + [mixed[(seed, seed)] for seed in col_seeds]
    for row_seed in row_seeds:
        cells += [mixed[(row_seed, row_seed)]] + [mixed[(row_seed, col_seed)] for col_seed in col_seeds]
    return images.display_grid(cells, cols=len(col_seeds) + 1)


@click.command()
@click.option('--network', 'network_pkl', help='Snapshot pickle to render (path or URL)', required=True)
@click.option('--rows', 'row_seeds', type=cli_types.seed_list_type(), help='Seeds whose ws fill each row',
              required=True)
@click.option('--cols', 'col_seeds', type=cli_types.seed_list_type(),
              help='Seeds whose styles are mixed into each column', required=True)
@click.option('--styles', 'col_styles', type=cli_types.NumRange(lo=0, what='style index'),
              help='ws indices taken from the column seed  [default: 0-6, limited to the network\'s ws]')
@click.option('--trunc', 'truncation_psi', type=cli_types.FiniteFloat(),
              help='Pull w toward its average by this factor', default=1, show_default=True)
@click.option('--noise-mode', help='Per-pixel noise of the synthesis layers',
              type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', type=str, required=True, help='Folder for the PNG files (created if missing)', metavar='DIR')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--device', 'device_name', help=cli_types.DEVICE_HELP, metavar='DEVICE')
def generate_style_mix(network_pkl, row_seeds, col_seeds, col_styles, truncation_psi, noise_mode, outdir,
                       class_idx, device_name):
    """Render a grid that mixes the styles (per-layer ws) of row seeds and column seeds of a snapshot's G_ema."""
    outputs.check_outdir(outdir)
    device = devices.resolve_device(device_name)
    print(f'Loading networks from "{network_pkl}"...')
    nets = devices.load_networks(network_pkl, ('G_ema',), optional_keys=(prior.SNAPSHOT_KEY,))
    try:
        z_dist = prior.snapshot_z_dist(nets)    # official pickles record none: normal
    except ValueError as err:
        raise click.BadParameter(f'{network_pkl}: {err}', param_hint='--network') from None
    G = nets['G_ema']
    devices.require_mapping_synthesis(G, 'style_mixing.py')  # mixing swaps per-layer ws
    G = prepare_generator(G, device)
    if col_styles is None:
        col_styles = list(range(min(DEFAULT_STYLES, G.num_ws)))
    bad = [idx for idx in col_styles if idx >= G.num_ws]
    if bad:
        raise click.BadParameter(f'style index {bad[0]} is out of range: this network has {G.num_ws} ws, '
                                 f'accepted are 0..{G.num_ws - 1}', param_hint='--styles')
    label = devices.class_label(G, class_idx, device)

    mixed = style_mix(G, row_seeds, col_seeds, col_styles, label, truncation_psi, noise_mode, z_dist)
    print('Saving images...')
    outputs.make_outdir(outdir)
    for (row_seed, col_seed), pixels in mixed.items():
        images.save_png(pixels, os.path.join(outdir, f'{row_seed}-{col_seed}.png'))
    print('Saving image grid...')
    images.save_png(mixing_grid(mixed, row_seeds, col_seeds), os.path.join(outdir, 'grid.png'))


if __name__ == '__main__':
    generate_style_mix()  # pylint: disable=no-value-for-parameter
