"""The official cifar generator's settings, for the benchmarks that time it (P3 cpu_precision, P4 tools_speed).

`OFFICIAL_CIFAR` holds what a cifar pickle of the official trainer stores, precision settings
included: z_dim = w_dim = 512, 10 classes, 2 mapping layers, channel_base 32768, channel_max 512,
num_fp16_res 4, conv_clamp 256, 32 px RGB. `SMOKE_NET` is the same with far fewer channels, for
the seconds-long smoke runs of the test suite.
"""

import copy

import torch

OFFICIAL_CIFAR = dict(z_dim=512, w_dim=512, c_dim=10, img_resolution=32, img_channels=3,
                      mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
SMOKE_NET = dict(OFFICIAL_CIFAR, synthesis_kwargs=dict(channel_base=1024, channel_max=32, num_fp16_res=4,
                                                       conv_clamp=256))


def build_generator(net_kwargs, seed=0):
    """Our Generator (by its official class path) with random weights from torch seed `seed`, eval mode, no gradients."""
    from training.networks import Generator  # pylint: disable=import-outside-toplevel
    torch.manual_seed(seed)
    return Generator(**copy.deepcopy(net_kwargs)).eval().requires_grad_(False)


def build_discriminator(G, net_kwargs):
    """A Discriminator matching `G` and the synthesis settings of `net_kwargs` (random weights), as a snapshot holds."""
    from training.networks import Discriminator  # pylint: disable=import-outside-toplevel
    syn = net_kwargs['synthesis_kwargs']
    return Discriminator(c_dim=G.c_dim, img_resolution=G.img_resolution, img_channels=G.img_channels,
                         channel_base=syn['channel_base'], channel_max=syn['channel_max'],
                         num_fp16_res=syn['num_fp16_res'], conv_clamp=syn['conv_clamp'], architecture='orig',
                         epilogue_kwargs=dict(mbstd_group_size=32)).eval().requires_grad_(False)
