"""Torch-free value tables of train.py's options (`--aug`, `--augpipe`, `--resume` presets).

`train.py --help` lists these as choices before anything heavy is imported, so they live here
rather than in `options.py` / `augment.py` (which import torch and scipy). The augment-pipeline
source must import only official modules, so it cannot import this table; the official path
`training.augment.augpipe_specs` re-exports it from here.
"""

_CDN = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets'
RESUME_SPECS = {
    'ffhq256': f'{_CDN}/ffhq-res256-mirror-paper256-noaug.pkl',
    'ffhq512': f'{_CDN}/ffhq-res512-mirror-stylegan2-noaug.pkl',
    'ffhq1024': f'{_CDN}/ffhq-res1024-mirror-stylegan2-noaug.pkl',
    'celebahq256': f'{_CDN}/celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl',
    'lsundog256': f'{_CDN}/lsundog-res256-paper256-kimg100000-noaug.pkl',
}
AUG_MODES = ('noaug', 'ada', 'fixed')


def _preset(*names):
    # Each listed transform gets probability multiplier 1.
    return {name: 1 for name in names}


_BLIT = ('xflip', 'rotate90', 'xint')
_GEOM = ('scale', 'rotate', 'aniso', 'xfrac')
_COLOR = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')

# --augpipe name -> AugmentPipe keywords; the key order lands in training_options.json.
augpipe_specs = {
    'blit':   _preset(*_BLIT),
    'geom':   _preset(*_GEOM),
    'color':  _preset(*_COLOR),
    'filter': _preset('imgfilter'),
    'noise':  _preset('noise'),
    'cutout': _preset('cutout'),
    'bg':     _preset(*_BLIT, *_GEOM),
    'bgc':    _preset(*_BLIT, *_GEOM, *_COLOR),
    'bgcf':   _preset(*_BLIT, *_GEOM, *_COLOR, 'imgfilter'),
    'bgcfn':  _preset(*_BLIT, *_GEOM, *_COLOR, 'imgfilter', 'noise'),
    'bgcfnc': _preset(*_BLIT, *_GEOM, *_COLOR, 'imgfilter', 'noise', 'cutout'),
}
