"""Detector files: lookup order, SHA-256 checks, the missing-file message, and TorchScript loading.

Also home of the tiny TorchScript detectors that the other metric/projector tests save and load
in place of NVIDIA's `inception-2015-12-05.pt` and `vgg16.pt` (same call conventions).
"""

import hashlib
import os

import pytest
import torch
import torch.nn.functional as F

from metrics import metric_main
from metrics import detectors

INCEPTION_FILE = 'inception-2015-12-05.pt'
VGG16_FILE = 'vgg16.pt'
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')  # torch.jit.* deprecation notices

TINY_FEATURES = 16
TINY_CLASSES = 10

#----------------------------------------------------------------------------
# Tiny stand-ins for the official detectors.

class TinyInception(torch.nn.Module):
    """Inception-like: uint8 [N, 3, H, W] -> features [N, 16] or class probabilities [N, 10]."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.register_buffer('proj', torch.randn([48, TINY_FEATURES], generator=gen))
        self.register_buffer('head', torch.randn([TINY_FEATURES, TINY_CLASSES], generator=gen) * 0.5)
        self.register_buffer('bias', torch.randn([TINY_CLASSES], generator=gen))

    def forward(self, img, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False):
        assert img.dtype == torch.uint8, 'inception expects uint8 images'
        assert img.dim() == 4 and img.shape[1] == 3, 'inception expects [N, 3, H, W]'
        x = F.adaptive_avg_pool2d(img.to(torch.float32) / 255, 4).flatten(1)
        features = x @ self.proj
        if return_features:
            return features
        logits = features @ self.head
        if not no_output_bias:
            logits = logits + self.bias
        return torch.softmax(logits, dim=1)


class TinyVGG16(torch.nn.Module):
    """VGG16-like: [N, 3, H, W] in [0, 255] (float or uint8) -> fc features [N, 16] or LPIPS features.

    LPIPS features: per layer, unit-normalised channel vectors scaled by 1/sqrt(H*W) and flattened,
    so that the squared distance of two outputs is a spatially averaged perceptual distance.
    """

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(2)
        self.register_buffer('w1', torch.randn([8, 3, 3, 3], generator=gen) * 0.3)
        self.register_buffer('w2', torch.randn([8, 8, 3, 3], generator=gen) * 0.3)
        self.register_buffer('fc', torch.randn([8, TINY_FEATURES], generator=gen))

    def forward(self, img, resize_images: bool = True, return_lpips: bool = False, return_features: bool = False):
        x = img.to(torch.float32) / 127.5 - 1
        if resize_images:
            x = F.interpolate(x, size=(32, 32), mode='area')
        h1 = torch.relu(F.conv2d(x, self.w1, padding=1))
        h2 = torch.relu(F.conv2d(F.avg_pool2d(h1, 2), self.w2, padding=1))
        if return_lpips:
            parts = []
            for h in [h1, h2]:
                unit = h / (h.square().sum(dim=1, keepdim=True) + 1e-10).sqrt()
                parts.append(unit.flatten(1) / (h.shape[2] * h.shape[3]) ** 0.5)
            return torch.cat(parts, dim=1)
        features = h2.mean(dim=[2, 3]) @ self.fc
        return features


def save_tiny_detectors(folder):
    """Script and save both tiny detectors under their official file names in `folder`; returns folder."""
    os.makedirs(folder, exist_ok=True)
    torch.jit.save(torch.jit.script(TinyInception()), os.path.join(folder, INCEPTION_FILE))
    torch.jit.save(torch.jit.script(TinyVGG16()), os.path.join(folder, VGG16_FILE))
    return str(folder)


def isolate_detector_lookup(tmp_path, monkeypatch):
    """Empty download cache under tmp_path, no detector folder, no digests, no downloads."""
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.delenv(detectors.DETECTOR_DIR_ENV, raising=False)
    monkeypatch.delenv(detectors.DETECTOR_SHA256_ENV, raising=False)
    monkeypatch.setenv(detectors.OFFLINE_ENV, '1')


def use_tiny_detectors(tmp_path, monkeypatch):
    """Isolated lookup whose detector folder holds the tiny detectors; returns that folder."""
    isolate_detector_lookup(tmp_path, monkeypatch)
    det_dir = save_tiny_detectors(tmp_path / 'detectors')
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, det_dir)
    return det_dir


@pytest.fixture
def isolated_lookup(tmp_path, monkeypatch):
    isolate_detector_lookup(tmp_path, monkeypatch)
    return tmp_path

#----------------------------------------------------------------------------

def test_detector_dir_is_searched_first_and_loads_torchscript(isolated_lookup, monkeypatch):
    folder = save_tiny_detectors(isolated_lookup / 'dets')
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, folder)
    assert detectors.resolve_detector(detectors.INCEPTION_URL) == os.path.join(folder, INCEPTION_FILE)
    net = detectors.load_detector(detectors.INCEPTION_URL, torch.device('cpu'))
    img = torch.randint(0, 256, [2, 3, 8, 8], dtype=torch.uint8)
    assert net(img, return_features=True).shape == (2, TINY_FEATURES)
    probs = net(img, no_output_bias=True)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))
    with open(os.path.join(folder, INCEPTION_FILE), 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert detectors.used_digests()[INCEPTION_FILE] == digest


def test_download_cache_and_file_urls(isolated_lookup):
    src = save_tiny_detectors(isolated_lookup / 'src')
    cached, cache_path = detectors._cache_candidates(detectors.VGG16_URL)
    assert cached is None and cache_path.startswith(str(isolated_lookup / 'cache'))
    os.makedirs(os.path.dirname(cache_path))
    os.link(os.path.join(src, VGG16_FILE), cache_path)
    assert detectors.resolve_detector(detectors.VGG16_URL) == cache_path
    assert detectors.resolve_detector('file://' + os.path.join(src, INCEPTION_FILE)) == os.path.join(src, INCEPTION_FILE)


def test_detector_dir_as_file_url(isolated_lookup, monkeypatch):
    folder = save_tiny_detectors(isolated_lookup / 'dets')
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, 'file://' + folder)
    assert detectors.resolve_detector(detectors.VGG16_URL) == os.path.join(folder, VGG16_FILE)


def test_sha256_mismatch_is_refused_and_match_accepted(isolated_lookup, monkeypatch):
    folder = save_tiny_detectors(isolated_lookup / 'dets')
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, folder)
    monkeypatch.setenv(detectors.DETECTOR_SHA256_ENV, f'{VGG16_FILE}={"0" * 64}')
    with pytest.raises(detectors.DetectorChecksumError, match='expected 0000'):
        detectors.load_detector(detectors.VGG16_URL, 'cpu')
    actual = detectors.file_sha256(os.path.join(folder, VGG16_FILE))
    monkeypatch.setenv(detectors.DETECTOR_SHA256_ENV, f'{INCEPTION_FILE}=ab, {VGG16_FILE}={actual.upper()}')
    assert detectors.load_detector(detectors.VGG16_URL, 'cpu') is not None


def test_missing_detector_message_names_file_and_places(isolated_lookup, monkeypatch):
    with pytest.raises(detectors.DetectorNotFoundError) as info:
        metric_main.check_metric_requirements(['pr50k3_full'])
    message = str(info.value)
    assert "'vgg16.pt'" in message and detectors.VGG16_URL in message
    assert f'{detectors.DETECTOR_DIR_ENV}=<DIR>' in message
    _cached, cache_path = detectors._cache_candidates(detectors.VGG16_URL)
    assert cache_path in message

    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, str(isolated_lookup / 'nowhere'))
    with pytest.raises(detectors.DetectorNotFoundError) as info:
        metric_main.check_metric_requirements(['fid50k_full'])
    assert str(isolated_lookup / 'nowhere' / INCEPTION_FILE) in str(info.value)


def test_check_metric_requirements_lists_detectors(isolated_lookup, monkeypatch):
    folder = save_tiny_detectors(isolated_lookup / 'dets')
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, folder)
    found = metric_main.check_metric_requirements(['fid50k_full', 'kid50k_full', 'ppl2_wend'])
    assert found == {INCEPTION_FILE: os.path.join(folder, INCEPTION_FILE), VGG16_FILE: os.path.join(folder, VGG16_FILE)}
    with pytest.raises(ValueError, match="did you mean 'fid50k_full'"):
        metric_main.check_metric_requirements(['fid50k_ful'])
