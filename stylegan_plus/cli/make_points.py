"""Write a 2-D toy data set (ring or grid of Gaussians) for `train.py --cfg=toy`.

    python -m stylegan_plus.cli.make_points --dest=datasets/ring.npy --kind=ring8 --std=0.02
    python train.py --outdir=runs --data=datasets/ring.npy --cfg=toy --kimg=200 --device=cpu

The sets are those of `stylegan_plus.data.toy_data` (8 modes on a circle of radius 2, or 25 on
a grid of spacing 2), written as float32 [N, 2] in `.npy` format, the file `--cfg=toy` reads.
"""

import click

from stylegan_plus.data import toy_data


@click.command()
@click.option('--dest', help='Output file (.npy)', required=True, metavar='PATH')
@click.option('--kind', help='ring8: 8 modes on a circle of radius 2; grid25: 25 modes at (2i, 2j), i, j in -2..2',
              type=click.Choice(toy_data.TOY_KINDS), default='ring8', show_default=True)
@click.option('--std', help='Standard deviation of each coordinate around its mode',
              type=click.FloatRange(min=0, min_open=True), default=0.02, show_default=True, metavar='FLOAT')
@click.option('--points-per-mode', help='Points drawn around each mode', type=click.IntRange(min=1), default=2000,
              show_default=True, metavar='INT')
@click.option('--seed', help='Seed of the draw', type=click.IntRange(min=0), default=0, show_default=True, metavar='INT')
def main(dest, kind, std, points_per_mode, seed):
    """Write a ring or grid of 2-D Gaussians as a point data set (.npy, float32 [N, 2])."""
    if not dest.endswith('.npy'):
        raise click.BadParameter(f'{dest!r} does not end in .npy; the point data sets are .npy files', param_hint='--dest')
    points = toy_data.save_toy_points(dest, kind, std=std, points_per_mode=points_per_mode, seed=seed)
    click.echo(f'Wrote {len(points)} points ({kind}, {len(toy_data.toy_centers(kind))} modes, std {std:g}) to {dest}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
