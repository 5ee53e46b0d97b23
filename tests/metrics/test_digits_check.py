"""The digits check: a classifier of scikit-learn's digits that recognises real digits, refuses
non-digits, and scores generators through `python -m stylegan_plus.cli.digits_check`."""

import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip('sklearn')

from stylegan_plus.networks import dcgan  # noqa: E402  pylint: disable=wrong-import-position
from metrics import digits_check as dc  # noqa: E402  pylint: disable=wrong-import-position
from stylegan_plus.cli import digits_check as dc_cli  # noqa: E402  pylint: disable=wrong-import-position

RES = 16


@pytest.fixture(scope='module')
def checker():
    return dc.fit_checker(RES)


class ReplayGenerator(torch.nn.Module):
    """A 'generator' whose samples are the held-out real digits, in order: what a perfect G would draw."""

    def __init__(self, pixels):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 0, pixels.shape[1], 1
        self.register_buffer('images', torch.from_numpy(pixels).float()[:, None] / 127.5 - 1)
        self.register_buffer('cursor', torch.zeros([], dtype=torch.int64))

    def forward(self, z, c, **_kwargs):
        del c
        idx = (self.cursor + torch.arange(len(z))) % len(self.images)
        self.cursor += len(z)
        return self.images[idx]


class ClassReplayGenerator(torch.nn.Module):
    """A conditional 'generator' that draws a held-out real digit of the class in c, or of the next class."""

    def __init__(self, pixels, labels, shift=0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 10, pixels.shape[1], 1
        self.images = torch.from_numpy(pixels).float()[:, None] / 127.5 - 1
        self.first = {int(k): int(np.flatnonzero(labels == k)[0]) for k in range(10)}
        self.shift = shift

    def forward(self, z, c, **_kwargs):
        del z
        asked = (c.argmax(dim=1) + self.shift) % 10
        return self.images[[self.first[int(k)] for k in asked]]


def write_pickle(path, G):
    with open(path, 'wb') as f:
        pickle.dump(dict(G=G, D=torch.nn.Identity(), G_ema=G, training_set_kwargs=None, augment_pipe=None), f)
    return str(path)


def test_split_is_fixed_and_disjoint():
    train, heldout = dc.split_indices(1797)
    assert len(heldout) == 449 and len(train) == 1348
    assert not set(train) & set(heldout) and len(set(train) | set(heldout)) == 1797
    assert np.array_equal(dc.split_indices(1797)[1], heldout)


@pytest.mark.slow
def test_real_digits_pass_and_non_digits_do_not(checker):
    reals = dc.check_reals(checker)
    assert reals.count == 449 and reals.share >= 0.85 and reals.accuracy >= 0.93
    assert reals.class_counts.sum() == reals.confident and (reals.class_counts > 20).all()
    rng = np.random.RandomState(123)
    flat = np.repeat(np.linspace(0, 255, 40).astype(np.uint8)[:, None, None], RES * RES).reshape(40, RES, RES)
    noise = rng.randint(0, 256, size=[40, RES, RES]).astype(np.uint8)
    # What an untrained DCGAN draws (a plain 10-class model called these a confident "4").
    untrained = dc.sample_digits(dcgan.Generator(z_dim=16, c_dim=0, img_resolution=RES, img_channels=1), 40)
    for images in (flat, noise, untrained):
        result = dc.check(checker, images)
        assert result.share <= 0.05 and result.rejected >= 36
    # Two different digits blended half and half are not one digit.
    a, b = checker.heldout[:200].astype(float), checker.heldout[200:400].astype(float)
    differ = checker.heldout_labels[:200] != checker.heldout_labels[200:400]
    assert dc.check(checker, ((a + b) / 2).astype(np.uint8)[differ]).share < 0.35


@pytest.mark.slow
def test_probabilities_and_input_checks(checker):
    probs = dc.probabilities(checker, checker.heldout[:5, :, :, None])
    assert probs.shape == (5, 11) and np.allclose(probs.sum(1), 1)
    with pytest.raises(ValueError, match='trained at 16 px; got 32 px'):
        dc.probabilities(checker, np.zeros([2, 32, 32], np.uint8))
    with pytest.raises(ValueError, match='grayscale; got images with 3 channels'):
        dc.probabilities(checker, np.zeros([2, RES, RES, 3], np.uint8))


def test_sample_digits_is_seeded_uint8():
    G = dcgan.Generator(z_dim=16, c_dim=0, img_resolution=RES, img_channels=1).eval()
    a, b = dc.sample_digits(G, 70, seed=3, batch=32), dc.sample_digits(G, 70, seed=3)
    assert a.shape == (70, RES, RES) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, dc.sample_digits(G, 70, seed=4))
    with pytest.raises(ValueError, match='draws 3 channels'):
        dc.sample_digits(dcgan.Generator(z_dim=16, c_dim=0, img_resolution=RES, img_channels=3), 2)


@pytest.mark.slow
def test_conditional_generators_get_labels_and_are_scored_on_them(checker, tmp_path):
    G = dcgan.Generator(z_dim=16, c_dim=10, img_resolution=RES, img_channels=1).eval()
    pixels, labels = dc.sample_digits(G, 300, seed=1, return_labels=True)
    assert pixels.shape == (300, RES, RES) and labels.shape == (300,) and set(labels) == set(range(10))
    assert np.array_equal(labels, dc.sample_digits(G, 300, seed=1, return_labels=True)[1])
    assert dc.sample_digits(dcgan.Generator(z_dim=16, c_dim=0, img_resolution=RES, img_channels=1), 4,
                            return_labels=True)[1] is None
    # The first held-out digit of each class that the classifier gets right, asked for by class.
    keep = dc.probabilities(checker, checker.heldout).argmax(1) == checker.heldout_labels
    pixels, labels = checker.heldout[keep], checker.heldout_labels[keep]
    for shift, asked in ((0, '100.0 %'), (3, '0.0 %')):
        pkl = write_pickle(tmp_path / f'cond{shift}.pkl', ClassReplayGenerator(pixels, labels, shift))
        result = CliRunner().invoke(dc_cli.main, [f'--network={pkl}', '--samples=100'])
        assert result.exit_code == 0 and f'drawn as the class asked for {asked}' in result.output, result.output


@pytest.mark.slow
def test_cli_scores_a_perfect_and_an_untrained_generator(checker, tmp_path):
    perfect = write_pickle(tmp_path / 'perfect.pkl', ReplayGenerator(checker.heldout))
    result = CliRunner().invoke(dc_cli.main, [f'--network={perfect}', '--samples=449'])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2] == f'  reals:     {dc.describe(dc.check_reals(checker), "held-out real digits")}'
    # Replaying the held-out reals scores exactly what the reals score.
    share = f'{100 * dc.check_reals(checker).share:.1f} % of 449 '
    assert lines[1].startswith(f'  generated: {share}samples classified with p >= 0.9')
    untrained = write_pickle(tmp_path / 'untrained.pkl',
                             dcgan.Generator(z_dim=16, c_dim=0, img_resolution=RES, img_channels=1))
    result = CliRunner().invoke(dc_cli.main, [f'--network={untrained}', '--samples=64', '--require=0.8'])
    assert result.exit_code == 1 and '  generated: 0.0 % of 64 samples' in result.output
    assert 'only 0.0 % of the samples were recognised; --require asks for at least 80.0 %' in result.output


def test_cli_refuses_a_network_of_the_wrong_kind(tmp_path):
    rgb = write_pickle(tmp_path / 'rgb.pkl', dcgan.Generator(z_dim=16, c_dim=0, img_resolution=RES, img_channels=3))
    result = CliRunner().invoke(dc_cli.main, [f'--network={rgb}'])
    assert result.exit_code == 2 and 'draws 3-channel images of 16 px' in result.output
    result = CliRunner().invoke(dc_cli.main, [f'--network={tmp_path / "missing.pkl"}'])
    assert result.exit_code == 2 and 'does not exist' in result.output
