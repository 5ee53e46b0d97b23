"""Metrics end to end through the registry: detector files on disk, real-image features (cached),
generated-image features, and the formulas, checked against an independent recomputation."""

import json
import os
import re

import numpy as np
import PIL.Image
import pytest
import torch

from metrics import metric_main, metric_utils
from metrics.perceptual_path_length import compute_ppl
from metrics import detectors
from tests.test_legacy import make_snapshot
from tests.metrics.test_metrics_detectors import INCEPTION_FILE, VGG16_FILE, use_tiny_detectors
from tests.metrics.test_metrics_formulas import brute_force_pr, closed_form_fid, unbiased_mmd2_cubic

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')  # torch.jit.* deprecation notices

NUM = 20  # reals in the data set = fakes in the bank = max_samples


def write_image_folder(folder, num, resolution=16, seed=0, labels=None):
    """`num` random RGB PNGs (smooth blobs, so features vary) plus an optional dataset.json."""
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(num):
        small = rng.randint(0, 256, [4, 4, 3]).astype(np.uint8)
        PIL.Image.fromarray(small).resize((resolution, resolution), PIL.Image.BILINEAR).save(
            os.path.join(folder, f'img{i:03d}.png'))
    if labels is not None:
        with open(os.path.join(folder, 'dataset.json'), 'w') as f:
            json.dump({'labels': [[f'img{i:03d}.png', int(labels[i])] for i in range(num)]}, f)
    return str(folder)


def read_folder(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    return np.stack([np.asarray(PIL.Image.open(os.path.join(folder, n))) for n in names]).transpose(0, 3, 1, 2)


class BankGenerator(torch.nn.Module):
    """Stand-in G that returns stored images in order, so the fakes are known exactly.

    Pixels p are stored as (p - 127.5) / 127.5, which the metric's x*127.5 + 128 maps back to p.
    """

    def __init__(self, pixels):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, 0, pixels.shape[2], pixels.shape[1]
        self.register_buffer('bank', (torch.from_numpy(pixels).float() - 127.5) / 127.5)
        self.served = 0

    def forward(self, z, c, **kwargs):
        out = self.bank[self.served:self.served + z.shape[0]]
        self.served += z.shape[0]
        return out


@pytest.fixture
def setup(tmp_path, monkeypatch):
    det_dir = use_tiny_detectors(tmp_path, monkeypatch)
    reals = write_image_folder(tmp_path / 'reals', NUM, seed=0)
    fakes = read_folder(write_image_folder(tmp_path / 'fakes', NUM + 4, seed=1))
    data = dict(class_name='training.dataset.ImageFolderDataset', path=reals, resolution=16)
    return dict(tmp=tmp_path, det_dir=det_dir, reals=reals, fakes=fakes, data=data)


def features(det_dir, file_name, pixels, **kwargs):
    net = torch.jit.load(os.path.join(det_dir, file_name))
    return net(torch.from_numpy(np.ascontiguousarray(pixels)), **kwargs).double().numpy()


def run(metric, setup, G=None, **kwargs):
    G = G if G is not None else BankGenerator(setup['fakes'])
    return metric_main.calc_metric(metric, G=G, dataset_kwargs=setup['data'], device='cpu', max_samples=NUM, **kwargs)

#----------------------------------------------------------------------------

def test_fid_end_to_end_and_real_stats_cache(setup):
    real = features(setup['det_dir'], INCEPTION_FILE, read_folder(setup['reals']), return_features=True)
    fake = features(setup['det_dir'], INCEPTION_FILE, setup['fakes'][:NUM], return_features=True)
    expected = closed_form_fid(real.mean(0), np.cov(real.T, bias=True), fake.mean(0), np.cov(fake.T, bias=True))
    result = run('fid50k_full', setup)
    assert list(result.keys()) == ['results', 'metric', 'total_time', 'total_time_str', 'num_gpus', 'detectors',
                                   'max_samples']
    assert result.results.fid50k_full == pytest.approx(expected, rel=1e-4)
    assert result.detectors == {INCEPTION_FILE: detectors.file_sha256(os.path.join(setup['det_dir'], INCEPTION_FILE))}
    cached = os.listdir(setup['tmp'] / 'cache' / 'gan-metrics')
    assert len(cached) == 1 and cached[0].startswith('reals-inception-2015-12-05-') and cached[0].endswith('.pkl')
    again = run('fid50k_full', setup)  # second run reads the cached real statistics
    assert again.results.fid50k_full == pytest.approx(result.results.fid50k_full, rel=1e-9)
    assert os.listdir(setup['tmp'] / 'cache' / 'gan-metrics') == cached


def test_kid_pr_is_end_to_end(setup):
    reals, fakes = read_folder(setup['reals']), setup['fakes'][:NUM]
    real = features(setup['det_dir'], INCEPTION_FILE, reals, return_features=True)
    fake = features(setup['det_dir'], INCEPTION_FILE, fakes, return_features=True)
    kid = run('kid50k_full', setup).results.kid50k_full
    assert kid == pytest.approx(unbiased_mmd2_cubic(fake, real), rel=1e-5, abs=1e-9)

    to_half = lambda x: x.astype(np.float16).astype(np.float64)  # noqa: E731 (features are stored in fp16)
    real_vgg = to_half(features(setup['det_dir'], VGG16_FILE, reals, return_features=True))
    fake_vgg = to_half(features(setup['det_dir'], VGG16_FILE, fakes, return_features=True))
    pr = run('pr50k3_full', setup).results
    assert (pr.pr50k3_full_precision, pr.pr50k3_full_recall) == pytest.approx(brute_force_pr(real_vgg, fake_vgg, 3),
                                                                             abs=1e-6)

    probs = features(setup['det_dir'], INCEPTION_FILE, fakes, no_output_bias=True)
    scores = []
    for part in np.split(probs, 10):
        scores.append(np.exp(np.mean(np.sum(part * np.log(part / part.mean(0)), axis=1))))
    result = run('is50k', setup).results
    assert (result.is50k_mean, result.is50k_std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-5)


def test_progress_callback_and_throughput_line(setup, capsys):
    calls = []
    progress = metric_utils.ProgressMonitor(verbose=True, progress_fn=lambda cur, total: calls.append((cur, total)))
    run('kid10k_full', setup, progress=progress)
    assert calls[-1] == (1000, 1000) and all(total == 1000 for _cur, total in calls)
    assert [cur for cur, _total in calls] == sorted(cur for cur, _total in calls)
    out = capsys.readouterr().out
    assert re.search(r'dataset features: 20 images in \S+ \([0-9.]+ images/s\)', out)
    assert re.search(r'generator features: 20 images in \S+ \([0-9.]+ images/s\)', out)


def test_report_metric_appends_official_line(setup, capsys):
    result = run('fid10k_full', setup)
    run_dir = setup['tmp'] / 'run'
    run_dir.mkdir()
    metric_main.report_metric(result, run_dir=str(run_dir), snapshot_pkl=str(run_dir / 'network-snapshot-000000.pkl'))
    metric_main.report_metric(result, run_dir=str(run_dir), snapshot_pkl=str(run_dir / 'network-snapshot-000000.pkl'))
    lines = (run_dir / 'metric-fid10k_full.jsonl').read_text().splitlines()
    assert len(lines) == 2
    line = json.loads(lines[0])
    assert list(line)[:5] == ['results', 'metric', 'total_time', 'total_time_str', 'num_gpus']
    assert list(line)[-2:] == ['snapshot_pkl', 'timestamp']
    assert line['snapshot_pkl'] == 'network-snapshot-000000.pkl' and line['metric'] == 'fid10k_full'
    assert json.loads(capsys.readouterr().out.splitlines()[-1])['results'] == line['results']


def test_registered_metric_and_unknown_name(setup, monkeypatch):
    monkeypatch.setattr(metric_main, '_REGISTRY', dict(metric_main._REGISTRY))

    @metric_main.register_metric(detectors=[metric_main.INCEPTION])
    def fid8(opts):
        """FID of 8 fakes."""
        from metrics.frechet_inception_distance import compute_fid
        return dict(fid8=compute_fid(opts, max_real=8, num_gen=8))

    assert metric_main.is_valid_metric('fid8') and metric_main.describe_metric('fid8') == 'FID of 8 fakes.'
    result = metric_main.calc_metric('fid8', G=BankGenerator(setup['fakes']), dataset_kwargs=setup['data'], device='cpu')
    assert 'max_samples' not in result and np.isfinite(result.results.fid8)
    with pytest.raises(ValueError, match="unknown metric 'fid9'; did you mean 'fid8'"):
        metric_main.calc_metric('fid9', G=None)


@pytest.mark.slow
def test_ppl_zero_for_constant_generator_and_positive_for_real_one(setup):
    G = make_snapshot(resolution=16)['G_ema']
    for metric in ['ppl2_wend', 'ppl_zfull']:
        value = run(metric, setup, G=G).results[metric]
        assert np.isfinite(value) and value > 0

    class Constant(torch.nn.Module):
        z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels = 4, 0, 4, 2, 16, 3

        def mapping(self, z, c):
            return z[:, None, :].repeat(1, self.num_ws, 1)

        def synthesis(self, ws, noise_mode='const', force_fp32=False):
            return torch.zeros([ws.shape[0], 3, 16, 16]) + 0.25

    opts = metric_utils.MetricOptions(G=Constant(), dataset_kwargs=setup['data'], device='cpu')
    assert compute_ppl(opts, num_samples=6, epsilon=1e-4, space='z', sampling='full', crop=True, batch_size=2) == 0


def test_conditional_generator_labels_and_traced_generator(setup, tmp_path):
    labels = np.arange(NUM) % 3
    data = dict(setup['data'], path=write_image_folder(tmp_path / 'labeled', NUM, seed=2, labels=labels), use_labels=True)
    G = make_snapshot(resolution=16, c_dim=3)['G_ema']
    opts = metric_utils.MetricOptions(G=G, dataset_kwargs=data, device='cpu')
    drawn = metric_utils.LabelSampler(opts, G.c_dim)(50).numpy()
    assert drawn.shape == (50, 3) and (drawn.sum(1) == 1).all() and len(set(drawn.argmax(1))) == 3

    stats = []
    for jit in [False, True]:
        torch.manual_seed(0)
        np.random.seed(0)
        stats.append(metric_utils.compute_feature_stats_for_generator(
            opts, detectors.INCEPTION_URL, dict(return_features=True), batch_size=4, jit=jit, capture_all=True,
            max_items=6).get_all())
    np.testing.assert_allclose(stats[0], stats[1], rtol=1e-5, atol=1e-5)
    assert stats[0].shape == (6, 16)


# Recorded from the code before the rewrite of metric_main.py (issue 14), with the tiny detectors.
_BASELINE_RESULTS = {
    'fid50k_full': {'fid50k_full': 14.358350880610075},
    'fid50k': {'fid50k': 14.358350880610075},
    'kid50k': {'kid50k': -53.38993269025728},
    'pr50k3': {'pr50k3_precision': 1.0, 'pr50k3_recall': 0.949999988079071},
    'is50k': {'is50k_mean': 1.4155720130392069, 'is50k_std': 0.3306277004502055},
}


@pytest.mark.parametrize('metric', list(_BASELINE_RESULTS))
def test_results_match_baseline(setup, metric):
    torch.manual_seed(0)
    np.random.seed(0)
    result = run(metric, setup)
    assert list(result.results) == list(_BASELINE_RESULTS[metric])
    # float32 detector features round differently on different CPUs (is50k_std moved by 2e-8 relative
    # on an AMD EPYC); a change of the metric itself moves the values far more than 1e-6.
    assert dict(result.results) == pytest.approx(_BASELINE_RESULTS[metric], rel=1e-6)
    assert all(type(value) is float for value in result.results.values())  # noqa: E721 (json-ready floats)
