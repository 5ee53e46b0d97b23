"""DCGAN generator and discriminator for low resolutions (`--cfg=dcgan`, 16 to 64 px).

G: (z, embedded label) -> 4x4 by a transposed conv, then stride-2 transposed convs with BatchNorm
and ReLU, tanh output. D: stride-2 convs with leaky ReLU (no normalisation, so R1 and gradient
penalties stay per-sample), a linear output on the flattened 4x4 features, and projection
conditioning. Channels at resolution r: min(channel_base // r, channel_max); the defaults give
the classic DCGAN widths (64 channels at 32x32 for a 64-px model, 512 at 4x4).

Pickled with its source (persistent classes), so this module imports only numpy, torch and the
official torch_utils names.
"""

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence


def _channels(res, channel_base, channel_max):
    return min(channel_base // res, channel_max)


def _check_resolution(img_resolution):
    log2 = int(np.round(np.log2(max(img_resolution, 1))))
    if img_resolution < 8 or 2 ** log2 != img_resolution:
        raise ValueError(f'DCGAN img_resolution must be a power of two >= 8, got {img_resolution}')
    return log2


def _init_dcgan_weights(module):
    # DCGAN initialisation: N(0, 0.02) weights, BatchNorm scales N(1, 0.02), zero biases.
    if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
        torch.nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    elif isinstance(module, torch.nn.BatchNorm2d):
        torch.nn.init.normal_(module.weight, 1.0, 0.02)
        torch.nn.init.zeros_(module.bias)


@persistence.persistent_class
class Generator(torch.nn.Module):
    """z [N, z_dim], c [N, c_dim] -> img [N, img_channels, R, R] float32 in [-1, 1].

    Submodules: `embed` (Linear c_dim -> embed_features, only if c_dim > 0), `b4` (z -> 4x4),
    `b8` ... `b{R/2}` (2x upsampling), `torgb` (-> R x R, tanh). Keyword arguments of the
    StyleGAN2 generator (truncation_psi, noise_mode, ...) are accepted and ignored, so tools can
    call both alike.
    """

    def __init__(self, z_dim, c_dim, img_resolution, img_channels,
                 channel_base=2048,         # channels(r) = min(channel_base // r, channel_max)
                 channel_max=512,
                 embed_features=None):      # label embedding width; None = z_dim
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.embed_features = 0
        if c_dim > 0:
            self.embed_features = z_dim if embed_features is None else embed_features
        ch = lambda res: _channels(res, channel_base, channel_max)

        if c_dim > 0:
            self.embed = torch.nn.Linear(c_dim, self.embed_features)
        self.b4 = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(z_dim + self.embed_features, ch(4), kernel_size=4, stride=1, padding=0, bias=False),
            torch.nn.BatchNorm2d(ch(4)), torch.nn.ReLU())
        self.block_resolutions = [2 ** i for i in range(3, log2)]
        for res in self.block_resolutions:
            setattr(self, f'b{res}', torch.nn.Sequential(
                torch.nn.ConvTranspose2d(ch(res // 2), ch(res), kernel_size=4, stride=2, padding=1, bias=False),
                torch.nn.BatchNorm2d(ch(res)), torch.nn.ReLU()))
        self.torgb = torch.nn.ConvTranspose2d(ch(img_resolution // 2), img_channels, kernel_size=4, stride=2, padding=1)
        self.apply(_init_dcgan_weights)

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, **ignored_kwargs):
        del truncation_psi, truncation_cutoff, ignored_kwargs
        misc.assert_shape(z, [None, self.z_dim])
        x = z.to(torch.float32)
        if self.c_dim > 0:
            misc.assert_shape(c, [z.shape[0], self.c_dim])
            x = torch.cat([x, self.embed(c.to(torch.float32))], dim=1)
        x = self.b4(x.reshape(x.shape[0], x.shape[1], 1, 1))
        for res in self.block_resolutions:
            x = getattr(self, f'b{res}')(x)
        return torch.tanh(self.torgb(x))


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """img [N, img_channels, R, R], c [N, c_dim] -> logits [N, 1] float32.

    With `return_features=True` returns (logits, features [N, channels(4) * 16]), the flattened
    4x4 feature map feeding the output layer. Conditioning is by projection:
    logits += <features, embed(c)>. Blocks `b{R}` ... `b8` halve the resolution.
    """

    def __init__(self, c_dim, img_resolution, img_channels,
                 channel_base=2048,         # channels(r) = min(channel_base // r, channel_max)
                 channel_max=512,
                 lrelu_slope=0.2):
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        ch = lambda res: _channels(res, channel_base, channel_max)

        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        for res in self.block_resolutions:
            in_channels = img_channels if res == img_resolution else ch(res)
            setattr(self, f'b{res}', torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, ch(res // 2), kernel_size=4, stride=2, padding=1),
                torch.nn.LeakyReLU(lrelu_slope)))
        self.num_features = ch(4) * 16
        self.out = torch.nn.Linear(self.num_features, 1)
        if c_dim > 0:
            self.embed = torch.nn.Linear(c_dim, self.num_features, bias=False)
        self.apply(_init_dcgan_weights)

    def forward(self, img, c=None, return_features=False, **ignored_kwargs):
        del ignored_kwargs
        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        x = img.to(torch.float32)
        for res in self.block_resolutions:
            x = getattr(self, f'b{res}')(x)
        features = x.flatten(1)
        logits = self.out(features)
        if self.c_dim > 0:
            misc.assert_shape(c, [img.shape[0], self.c_dim])
            logits = logits + (features * self.embed(c.to(torch.float32))).sum(dim=1, keepdim=True)
        return (logits, features) if return_features else logits
