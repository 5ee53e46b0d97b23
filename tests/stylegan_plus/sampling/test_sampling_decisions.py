"""The decision a method's D makes, rebuilt from snapshot networks, and latent steps that follow it.

For RFGAN and LOGAN-B snapshots D's own `out` layer is never trained: "-z" sampling must steer by
the fused head / the joint D(x, z). Hand nets from tests.stylegan_plus.losses.test_loss_dist (G(z) = (z + 1) [1, 2],
D features h(x) = x1 + x2) with LOGAN-B's and RFGAN's extra networks at fixed weights.
"""

import pytest
import torch

from stylegan_plus.losses.logan_b import LOGANBLoss
from stylegan_plus.losses.rf import RFLoss
from stylegan_plus.sampling import decisions, latent_steps
from tests.stylegan_plus.sampling.test_latent_steps import EPS, STEP_SIGN, Z0, LinearD, LinearG, empty_c
from tests.stylegan_plus.losses.test_loss_dist import set_params, tiny_nets
from tests.stylegan_plus.losses.test_loss_loganb import HEAD
from tests.stylegan_plus.losses.test_loss_rf import AE

X = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
Z = torch.tensor([[1.0], [-1.0]])


def loganb_nets(fuse='concat', embed=1.0):
    G, D = tiny_nets()
    loss = LOGANBLoss('cpu', G=G, D=D, r1_gamma=0, pl_weight=0, style_mixing_prob=0, loganb_fuse=fuse,
                      loganb_joint_layers=0)
    if fuse == 'concat':
        set_params(loss.Dz, dict(HEAD, **{'embed.weight': [[embed]]}))
    return loss, dict(G=G, D=D, E=loss.E, Dz=loss.Dz)


def test_joint_pair_logits_by_hand_and_snapshot_decision():
    loss, nets = loganb_nets()
    # D(x, z) = h(x) + lrelu(z) = [2 + 1, 1 - 0.2].
    joint, d_logits = decisions.joint_pair_logits(nets['D'], nets['Dz'], X, empty_c(2), Z)
    assert joint.flatten().tolist() == pytest.approx([3.0, 0.8]) and d_logits.shape == (2, 1)
    decide = decisions.snapshot_decision(nets)
    torch.testing.assert_close(decide(X, empty_c(2), Z), joint)
    torch.testing.assert_close(loss.decision(X, empty_c(2), z=Z), joint)     # the plugin's own decision
    assert decisions.describe_decision(nets) == 'logan-b joint D(x, z)'
    # The 2-D 'input' head: an MLP on [x, z], recognised without a `fuse` attribute.
    loss, nets = loganb_nets(fuse='input')
    expected = nets['Dz'](torch.cat([X, Z], dim=1))
    torch.testing.assert_close(decisions.snapshot_decision(nets)(X, empty_c(2), Z), expected)
    torch.testing.assert_close(loss.decision(X, empty_c(2), z=Z), expected)


def test_rf_fused_decision_matches_the_plugin():
    G, D = tiny_nets()
    loss = RFLoss('cpu', G=G, D=D, r1_gamma=0, pl_weight=0, style_mixing_prob=0, rf_ae_kimg=0, rf_ae_noise=0)
    set_params(loss.rf_ae, AE)
    set_params(loss.rf_head, {'out.weight': [[1.0, 1.0]], 'out.bias': [0.0]})
    nets = dict(G=G, D=D, rf_ae=loss.rf_ae, rf_head=loss.rf_head)
    decide = decisions.snapshot_decision(nets)
    # h_D + h_E = (x1 + x2) * 1.5; D's own logit (x1 + x2 here) is not it.
    assert decide(X, empty_c(2), Z).flatten().tolist() == pytest.approx([3.0, 1.5])
    torch.testing.assert_close(loss.decision(X, empty_c(2)), decide(X, empty_c(2), Z))
    assert decisions.describe_decision(nets) == 'rf fused head'
    with pytest.raises(ValueError, match=r"missing \['rf_head'\]"):
        decisions.snapshot_decision(dict(D=D, rf_ae=loss.rf_ae))
    plain = decisions.snapshot_decision(dict(G=G, D=D))
    torch.testing.assert_close(plain(X, empty_c(2), Z), D(X, None))


def test_steps_follow_the_joint_head_through_z():
    """G(z) = (z + 1)[1, 2], D(x, z) = 3 (z + 1) + lrelu(a z): z moves up for a = 1, down for a = -20."""
    for embed, sign in [(1.0, 1.0), (-20.0, -1.0)]:
        _loss, nets = loganb_nets(embed=embed)
        generator = lambda z, c, G=nets['G']: G(z, c)  # noqa: E731
        moved = latent_steps.mine_latents_by_decision(Z, empty_c(2), generator, decisions.snapshot_decision(nets),
                                                      eps=0.25, steps=1)
        assert (moved - Z).flatten().tolist() == [0.25 * sign, 0.25 * sign]
        # D's own logit ignores z and always pushes z up (dD/dz = 3): it would not follow the head.
        plain = latent_steps.mine_latents(Z, empty_c(2), generator, lambda img, c: nets['D'](img, c), eps=0.25, steps=1)
        assert (plain - Z).flatten().tolist() == [0.25, 0.25]


def test_latent_step_generator_takes_a_decision():
    G, D = LinearG(), LinearD()
    flipped = lambda img, c, z: -D(img, c)  # noqa: E731  # a decision that disagrees with D
    wrapped = latent_steps.LatentStepGenerator(G, D, steps=1, eps=EPS, decision=flipped)
    with torch.no_grad():
        torch.testing.assert_close(wrapped.move_latents(Z0, empty_c(4)), Z0 - EPS * STEP_SIGN)
    default = latent_steps.LatentStepGenerator(G, D, steps=1, eps=EPS)
    with torch.no_grad():
        torch.testing.assert_close(default.move_latents(Z0, empty_c(4)), Z0 + EPS * STEP_SIGN)


def test_generate_latent_mover_follows_the_snapshot_decision():
    """generate.py's -z steps on a LOGAN-B snapshot steer by the joint D(x, z): changing only the
    joint head's z weight changes the mined latents; D's own (untrained) output layer does not."""
    import generate  # pylint: disable=import-outside-toplevel
    lines = []

    def mined(embed, d_out_scale=1.0):
        _loss, nets = loganb_nets(embed=embed)
        with torch.no_grad():
            for p in nets['D'].out.parameters() if hasattr(nets['D'], 'out') else ():
                p.mul_(d_out_scale)
        move = generate.latent_step_mover(nets['G'], nets['D'], steps=3, eps=0.1, log=lines.append,
                                          extra_nets={'Dz': nets['Dz']})
        return move(Z.clone(), empty_c(1))

    base = mined(embed=1.0)
    assert not torch.equal(base, mined(embed=-1.0))
    torch.testing.assert_close(base, mined(embed=1.0, d_out_scale=-3.0))
    assert any('logan-b joint D(x, z)' in line for line in lines)
