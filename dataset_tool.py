"""Convert an image collection into the folder/zip format that training reads.

Examples:

\b
  python dataset_tool.py --source=~/downloads/cifar-10-python.tar.gz --dest=~/datasets/cifar10.zip
  python dataset_tool.py --source=~/downloads/train-images-idx3-ubyte.gz --dest=~/datasets/mnist.zip
  python dataset_tool.py --source=~/downloads/lsun/raw/cat_lmdb --dest=~/datasets/lsuncat200k.zip \\
      --transform=center-crop --width=256 --height=256 --max-images=200000
  python dataset_tool.py --source=~/photos --dest=~/datasets/photos128.zip \\
      --transform=center-crop --resolution=128x128 --subfolders-as-labels --skip-bad

\b
--dest is a .zip file or a folder (empty or absent); an existing zip is replaced only with
--overwrite, and other extensions (x.tar) are refused. --resolution=WxH is short for --width and
--height.
"""

import click

from stylegan_plus.data.dataset_convert import convert
from stylegan_plus.data.dataset_errors import DatasetToolError, OptionError
from stylegan_plus.data.dataset_transforms import merge_resolution, parse_resolution


def _resolution(_ctx, _param, value):
    if value is None:
        return None
    try:
        return parse_resolution(value)
    except OptionError as err:
        raise click.BadParameter(str(err)) from None


@click.command(help=__doc__)
@click.option('--source', help='Folder (recursive), .zip, LSUN *_lmdb folder, cifar-10-python.tar.gz or train-images-idx3-ubyte.gz', required=True, metavar='PATH')
@click.option('--dest', help='Output folder (empty or absent) or .zip file', required=True, metavar='PATH')
@click.option('--max-images', help='Stop after writing this many images', type=click.IntRange(min=1), metavar='INT')
@click.option('--resize-filter', help='Filter used for scaling', type=click.Choice(['box', 'lanczos']), default='lanczos', show_default=True)
@click.option('--transform', help='Crop before scaling (needs --width and --height)', type=click.Choice(['center-crop', 'center-crop-wide']))
@click.option('--width', help='Output width', type=click.IntRange(min=1), metavar='INT')
@click.option('--height', help='Output height', type=click.IntRange(min=1), metavar='INT')
@click.option('--resolution', help='Output size as WxH, e.g. 256x256 (the same as --width and --height)',
              metavar='WxH', callback=_resolution)
@click.option('--subfolders-as-labels', help='Class label = index of the first-level sub-folder (sorted names)', is_flag=True)
@click.option('--skip-bad', help='Skip unreadable images (each one reported) instead of aborting', is_flag=True)
@click.option('--overwrite', help='Replace an existing --dest .zip file', is_flag=True)
def convert_dataset(source, dest, max_images, resize_filter, transform, width, height, resolution,
                    subfolders_as_labels, skip_bad, overwrite):
    """Entry point; see the module docstring."""
    try:
        width, height = merge_resolution(resolution, width, height)
        report = convert(source, dest, max_images=max_images, resize_filter=resize_filter, transform=transform,
                         width=width, height=height, subfolders_as_labels=subfolders_as_labels, skip_bad=skip_bad,
                         overwrite=overwrite)
    except OptionError as err:
        raise click.BadParameter(str(err), param_hint=err.param) from None
    except DatasetToolError as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:   # e.g. disk full or no permission at --dest; the partial output is removed
        raise click.ClickException(f'{err}') from None
    for line in report.notices():
        click.echo(line)
    click.echo(report.summary())


if __name__ == '__main__':
    convert_dataset()  # pylint: disable=no-value-for-parameter
