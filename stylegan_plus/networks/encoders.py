"""Extra networks of the loss plugins: encoders shaped like D, joint-D heads, RFGAN's autoencoder.

The networks are built to mirror the run's own G and D, whatever their family (StyleGAN2, DCGAN,
MLP), through the small interface every family provides:

- `DiscriminatorEncoder`: a fresh, unconditional copy of D's architecture whose output layer (the
  last submodule named `out`; for StyleGAN2 the b4 epilogue's `out`) is replaced by one with
  `out_dim` outputs (StyleGAN2: without minibatch stddev, so each code depends on its image only). `E(x)` -> [N, out_dim]; `E(x, return_features=True)` also returns D's
  penultimate feature vector of the copy.
- `FusionHead`: a decision `logit(h, s, c)` from D's features h and a side vector s (RFGAN: the
  frozen encoder's features, concatenated; LOGAN-B: the latent z, embedded then added or
  concatenated), one linear layer, plus label projection when c_dim > 0.
- `RFAutoencoder`: encoder = `DiscriminatorEncoder` (code of `code_dim`), decoder = an
  unconditional copy of G's architecture (mapping + synthesis for StyleGAN2).

The copies are built from a class path and constructor keywords (`network_kwargs`) with
`dnnlib.util.construct_class_by_name`, so the init kwargs of these persistent classes are plain
data. Pickles embed this file's source and must load in an official StyleGAN2-ADA checkout, so
the module imports only numpy, torch, dnnlib and official torch_utils names.
"""

import numpy as np
import torch

import dnnlib
from torch_utils import misc
from torch_utils import persistence

FUSE_MODES = ('add', 'concat')

#----------------------------------------------------------------------------
# Building copies of the run's networks.

def _original_class(net):
    cls = type(net)
    # A persistent class is a generated subclass; its base is the class the user wrote.
    return cls.__bases__[0] if persistence.is_persistent(net) else cls


def _argument_names(cls):
    # Named parameters of the constructor, without `self` (read from its code object).
    code = cls.__init__.__code__
    return code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]


def network_kwargs(net, **overrides):
    """`construct_class_by_name` kwargs that rebuild `net`'s architecture: {class_name, **init kwargs}.

    net: a persistent module (it records its constructor arguments). Positional arguments become
    keywords by the constructor's parameter names; `overrides` replace keywords (e.g. c_dim=0).
    """
    if not persistence.is_persistent(net):
        raise TypeError(f'{type(net).__name__} is not a persistent class: its constructor arguments are unknown')
    cls = _original_class(net)
    args = net.init_args
    names = _argument_names(cls)
    if len(args) > len(names):
        raise TypeError(f'{cls.__name__} was built with {len(args)} positional arguments; expected at most {len(names)}')
    kwargs = dict(zip(names, args))
    kwargs.update(net.init_kwargs)
    kwargs.update(overrides)
    return dict(class_name=f'{cls.__module__}.{cls.__qualname__}', **kwargs)


def encoder_backbone_kwargs(D):
    """`network_kwargs` of an unconditional copy of D for an encoder.

    StyleGAN2's minibatch-stddev layer is switched off (`epilogue_kwargs.mbstd_num_channels=0`), so
    that an encoding depends on its own image only, not on the rest of the batch, and no layer is
    frozen (`--freezed` is about transferring D's weights; the encoder starts fresh).
    """
    kwargs = network_kwargs(D, c_dim=0)
    names = _argument_names(_original_class(D))
    if 'epilogue_kwargs' in names:
        kwargs['epilogue_kwargs'] = dict(kwargs.get('epilogue_kwargs', {}), mbstd_num_channels=0)
    if 'block_kwargs' in names:
        kwargs['block_kwargs'] = {k: v for k, v in kwargs.get('block_kwargs', {}).items() if k != 'freeze_layers'}
    return kwargs


def _output_layer_path(net):
    names = [name for name, _module in net.named_modules() if name.split('.')[-1] == 'out']
    if not names:
        raise ValueError(f'{type(net).__name__} has no output layer named "out" to replace')
    return names[-1]


def output_layer(net):
    """The discriminator's output layer: its last submodule named `out`."""
    return net.get_submodule(_output_layer_path(net))


def uses_equalized_lr(net):
    """True when D's output layer scales its weights at run time (StyleGAN2's equalized learning rate)."""
    return hasattr(output_layer(net), 'weight_gain')


def has_conv_layers(net):
    """True for convolutional discriminators (a submodule class named *Conv*), False for MLPs."""
    return any('Conv' in type(module).__name__ for module in net.modules())


def feature_dim(D):
    """Width F of `D(x, c, return_features=True)[1]`, measured on one zero input (no gradient)."""
    shape = [1, D.img_channels] + ([D.img_resolution] * 2 if D.img_resolution > 1 else [])
    param = next(D.parameters())
    was_training = D.training
    try:
        D.eval()
        with torch.no_grad():
            c = torch.zeros([1, D.c_dim], device=param.device)
            _logits, features = D(torch.zeros(shape, device=param.device), c, return_features=True)
    finally:
        D.train(was_training)
    return int(features.shape[1])

#----------------------------------------------------------------------------

@persistence.persistent_class
class Dense(torch.nn.Module):
    """Linear layer x [N, in] -> [N, out], float32. Weights N(0, 1/in) at the start.

    equalized=True stores N(0, 1) weights and multiplies by 1/sqrt(in) at run time (StyleGAN2's
    equalized learning rate, for Adam learning rates of StyleGAN2's size).
    """

    def __init__(self, in_features, out_features, bias=True, equalized=False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.equalized = equalized
        self.weight_scale = float(1 / np.sqrt(in_features)) if equalized else 1.0
        init_std = 1.0 if equalized else float(1 / np.sqrt(in_features))
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * init_std)
        self.bias = torch.nn.Parameter(torch.zeros([out_features])) if bias else None

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_scale
        x = x.matmul(w.t())
        return x + self.bias.to(x.dtype) if self.bias is not None else x


@persistence.persistent_class
class DiscriminatorEncoder(torch.nn.Module):
    """D's architecture as an encoder: x [N, C, H, W] (or [N, 2] points) -> [N, out_dim] float32.

    backbone_kwargs: `encoder_backbone_kwargs(D)`, the unconditional copy to build. Its output layer
    is replaced by one of the same class with `out_dim` outputs; everything else is D's design.
    forward(x, c=None, return_features=False): c is accepted and ignored (the copy has no labels);
    with return_features, returns (out [N, out_dim], features [N, F]).
    """

    def __init__(self, backbone_kwargs, out_dim):
        super().__init__()
        self.out_dim = out_dim
        self.net = dnnlib.util.construct_class_by_name(**backbone_kwargs)
        path = _output_layer_path(self.net)
        parent_path, _, attr = path.rpartition('.')
        parent = self.net.get_submodule(parent_path) if parent_path else self.net
        old = getattr(parent, attr)
        setattr(parent, attr, type(old)(old.weight.shape[1], out_dim))

    def forward(self, x, c=None, return_features=False):
        del c
        out, features = self.net(x, None, return_features=True)
        misc.assert_shape(out, [x.shape[0], self.out_dim])
        return (out, features) if return_features else out


JOINT_WIDTH_MAX = 512   # DCGAN's flattened features are 8192 wide: a square hidden layer would be 67M weights


@persistence.persistent_class
class FusionHead(torch.nn.Module):
    """Joint decision from D's features h [N, F] and a side vector s [N, S] -> logits [N, 1] float32.

    embed_side: s first goes through a dense layer to F values with leaky ReLU (LOGAN-B's latent
    embedding); otherwise it is used as is (RFGAN's encoder features). fuse: 'add' (h + s, needs
    equal widths) or 'concat' ([h, s]). joint_layers: dense layers (width min(F, 512), leaky ReLU) on the fused
    vector before the output; with 0 the logit is w.h + w'.s, a sum of a term in h and a term in s,
    which cannot judge whether h and s belong together (LOGAN-B needs >= 1; RFGAN uses 0). Then one
    dense layer to the logit; with c_dim > 0 the logit gets the projection <fused, embed(c)> / sqrt(width).
    """

    def __init__(self, feature_dim, side_dim, c_dim=0, fuse='concat', embed_side=False, equalized=False,
                 lrelu_slope=0.2, joint_layers=0):
        super().__init__()
        if fuse not in FUSE_MODES:
            raise ValueError(f'fuse={fuse!r}; expected one of {", ".join(FUSE_MODES)}')
        self.feature_dim = feature_dim
        self.side_dim = side_dim
        self.c_dim = c_dim
        self.fuse = fuse
        self.lrelu_slope = lrelu_slope
        side_width = side_dim
        if embed_side:
            side_width = feature_dim
            self.embed = Dense(side_dim, side_width, equalized=equalized)
        if fuse == 'add' and side_width != feature_dim:
            raise ValueError(f'fuse="add" needs side width {side_width} == feature width {feature_dim}')
        if joint_layers < 0:
            raise ValueError(f'joint_layers={joint_layers}; expected an integer >= 0')
        width = feature_dim if fuse == 'add' else feature_dim + side_width
        hidden_width = min(feature_dim, JOINT_WIDTH_MAX)
        self.joint = torch.nn.ModuleList()
        for _ in range(joint_layers):
            self.joint.append(Dense(width, hidden_width, equalized=equalized))
            width = hidden_width
        self.fused_dim = width
        self.out = Dense(self.fused_dim, 1, equalized=equalized)
        if c_dim > 0:
            self.cmap = Dense(c_dim, self.fused_dim, bias=False, equalized=equalized)

    def forward(self, features, side, c=None):
        misc.assert_shape(features, [None, self.feature_dim])
        misc.assert_shape(side, [features.shape[0], self.side_dim])
        features = features.to(torch.float32)
        side = side.to(torch.float32)
        if hasattr(self, 'embed'):
            side = torch.nn.functional.leaky_relu(self.embed(side), self.lrelu_slope)
        fused = features + side if self.fuse == 'add' else torch.cat([features, side], dim=1)
        for layer in self.joint:
            fused = torch.nn.functional.leaky_relu(layer(fused), self.lrelu_slope)
        logits = self.out(fused)
        if self.c_dim > 0:
            misc.assert_shape(c, [features.shape[0], self.c_dim])
            proj = (fused * self.cmap(c.to(torch.float32))).sum(dim=1, keepdim=True)
            logits = logits + proj * (1 / np.sqrt(self.fused_dim))
        return logits


@persistence.persistent_class
class RFAutoencoder(torch.nn.Module):
    """RFGAN's autoencoder: encoder with D's architecture, decoder with G's (both unconditional).

    encoder_kwargs: kwargs of `DiscriminatorEncoder` (out_dim = the code size = G's z_dim).
    decoder_kwargs: list of `network_kwargs` dicts: [generator] for a generator without a
    mapping/synthesis split, [mapping, synthesis] for StyleGAN2.
    forward(x [N, ...]) -> reconstruction of the same shape; `encoder(x, return_features=True)[1]`
    is the representative feature h_E of the paper.
    """

    def __init__(self, encoder_kwargs, decoder_kwargs):
        super().__init__()
        if len(decoder_kwargs) not in (1, 2):
            raise ValueError(f'decoder_kwargs must list 1 (generator) or 2 (mapping, synthesis) networks, '
                             f'got {len(decoder_kwargs)}')
        self.encoder = DiscriminatorEncoder(**encoder_kwargs)
        self.decoder = torch.nn.ModuleList([dnnlib.util.construct_class_by_name(**kw) for kw in decoder_kwargs])

    def decode(self, code):
        """code [N, code_dim] -> image (or points)."""
        if len(self.decoder) == 1:
            return self.decoder[0](code, None)
        mapping, synthesis = self.decoder
        return synthesis(mapping(code, None, skip_w_avg_update=True))

    def forward(self, x):
        return self.decode(self.encoder(x))

#----------------------------------------------------------------------------
# Builders (used by the loss plugins with the run's networks).

def _seeded(seed, build):
    # Built on CPU from a fixed seed so the run's own random stream is not shifted.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_encoder(D, out_dim, seed=0):
    """An unconditional `DiscriminatorEncoder` mirroring D (unwrapped), with out_dim outputs, on CPU."""
    return _seeded(seed, lambda: DiscriminatorEncoder(backbone_kwargs=encoder_backbone_kwargs(D), out_dim=out_dim))


def build_fusion_head(D, side_dim, fuse, embed_side, seed=0, joint_layers=0):
    """A `FusionHead` for D's features (width measured), D's label size and parameterisation, on CPU."""
    width = feature_dim(D)
    return _seeded(seed, lambda: FusionHead(width, side_dim, c_dim=D.c_dim, fuse=fuse, embed_side=embed_side,
                                            equalized=uses_equalized_lr(D), joint_layers=joint_layers))


def build_joint_input_discriminator(D, side_dim, seed=0):
    """D's MLP architecture with the side vector appended to its input: [N, in + side_dim] -> logits, on CPU.

    For an MLP D on flat inputs (`in_features`), e.g. LOGAN-B's (2+5)-10-10-1 on 2-D points.
    """
    if has_conv_layers(D) or not hasattr(D, 'in_features'):
        raise ValueError(f'a joint input discriminator needs an MLP D; got {type(D).__name__} with conv layers')
    kwargs = network_kwargs(D, img_channels=D.in_features + side_dim, img_resolution=1)
    return _seeded(seed, lambda: dnnlib.util.construct_class_by_name(**kwargs))


def build_autoencoder(D, decoder_nets, code_dim, seed=0):
    """An `RFAutoencoder` mirroring D (encoder) and G (decoder), on CPU.

    decoder_nets: [G] or [G_mapping, G_synthesis] (unwrapped); copies are unconditional
    (mapping with c_dim=0) and take a code of `code_dim` values.
    """
    if len(decoder_nets) == 1:
        decoder_kwargs = [network_kwargs(decoder_nets[0], c_dim=0, z_dim=code_dim)]
    else:
        mapping, synthesis = decoder_nets
        decoder_kwargs = [network_kwargs(mapping, c_dim=0, z_dim=code_dim), network_kwargs(synthesis)]
    encoder_kwargs = dict(backbone_kwargs=encoder_backbone_kwargs(D), out_dim=code_dim)
    return _seeded(seed, lambda: RFAutoencoder(encoder_kwargs=encoder_kwargs, decoder_kwargs=decoder_kwargs))

#----------------------------------------------------------------------------
