"""Write scikit-learn's handwritten digits as a training data set (no download).

    python -m stylegan_plus.cli.make_digits --dest=datasets/digits32 --resolution=32

The pixels and the layout are described in `stylegan_plus.data.make_digits`; this module is its
command line.
"""

import click

from stylegan_plus.data import make_digits
from stylegan_plus.data.dataset_errors import DatasetToolError


@click.command()
@click.option('--dest', help='Output folder (empty or absent) or .zip file', required=True, metavar='PATH')
@click.option('--resolution', help='Output size in pixels',
              type=click.Choice([str(r) for r in make_digits.RESOLUTIONS]), default='32', show_default=True)
@click.option('--labels/--no-labels', help='Store the digit class (0-9) in dataset.json', default=True,
              show_default=True)
@click.option('--max-images', help='Keep only the first N digits', type=click.IntRange(min=1), metavar='INT')
def main(dest, resolution, labels, max_images):
    """Write scikit-learn's 8x8 digits as a training data set of upsampled grayscale PNGs."""
    try:
        images, targets = make_digits.load_digit_arrays()
        if max_images is not None:
            images, targets = images[:max_images], targets[:max_images]
        pixels = make_digits.digits_to_pixels(images, int(resolution))
        make_digits.write_digits(dest, pixels, targets if labels else None)
    except DatasetToolError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f'Wrote {len(pixels)} digits of {resolution}x{resolution} px to {dest}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
