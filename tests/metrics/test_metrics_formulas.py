"""Metric formulas against independent computations on known (Gaussian) features."""

import numpy as np
import pytest
import scipy.special
import torch

from metrics import metric_utils
from metrics.frechet_inception_distance import fid_from_stats
from metrics.inception_score import is_from_probs
from metrics.kernel_inception_distance import kid_from_features
from metrics.perceptual_path_length import ppl_from_samples, slerp
from metrics.precision_recall import pr_from_features


def random_spd(rng, dim):
    a = rng.standard_normal([dim, dim])
    return a @ a.T / dim + 0.1 * np.eye(dim)


def psd_sqrt(m):
    vals, vecs = np.linalg.eigh(m)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def closed_form_fid(mu1, s1, mu2, s2):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), via symmetric eigendecompositions."""
    root1 = psd_sqrt(s1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(root1 @ s2 @ root1)))

#----------------------------------------------------------------------------
# FID

def test_fid_matches_closed_form_between_gaussians():
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(closed_form_fid(mu1, s1, mu2, s2), rel=1e-9)
    assert fid_from_stats(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9)
    # Diagonal covariances: sum((m1-m2)^2) + sum((sqrt(v1) - sqrt(v2))^2).
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 3 * 0.5 ** 2 + (1 + 1 + 0)
    assert fid_from_stats(np.zeros(3), np.diag(v1), np.full(3, 0.5), np.diag(v2)) == pytest.approx(expected)


def test_fid_of_sampled_gaussians_approaches_closed_form():
    rng = np.random.RandomState(1)
    dim = 4
    mu1, mu2 = np.zeros(dim), np.full(dim, 0.3)
    s1, s2 = random_spd(rng, dim), random_spd(rng, dim)
    stats = []
    for mu, s in [(mu1, s1), (mu2, s2)]:
        fs = metric_utils.FeatureStats(capture_mean_cov=True, max_items=200000)
        samples = rng.multivariate_normal(mu, s, size=200000)
        for chunk in np.array_split(samples, 7):
            fs.append(chunk)
        mean, cov = fs.get_mean_cov()
        as_stored = samples.astype(np.float32).astype(np.float64)  # FeatureStats keeps float32 vectors
        np.testing.assert_allclose(mean, as_stored.mean(axis=0), atol=1e-9)
        np.testing.assert_allclose(cov, np.cov(as_stored.T, bias=True), atol=1e-9)
        stats += [mean, cov]
    assert fid_from_stats(*stats) == pytest.approx(closed_form_fid(mu1, s1, mu2, s2), abs=0.02)

#----------------------------------------------------------------------------
# KID

def unbiased_mmd2_cubic(x, y):
    """Textbook unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, by explicit loops over pairs."""
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_unbiased_mmd_when_subsets_cover_everything():
    rng = np.random.RandomState(2)
    real = rng.standard_normal([12, 5])
    gen = rng.standard_normal([12, 5]) + 0.7
    # Subsets of all rows are permutations, and the estimator is permutation invariant.
    kid = kid_from_features(real, gen, num_subsets=3, max_subset_size=100, rng=np.random.RandomState(0))
    assert kid == pytest.approx(unbiased_mmd2_cubic(gen, real), rel=1e-10)


def test_kid_near_zero_for_same_gaussian_and_positive_for_shifted():
    rng = np.random.RandomState(3)
    real, same, shifted = rng.standard_normal([3, 600, 8])
    kid_same = kid_from_features(real, same, num_subsets=20, max_subset_size=300, rng=rng)
    kid_shift = kid_from_features(real, shifted + 0.5, num_subsets=20, max_subset_size=300, rng=rng)
    assert abs(kid_same) < 0.01 < kid_shift

#----------------------------------------------------------------------------
# Precision / recall

def brute_force_pr(real, gen, k):
    def radii(points):
        d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # index 0 is the point itself

    def coverage(probes, centers):
        d = np.sqrt(((probes[:, None] - centers[None]) ** 2).sum(-1))
        return float((d <= radii(centers)[None]).any(axis=1).mean())

    return coverage(gen, real), coverage(real, gen)


@pytest.mark.parametrize('row_batch, col_batch', [(7, 5), (100, 100)])
def test_precision_recall_matches_brute_force(row_batch, col_batch):
    rng = np.random.RandomState(4)
    # Multiples of 1/16 keep distances exact enough that ties compare the same in both computations.
    real = np.round(rng.standard_normal([60, 6]) * 16) / 16
    gen = np.round((rng.standard_normal([50, 6]) * 1.5 + 0.8) * 16) / 16
    expected = brute_force_pr(real, gen, k=3)
    actual = pr_from_features(torch.tensor(real, dtype=torch.float32), torch.tensor(gen, dtype=torch.float32),
                              nhood_size=3, row_batch_size=row_batch, col_batch_size=col_batch)
    if row_batch > 25:  # cdist's matrix-product path rounds differently: allow one borderline sample
        assert actual == pytest.approx(expected, abs=1 / 50)
    else:
        assert actual == pytest.approx(expected, abs=1e-6)  # float32 averaging only
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1


def test_precision_recall_of_identical_sets_is_one():
    feats = torch.randn([40, 4], generator=torch.Generator().manual_seed(0))
    assert pr_from_features(feats, feats.clone(), 3, 16, 16) == (1.0, 1.0)

#----------------------------------------------------------------------------
# Inception Score

def test_inception_score_matches_entropy_formulation():
    rng = np.random.RandomState(5)
    probs = scipy.special.softmax(rng.standard_normal([40, 7]) * 2, axis=1)
    mean, std = is_from_probs(probs, num_splits=4)
    scores = []
    for part in np.split(probs, 4):
        marginal = part.mean(axis=0)
        # E[KL(p(y|x) || p(y))] = H(p(y)) - E[H(p(y|x))]
        scores.append(np.exp(scipy.stats.entropy(marginal) - np.mean([scipy.stats.entropy(p) for p in part])))
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)


def test_inception_score_of_confident_uniform_classes_is_class_count():
    probs = scipy.special.softmax(np.eye(5)[np.arange(50) % 5] * 40, axis=1)
    mean, std = is_from_probs(probs, num_splits=10)
    assert mean == pytest.approx(5, rel=1e-6) and std == pytest.approx(0, abs=1e-6)

#----------------------------------------------------------------------------
# PPL helpers

def test_ppl_discards_outside_1st_99th_percentile():
    # 200 samples: the 1st percentile ('lower') is the 2nd smallest, the 99th ('higher') the 2nd largest.
    dist = np.concatenate([[1e6], np.arange(1, 199, dtype=np.float64), [-1e6]])
    assert ppl_from_samples(dist) == pytest.approx(np.mean(np.arange(1, 199)))


def test_slerp_endpoints_and_unit_norm():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn([3, 8], generator=gen, dtype=torch.float64), torch.randn([3, 8], generator=gen, dtype=torch.float64)
    torch.testing.assert_close(slerp(a, b, torch.zeros([3, 1], dtype=torch.float64)), a / a.norm(dim=1, keepdim=True))
    torch.testing.assert_close(slerp(a, b, torch.ones([3, 1], dtype=torch.float64)), b / b.norm(dim=1, keepdim=True))
    mid = slerp(a, b, torch.full([3, 1], 0.5, dtype=torch.float64))
    torch.testing.assert_close(mid.norm(dim=1), torch.ones(3, dtype=torch.float64))
    ua, ub = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    torch.testing.assert_close((mid * ua).sum(1), (mid * ub).sum(1))  # halfway: equal angles to both ends

#----------------------------------------------------------------------------
# FeatureStats bookkeeping

def test_feature_stats_max_items_and_save_load(tmp_path):
    fs = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=5)
    fs.append_torch(torch.arange(12, dtype=torch.float32).reshape(4, 3))
    assert not fs.is_full()
    fs.append(np.ones([4, 3]))
    assert fs.is_full() and fs.num_items == 5 and fs.get_all().shape == (5, 3)
    fs.save(tmp_path / 's.pkl')
    loaded = metric_utils.FeatureStats.load(tmp_path / 's.pkl')
    np.testing.assert_array_equal(loaded.get_all(), fs.get_all())
    np.testing.assert_allclose(loaded.get_mean_cov()[1], np.cov(fs.get_all().T, bias=True), atol=1e-9)
    with pytest.raises(ValueError, match='dimension changed'):
        fs.append(np.ones([1, 4]))


# Recorded from the code before the rewrite of feature_stats.py (issue 14): three batches (numpy
# float32, torch, numpy float64) under each max_items -> num_items, is_full, sum of get_all(),
# sum of the mean, trace of the covariance, cov[0, 1], cov[5, 2].
_BASELINE_STATS = {
    None: (42, False, 102.73455485515296, 2.4460608298845945, 20.337510487426872, 0.9726629475539121,
           2.3838062193610474),
    5: (5, True, 13.285693526268005, 2.657138705253601, 4.614044432834988, -0.1131367193268053,
        0.2003290586935022),
    13: (13, True, -2.187995506450534, -0.16830734665004102, 5.965418027285992, -0.4958079619545642,
         0.0806076682731018),
    17: (17, True, 47.924570905044675, 2.8190924061790987, 20.84116504458127, 1.4840665984252284,
         1.7966222795116686),
    30: (30, True, 111.63415508158505, 3.7211385027195023, 25.080836190987412, 1.0301047051954781,
         3.280068844581198),
}


@pytest.mark.parametrize('max_items', list(_BASELINE_STATS))
def test_feature_stats_match_baseline_and_direct_formula(max_items):
    rng = np.random.RandomState(0)
    x1 = rng.randn(13, 6).astype(np.float32)
    x2 = rng.randn(9, 6).astype(np.float32) * 3 + 1
    x3 = rng.randn(20, 6).astype(np.float32)
    fs = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=max_items)
    fs.append(x1)
    fs.append_torch(torch.from_numpy(x2))
    fs.append(x3.astype(np.float64))
    mean, cov = fs.get_mean_cov()
    got = (fs.num_items, fs.is_full(), float(fs.get_all().astype(np.float64).sum()), float(mean.sum()),
           float(np.trace(cov)), float(cov[0, 1]), float(cov[5, 2]))
    assert got[:2] == _BASELINE_STATS[max_items][:2]
    assert got[2:] == pytest.approx(_BASELINE_STATS[max_items][2:], rel=1e-12, abs=1e-13)
    # Independently: the first max_items rows, in append order, and their biased covariance.
    rows = np.concatenate([x1, x2, x3])[:max_items].astype(np.float64)
    np.testing.assert_array_equal(fs.get_all(), rows.astype(np.float32))
    np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(rows.T, bias=True), atol=1e-12)


def test_feature_stats_empty_and_wrong_use(tmp_path):
    fs = metric_utils.FeatureStats(capture_mean_cov=True, max_items=0)
    fs.append(np.ones([3, 4]))
    assert fs.num_items == 0 and fs.num_features == 4 and fs.is_full()   # the dimension is fixed anyway
    with pytest.raises(RuntimeError, match='no features'):
        fs.get_mean_cov()
    with pytest.raises(RuntimeError, match='capture_all=True'):
        fs.get_all()
    with pytest.raises(ValueError, match=r'\[N, F\].*\[2\]'):
        fs.append(np.ones(2))
    (tmp_path / 'junk.pkl').write_bytes(__import__('pickle').dumps([1, 2]))
    with pytest.raises(ValueError, match='junk.pkl: not a saved FeatureStats'):
        metric_utils.FeatureStats.load(tmp_path / 'junk.pkl')
    fs.save(tmp_path / 'ok.pkl')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['junk.pkl', 'ok.pkl']   # no temporary left


def test_fid_and_is_match_baseline():
    # Recorded from the code before the rewrite (issue 14).
    rng = np.random.RandomState(1)
    a = rng.randn(50, 5)
    b = rng.randn(40, 5) * 1.5 + 0.3
    probs = rng.dirichlet(np.ones(7) * 0.5, size=23)
    fid = fid_from_stats(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert fid == pytest.approx(3.4632614347228454, rel=1e-12)
    assert is_from_probs(probs, 3) == pytest.approx((1.5269733553091565, 0.05878730823556209), rel=1e-12)
    assert is_from_probs(probs, 1) == pytest.approx((1.5863065473652045, 0.0), rel=1e-12)
    with pytest.raises(ValueError, match='at least 30 samples, got 23'):
        is_from_probs(probs, 30)
    with pytest.raises(ValueError, match='do not match'):
        fid_from_stats(a.mean(0), np.cov(a.T), b.mean(0)[:4], np.cov(b.T))
