"""Reading network pickles: native snapshots and TensorFlow StyleGAN2 / StyleGAN2-ADA pickles.

`load_network_pkl` is what every tool uses (official `legacy.load_network_pkl`). A native
snapshot is a dict `{training_set_kwargs, G, D, G_ema, augment_pipe}` of persistent modules. A
TensorFlow pickle is a 3-tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects; they are
read as plain `_TFNetworkStub` records (static_kwargs, numpy variables, sub-components) and
converted to our `training.networks` classes, without TensorFlow.

Security: unpickling runs code. Official and our snapshot pickles embed the Python source of
their network classes and execute it when loaded, so only load pickles you trust; see
`stylegan_plus.networks.export` for a weights-only format.
"""

import copy
import pickle
import re

import numpy as np
import torch

import dnnlib
from torch_utils import misc

#----------------------------------------------------------------------------
# Unpickling.

class _TFNetworkStub(dnnlib.EasyDict):
    """Stands in for `dnnlib.tflib.network.Network`: its pickled state as a plain record.

    Fields used here: `version`, `name`, `static_kwargs` (constructor kwargs), `variables`
    (list of (name, numpy array)), `components` (dict of name -> stub).
    """

    def __setstate__(self, state):
        # Keep the state as items (not instance attributes) so both stub.x and stub['x'] work.
        self.update(state)


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickler that maps the TensorFlow network class to `_TFNetworkStub`."""

    def find_class(self, module, name):
        if module == 'dnnlib.tflib.network' and name == 'Network':
            return _TFNetworkStub
        return super().find_class(module, name)


def _is_tf_triplet(data) -> bool:
    return isinstance(data, tuple) and len(data) == 3 and all(isinstance(net, _TFNetworkStub) for net in data)


def load_network_pkl(f, force_fp16=False):
    """Read a network pickle from the binary file object `f`.

    Returns a dict with `G`, `D`, `G_ema` (torch modules), `training_set_kwargs` (dict or None)
    and `augment_pipe` (module or None). TensorFlow pickles are converted. With `force_fp16`,
    G, D and G_ema are rebuilt with `num_fp16_res=4, conv_clamp=256` (same weights).
    """
    data = _LegacyUnpickler(f).load()
    if _is_tf_triplet(data):
        tf_G, tf_D, tf_Gs = data
        data = dict(G=convert_tf_generator(tf_G), D=convert_tf_discriminator(tf_D), G_ema=convert_tf_generator(tf_Gs))
    if not isinstance(data, dict):
        raise TypeError(f'not a network pickle: expected a snapshot dict or a TensorFlow (G, D, Gs) tuple, '
                        f'got {type(data).__name__}')
    data.setdefault('training_set_kwargs', None)
    data.setdefault('augment_pipe', None)
    _validate_snapshot(data)
    if force_fp16:
        for key in ('G', 'D', 'G_ema'):
            data[key] = _with_fp16(data[key], is_generator=key.startswith('G'))
    return data


def _validate_snapshot(data):
    accepted = dict(G=torch.nn.Module, D=torch.nn.Module, G_ema=torch.nn.Module,
                    training_set_kwargs=(dict, type(None)), augment_pipe=(torch.nn.Module, type(None)))
    for key, allowed in accepted.items():
        if not isinstance(data.get(key), allowed):
            what = 'a torch.nn.Module' if allowed is torch.nn.Module else ' or '.join(t.__name__ for t in allowed)
            raise TypeError(f'network pickle entry {key!r} must be {what}, got {type(data.get(key)).__name__}')


def _with_fp16(net, is_generator):
    """Rebuild `net` with 4 fp16 resolutions and conv_clamp=256, or return it if already so."""
    kwargs = copy.deepcopy(net.init_kwargs)
    if is_generator:
        kwargs.synthesis_kwargs = dnnlib.EasyDict(kwargs.get('synthesis_kwargs', None) or {})
        target = kwargs.synthesis_kwargs
    else:
        target = kwargs
    target.num_fp16_res = 4
    target.conv_clamp = 256
    if kwargs == net.init_kwargs:
        return net
    rebuilt = type(net)(*net.init_args, **kwargs).eval().requires_grad_(False)
    misc.copy_params_and_buffers(net, rebuilt, require_all=True)
    return rebuilt

#----------------------------------------------------------------------------
# TensorFlow static kwargs -> our constructor kwargs.
# Rows: (TF kwarg, our dotted kwarg path, default, converter). A missing TF kwarg takes the
# default; one given as None stays None. The converter maps the TF value (or default) to ours.
# TF fmap_base counts channels at stage log2(res)-1, ours at log2(res), hence the factor 2.

def _double(value):
    return None if value is None else value * 2


def _none_means_frozen(value):
    return 1 if value is None else value  # TF w_avg_beta=None: w_avg never updated


_G_KWARG_TABLE = (
    ('latent_size',          'z_dim',                            512,       None),
    ('label_size',           'c_dim',                            0,         None),
    ('dlatent_size',         'w_dim',                            512,       None),
    ('resolution',           'img_resolution',                   1024,      None),
    ('num_channels',         'img_channels',                     3,         None),
    ('mapping_layers',       'mapping_kwargs.num_layers',        8,         None),
    ('label_fmaps',          'mapping_kwargs.embed_features',    None,      None),
    ('mapping_fmaps',        'mapping_kwargs.layer_features',    None,      None),
    ('mapping_nonlinearity', 'mapping_kwargs.activation',        'lrelu',   None),
    ('mapping_lrmul',        'mapping_kwargs.lr_multiplier',     0.01,      None),
    ('w_avg_beta',           'mapping_kwargs.w_avg_beta',        0.995,     _none_means_frozen),
    ('fmap_base',            'synthesis_kwargs.channel_base',    16384,     _double),
    ('fmap_max',             'synthesis_kwargs.channel_max',     512,       None),
    ('num_fp16_res',         'synthesis_kwargs.num_fp16_res',    0,         None),
    ('conv_clamp',           'synthesis_kwargs.conv_clamp',      None,      None),
    ('architecture',         'synthesis_kwargs.architecture',    'skip',    None),
    ('resample_kernel',      'synthesis_kwargs.resample_filter', [1,3,3,1], None),
    ('use_noise',            'synthesis_kwargs.use_noise',       True,      None),
    ('nonlinearity',         'synthesis_kwargs.activation',      'lrelu',   None),
)
# Run-time options of the TF networks that have no constructor counterpart here.
_G_KWARGS_IGNORED = ('truncation_psi', 'truncation_cutoff', 'style_mixing_prob', 'structure', 'conditioning',
                     'fused_modconv')

_D_KWARG_TABLE = (
    ('label_size',         'c_dim',                              0,         None),
    ('resolution',         'img_resolution',                     1024,      None),
    ('num_channels',       'img_channels',                       3,         None),
    ('architecture',       'architecture',                       'resnet',  None),
    ('fmap_base',          'channel_base',                       16384,     _double),
    ('fmap_max',           'channel_max',                        512,       None),
    ('num_fp16_res',       'num_fp16_res',                       0,         None),
    ('conv_clamp',         'conv_clamp',                         None,      None),
    ('mapping_fmaps',      'cmap_dim',                           None,      None),
    ('nonlinearity',       'block_kwargs.activation',            'lrelu',   None),
    ('resample_kernel',    'block_kwargs.resample_filter',       [1,3,3,1], None),
    ('freeze_layers',      'block_kwargs.freeze_layers',         0,         None),
    ('mapping_layers',     'mapping_kwargs.num_layers',          0,         None),
    ('mapping_fmaps',      'mapping_kwargs.embed_features',      None,      None),
    ('mapping_fmaps',      'mapping_kwargs.layer_features',      None,      None),
    ('nonlinearity',       'mapping_kwargs.activation',          'lrelu',   None),
    ('mapping_lrmul',      'mapping_kwargs.lr_multiplier',       0.1,       None),
    ('mbstd_group_size',   'epilogue_kwargs.mbstd_group_size',   None,      None),
    ('mbstd_num_features', 'epilogue_kwargs.mbstd_num_channels', 1,         None),
    ('nonlinearity',       'epilogue_kwargs.activation',         'lrelu',   None),
)
_D_KWARGS_IGNORED = ('structure', 'conditioning')


def _translate_kwargs(tf_kwargs, table, ignored, what):
    """Build our nested constructor kwargs (EasyDicts) from TF static kwargs; unknown TF kwargs are an error."""
    tf_kwargs = dict(tf_kwargs or {})
    unknown = sorted(set(tf_kwargs) - {row[0] for row in table} - set(ignored))
    if unknown:
        raise ValueError(f'TensorFlow {what} has static kwargs this converter does not know: {", ".join(unknown)}')
    out = dnnlib.EasyDict()
    for tf_name, path, default, convert in table:
        value = tf_kwargs[tf_name] if tf_name in tf_kwargs else copy.deepcopy(default)
        value = convert(value) if convert is not None else value
        *parents, leaf = path.split('.')
        node = out
        for parent in parents:
            node = node.setdefault(parent, dnnlib.EasyDict())
        node[leaf] = value
    return out

#----------------------------------------------------------------------------
# TensorFlow variables -> our parameters and buffers.

def _flatten_tf_variables(tf_net, prefix=''):
    """All variables of a stub and its components, keyed by their '/'-joined path."""
    flat = {prefix + name: value for name, value in tf_net.variables}
    for comp_name, comp in tf_net.components.items():
        flat.update(_flatten_tf_variables(comp, prefix + comp_name + '/'))
    return flat


def _check_version(tf_net, what):
    version = tf_net.get('version', None)
    if version is None or version < 4:
        raise ValueError(f'TensorFlow {what} pickle version {version} is too old: only version 4 and newer '
                         f'(StyleGAN2 / StyleGAN2-ADA) can be converted')


def _rename_lod_layers(tf_vars, layer, prefix, img_resolution):
    """Map progressive-growing names `{prefix}{layer}_lod{n}/x` to `{prefix}{r}x{r}/{layer}/x`.

    Returns True if any such name was found (the network then uses the 'orig' architecture).
    """
    pattern = re.compile(re.escape(prefix) + layer + r'_lod(\d+)/(.*)')
    found = False
    for name, value in list(tf_vars.items()):
        match = pattern.fullmatch(name)
        if match:
            res = img_resolution // 2 ** int(match.group(1))
            tf_vars[f'{prefix}{res}x{res}/{layer}/{match.group(2)}'] = value
            found = True
    return found


# Array layout changes, TF -> ours.
def _dense(a):             # [in, out] -> [out, in]
    return a.T


def _conv(a):              # [kh, kw, in, out] -> [out, in, kh, kw]
    return a.transpose(3, 2, 0, 1)


def _conv_flipped(a):      # TF transposed convs use the spatially mirrored kernel
    return a[::-1, ::-1].transpose(3, 2, 0, 1)


def _as_is(a):
    return a


def _batch0(a):            # drop a leading batch axis of 1
    return a[0]


def _noise_map(a):         # [1, 1, res, res] -> [res, res]
    return a[0, 0]


def _style_bias(a):        # TF adds 1 to the modulation bias at run time; ours is initialised to 1
    return a + 1


_PARAM_LAYOUT = {'weight': _conv, 'bias': _as_is, 'noise_strength': _as_is}


def _generator_source(name):
    """TF variable (name, transform) for our Generator tensor `name`, or None to keep ours."""
    parts = name.split('.')
    if parts[-1] == 'resample_filter':
        return None
    if parts[0] == 'mapping':
        if parts[1] == 'w_avg':
            return 'dlatent_avg', _as_is
        layer = 'LabelEmbed' if parts[1] == 'embed' else 'Dense' + parts[1][len('fc'):]
        return f'mapping/{layer}/{parts[2]}', (_dense if parts[2] == 'weight' else _as_is)
    res = int(parts[1][1:])
    scope = f'synthesis/{res}x{res}'
    if parts[2] == 'const':
        return f'{scope}/Const/const', _batch0
    if parts[2] == 'skip':
        return f'{scope}/Skip/weight', _conv_flipped
    tf_layer = {'conv0': 'Conv0_up', 'conv1': 'Conv' if res == 4 else 'Conv1', 'torgb': 'ToRGB'}[parts[2]]
    leaf = parts[3]
    if leaf == 'affine':
        return f'{scope}/{tf_layer}/mod_{parts[4]}', (_dense if parts[4] == 'weight' else _style_bias)
    if leaf == 'noise_const':
        # Noise inputs are numbered over all conv layers: 4x4 has one, every later block two.
        index = 0 if res == 4 else 2 * int(np.log2(res)) - (5 if parts[2] == 'conv0' else 4)
        return f'synthesis/noise{index}', _noise_map
    if leaf == 'weight' and tf_layer == 'Conv0_up':
        return f'{scope}/{tf_layer}/weight', _conv_flipped
    return f'{scope}/{tf_layer}/{leaf}', _PARAM_LAYOUT[leaf]


def _discriminator_source(name):
    """TF variable (name, transform) for our Discriminator tensor `name`, or None to keep ours."""
    parts = name.split('.')
    if parts[-1] == 'resample_filter':
        return None
    leaf = parts[-1]
    if parts[0] == 'mapping':
        layer = 'LabelEmbed' if parts[1] == 'embed' else 'Mapping' + parts[1][len('fc'):]
        return f'{layer}/{leaf}', (_dense if leaf == 'weight' else _as_is)
    res = int(parts[0][1:])
    if res == 4 and parts[1] in ('fc', 'out'):
        layer = '4x4/Dense0' if parts[1] == 'fc' else 'Output'
        return f'{layer}/{leaf}', (_dense if leaf == 'weight' else _as_is)
    tf_layer = {'fromrgb': 'FromRGB', 'conv0': 'Conv0', 'conv1': 'Conv1_down', 'skip': 'Skip', 'conv': 'Conv'}[parts[1]]
    return f'{res}x{res}/{tf_layer}/{leaf}', _PARAM_LAYOUT[leaf]


@torch.no_grad()
def _load_tf_variables(module, tf_vars, source_of, what):
    """Fill every parameter/buffer of `module` from `tf_vars` through `source_of(name)`."""
    for name, tensor in misc.named_params_and_buffers(module):
        try:
            source = source_of(name)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f'converting TensorFlow {what}: no TensorFlow counterpart known for {name!r}') from None
        if source is None:
            continue
        tf_name, transform = source
        if tf_name not in tf_vars:
            raise KeyError(f'converting TensorFlow {what}: the pickle lacks variable {tf_name!r} (needed for {name!r})')
        value = np.array(transform(np.asarray(tf_vars[tf_name])), order='C')  # copy: flips give negative strides
        if tuple(value.shape) != tuple(tensor.shape):
            raise ValueError(f'converting TensorFlow {what}: {tf_name!r} gives shape {list(value.shape)} '
                             f'but {name!r} has shape {list(tensor.shape)}')
        tensor.copy_(torch.from_numpy(value))


def convert_tf_generator(tf_G):
    """TensorFlow generator stub -> `training.networks.Generator` (eval mode, no grad)."""
    _check_version(tf_G, 'generator')
    kwargs = _translate_kwargs(tf_G.static_kwargs, _G_KWARG_TABLE, _G_KWARGS_IGNORED, 'generator')
    tf_vars = _flatten_tf_variables(tf_G)
    if _rename_lod_layers(tf_vars, 'ToRGB', 'synthesis/', kwargs.img_resolution):
        kwargs.synthesis_kwargs.architecture = 'orig'
    G = dnnlib.util.construct_class_by_name(class_name='training.networks.Generator', **kwargs)
    G = G.eval().requires_grad_(False)
    _load_tf_variables(G, tf_vars, _generator_source, 'generator')
    return G


def convert_tf_discriminator(tf_D):
    """TensorFlow discriminator stub -> `training.networks.Discriminator` (eval mode, no grad)."""
    _check_version(tf_D, 'discriminator')
    kwargs = _translate_kwargs(tf_D.static_kwargs, _D_KWARG_TABLE, _D_KWARGS_IGNORED, 'discriminator')
    tf_vars = _flatten_tf_variables(tf_D)
    if _rename_lod_layers(tf_vars, 'FromRGB', '', kwargs.img_resolution):
        kwargs.architecture = 'orig'
    D = dnnlib.util.construct_class_by_name(class_name='training.networks.Discriminator', **kwargs)
    D = D.eval().requires_grad_(False)
    _load_tf_variables(D, tf_vars, _discriminator_source, 'discriminator')
    return D
