"""The real/fake decision a trained method makes, computed from its networks.

Most methods decide with D's own logit. Two do not, and for them D's `out` layer is never trained
(it stays in the graph with weight 0):

- RFGAN (`--loss=rf`): `rf_head([h_D(x), h_E(x)], c)`, h_E the frozen autoencoder encoder's
  penultimate features (snapshot keys `rf_ae`, `rf_head`);
- LOGAN-B (`--loss=logan-b`): the joint D(x, z), `Dz` on D's features and z, or an MLP on [x, z]
  for the 2-D setting (snapshot key `Dz`).

The plugins' `decision` hooks (`RFLoss.decision`, `LOGANBLoss.decision`; docs/plugins.md) compute
these through the functions below, and the latent steps of sampling (`generate.py`/`calc_metrics.py
--latent-steps`) build the same decision from a snapshot with `snapshot_decision`, so training,
AdvLatGAN-qua's mining and "-z" sampling steer by one score.

A decision is a callable `(img [N, ...], c [N, c_dim], z [N, z_dim]) -> logits [N, 1] float32`;
z matters only for a joint D(x, z).
"""

import torch

# Snapshot keys of the extra networks a decision may need, beyond D.
DECISION_KEYS = ('Dz', 'rf_ae', 'rf_head')


def joint_pair_logits(D, Dz, img, c, z, on_features=None, **D_kwargs):
    """LOGAN-B's D(x, z): (joint logits [N, 1], D's own logits [N, 1]).

    img: [N, C, H, W] (or [N, 2] points) as D sees it (already augmented); c: [N, c_dim]; z: [N, z_dim].
    Dz: a fusion head on (D's features, z, c) (`on_features=True`), or an MLP D on the flattened
    [x, z] (LOGAN-B's 2-D discriminator, `on_features=False`); None = a head has a `fuse`
    attribute. D's logits are returned so a training step can keep D's output layer in the graph.
    """
    if on_features is None:
        on_features = hasattr(Dz, 'fuse')
    if on_features:
        d_logits, features = D(img, c, return_features=True, **D_kwargs)
        return Dz(features, z, c), d_logits
    d_logits = D(img, c, **D_kwargs)
    pair = torch.cat([img.to(torch.float32).flatten(1), z.to(torch.float32)], dim=1)
    return Dz(pair, c), d_logits


def fused_logits(D, encoder, head, img, c, **D_kwargs):
    """RFGAN's decision: (fused logits [N, 1], D's logits [N, 1], D's features [N, F]).

    img: [N, ...] as D sees it (already augmented); encoder: the frozen autoencoder's encoder,
    called `encoder(img, return_features=True)`; head: `head(D features, encoder features, c)`.
    """
    d_logits, features = D(img, c, return_features=True, **D_kwargs)
    _code, encoder_features = encoder(img, return_features=True)
    return head(features, encoder_features, c), d_logits, features


def describe_decision(nets):
    """Which decision a snapshot's networks make: 'logan-b joint D(x, z)', 'rf fused head' or 'D'."""
    if 'Dz' in nets:
        return 'logan-b joint D(x, z)'
    if 'rf_head' in nets:
        return 'rf fused head'
    return 'D'


def snapshot_decision(nets, D_kwargs=None):
    """The decision callable `(img, c, z) -> logits [N, 1]` of a snapshot's networks.

    nets: dict with 'D' and, where the method has them, the extra networks named in
    `DECISION_KEYS` (modules on one device, eval mode). D_kwargs: extra keywords for D (e.g.
    `force_fp32=True`). Raises ValueError when an RFGAN snapshot lacks one of its two networks.
    """
    D_kwargs = dict(D_kwargs or {})
    D = nets['D']
    if 'Dz' in nets:
        Dz = nets['Dz']
        return lambda img, c, z: joint_pair_logits(D, Dz, img, c, z, **D_kwargs)[0]
    if 'rf_head' in nets or 'rf_ae' in nets:
        missing = [key for key in ('rf_ae', 'rf_head') if key not in nets]
        if missing:
            raise ValueError(f'an RFGAN snapshot needs both rf_ae and rf_head to decide; missing {missing}')
        encoder, head = nets['rf_ae'].encoder, nets['rf_head']
        return lambda img, c, z: fused_logits(D, encoder, head, img, c, **D_kwargs)[0]
    return lambda img, c, z: D(img, c, **D_kwargs)
