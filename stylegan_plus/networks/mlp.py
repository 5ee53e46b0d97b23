"""Small fully connected G and D for 2-D point data (`--cfg=toy`).

G: [z, embedded label] -> hidden layers with leaky ReLU -> a linear output of
`img_channels * img_resolution**2` values (2 for points), optionally squashed by a sigmoid into
(0, 1) (`output_activation='sigmoid'`, for data scaled to [0, 1] as in Dist-GAN's 2-D code).
D: the flattened input -> hidden layers with leaky ReLU (the last hidden activation is the
feature vector) -> a linear logit, plus projection conditioning. The point datasets report
`img_resolution = 1`, `img_channels = 2`.

Pickled with its source (persistent classes), so this module imports only numpy, torch and the
official torch_utils names.
"""

import torch

from torch_utils import misc
from torch_utils import persistence

OUTPUT_ACTIVATIONS = ('linear', 'sigmoid')    # mlp.Generator(output_activation=...)


def _hidden_stack(in_features, hidden_features, lrelu_slope):
    layers = []
    for width in hidden_features:
        layers += [torch.nn.Linear(in_features, width), torch.nn.LeakyReLU(lrelu_slope)]
        in_features = width
    return torch.nn.Sequential(*layers), in_features


def _check_widths(hidden_features):
    widths = [int(w) for w in hidden_features]
    if not widths or min(widths) < 1:
        raise ValueError(f'hidden_features must be a non-empty list of positive widths, got {hidden_features!r}')
    return widths


@persistence.persistent_class
class Generator(torch.nn.Module):
    """z [N, z_dim], c [N, c_dim] -> points [N, img_channels] (img_resolution 1), float32; unbounded
    with `output_activation='linear'`, in (0, 1) with 'sigmoid'.

    For img_resolution R > 1 the output is reshaped to [N, img_channels, R, R]. Submodules:
    `embed` (only if c_dim > 0), `body` (hidden layers), `out` (linear). StyleGAN2 keyword
    arguments (truncation_psi, noise_mode, ...) are accepted and ignored.
    """

    def __init__(self, z_dim, c_dim, img_resolution=1, img_channels=2,
                 hidden_features=(128, 128, 128),   # widths of the hidden layers
                 lrelu_slope=0.2,
                 embed_features=None,               # label embedding width; None = z_dim
                 output_activation='linear'):       # 'linear' or 'sigmoid'
        super().__init__()
        widths = _check_widths(hidden_features)
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f'output_activation={output_activation!r} is not supported; '
                             f'expected one of {", ".join(OUTPUT_ACTIVATIONS)}')
        self.output_activation = output_activation
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.embed_features = 0
        if c_dim > 0:
            self.embed_features = z_dim if embed_features is None else embed_features
            self.embed = torch.nn.Linear(c_dim, self.embed_features)
        self.body, width = _hidden_stack(z_dim + self.embed_features, widths, lrelu_slope)
        self.out = torch.nn.Linear(width, img_channels * img_resolution ** 2)

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, **ignored_kwargs):
        del truncation_psi, truncation_cutoff, ignored_kwargs
        misc.assert_shape(z, [None, self.z_dim])
        x = z.to(torch.float32)
        if self.c_dim > 0:
            misc.assert_shape(c, [z.shape[0], self.c_dim])
            x = torch.cat([x, self.embed(c.to(torch.float32))], dim=1)
        x = self.out(self.body(x))
        if self.output_activation == 'sigmoid':
            x = torch.sigmoid(x)
        if self.img_resolution > 1:
            x = x.reshape(x.shape[0], self.img_channels, self.img_resolution, self.img_resolution)
        return x


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """x [N, img_channels] (or [N, img_channels, R, R]), c [N, c_dim] -> logits [N, 1] float32.

    With `return_features=True` returns (logits, features [N, hidden_features[-1]]), the last
    hidden activation. Conditioning by projection: logits += <features, embed(c)>.
    """

    def __init__(self, c_dim, img_resolution=1, img_channels=2,
                 hidden_features=(128, 128, 128),   # widths of the hidden layers
                 lrelu_slope=0.2):
        super().__init__()
        widths = _check_widths(hidden_features)
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.in_features = img_channels * img_resolution ** 2
        self.body, self.num_features = _hidden_stack(self.in_features, widths, lrelu_slope)
        self.out = torch.nn.Linear(self.num_features, 1)
        if c_dim > 0:
            self.embed = torch.nn.Linear(c_dim, self.num_features, bias=False)

    def forward(self, x, c=None, return_features=False, **ignored_kwargs):
        del ignored_kwargs
        x = x.to(torch.float32).flatten(1)
        misc.assert_shape(x, [None, self.in_features])
        features = self.body(x)
        logits = self.out(features)
        if self.c_dim > 0:
            misc.assert_shape(c, [x.shape[0], self.c_dim])
            logits = logits + (features * self.embed(c.to(torch.float32))).sum(dim=1, keepdim=True)
        return (logits, features) if return_features else logits
