"""Are a generator's digits recognisable? Command line of `metrics.digits_check`.

    python -m stylegan_plus.cli.digits_check --network=<run>/network-snapshot-000100.pkl

prints the share of generated samples that the classifier assigns to one digit with probability
>= 0.9, beside the same share for held-out real digits (see `metrics.digits_check`).
"""

import click
import torch

from metrics import digits_check
from stylegan_plus.cli import device as devices
from stylegan_plus.data import make_digits
from stylegan_plus.data.dataset_errors import DatasetToolError
from stylegan_plus.networks.inference import prepare_generator
from stylegan_plus.sampling import prior


def _digit_generator(network_pkl):
    """(G_ema of the pickle on CPU, the prior its snapshot records); BadParameter unless it draws
    grayscale digits of a known size."""
    nets = devices.load_networks(network_pkl, ('G_ema',), optional_keys=(prior.SNAPSHOT_KEY,))
    try:
        z_dist = prior.snapshot_z_dist(nets)
    except ValueError as err:
        raise click.BadParameter(f'{network_pkl}: {err}', param_hint='--network') from None
    G = prepare_generator(nets['G_ema'], torch.device('cpu'), log=click.echo)
    resolution = int(G.img_resolution)
    if resolution not in make_digits.RESOLUTIONS or int(G.img_channels) != 1:
        raise click.BadParameter(f'{network_pkl} draws {G.img_channels}-channel images of {resolution} px; the '
                                 f'digits check needs grayscale images of '
                                 f'{", ".join(map(str, make_digits.RESOLUTIONS))} px', param_hint='--network')
    return G, z_dist


def _report(checker, pixels, generated, threshold, grid_path):
    click.echo(f'Digits check ({checker.resolution} px classifier; accepted = probability >= {threshold:g}):')
    click.echo('  generated: ' + digits_check.describe(generated, 'samples', 'drawn as the class asked for'))
    click.echo('  reals:     ' + digits_check.describe(digits_check.check_reals(checker, threshold),
                                                       'held-out real digits'))
    if grid_path:
        shown = pixels[:64]
        digits_check.save_verdict_grid(shown, digits_check.probabilities(checker, shown), grid_path, threshold)
        click.echo(f'  {grid_path}: the first {len(shown)} samples, framed green (recognised) or red (not)')


@click.command()
@click.option('--network', 'network_pkl', help='Network pickle (G_ema is sampled)', required=True, metavar='PKL')
@click.option('--samples', help='Generated samples to classify', type=click.IntRange(min=1), default=256,
              show_default=True)
@click.option('--seed', help='Seed of the latents', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--threshold', help='Probability a sample must reach', type=click.FloatRange(0, 1),
              default=digits_check.THRESHOLD, show_default=True)
@click.option('--require', help='Exit with status 1 when the generated share is below this (0-1)',
              type=click.FloatRange(0, 1), metavar='SHARE')
@click.option('--grid', 'grid_path', help='Also save the first 64 samples, framed green (recognised) or red',
              metavar='PNG')
def main(network_pkl, samples, seed, threshold, require, grid_path):
    """Classify generated digits with a classifier trained on scikit-learn's digits; print the shares."""
    G, z_dist = _digit_generator(network_pkl)
    try:
        checker = digits_check.fit_checker(int(G.img_resolution))
    except DatasetToolError as err:   # scikit-learn missing
        raise click.ClickException(str(err)) from None
    pixels, labels = digits_check.sample_digits(G, samples, seed=seed, return_labels=True, z_dist=z_dist)
    # A class-conditional G over the 10 digits is also scored on drawing the class it was asked for.
    asked = labels if G.c_dim == digits_check.NUM_CLASSES else None
    generated = digits_check.check(checker, pixels, asked, threshold=threshold)
    _report(checker, pixels, generated, threshold, grid_path)
    if require is not None and generated.share < require:
        raise click.ClickException(f'only {100 * generated.share:.1f} % of the samples were recognised; '
                                   f'--require asks for at least {100 * require:.1f} %')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
