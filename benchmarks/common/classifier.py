"""A small digits classifier: the feature extractor of FD-digits and the mode counter of stacked digits.

Trained on half B of the digits (never seen by the GANs), with one-pixel random shifts so that it
tolerates slightly displaced generated digits. Its 64-d penultimate activations are the features
of the Frechet distance "FD-digits" (FID's formula with this network in place of Inception).
"""

import warnings

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

FEATURES = 64
NUM_CLASSES = 10


class DigitClassifier(torch.nn.Module):
    """img [N, 1, R, R] float in [-1, 1] (R >= 8) -> logits [N, 10]; `features()` -> [N, 64]."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32 * 4 * 4, FEATURES)
        self.head = torch.nn.Linear(FEATURES, NUM_CLASSES)

    def features(self, img):
        x = F.max_pool2d(F.relu(self.conv1(img)), 2)
        x = F.adaptive_avg_pool2d(F.relu(self.conv2(x)), 4)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, img):
        return self.head(self.features(img))


def _shift(batch, rng):
    # Random shifts of -1..1 px per image; the border fills with background (-1).
    padded = F.pad(batch, (1, 1, 1, 1), value=-1.0)
    size = batch.shape[-1]
    choice = torch.from_numpy(rng.randint(0, 9, size=len(batch)))
    out = torch.empty_like(batch)
    for k in range(9):
        sel = choice == k
        dy, dx = divmod(k, 3)
        out[sel] = padded[sel, :, dy:dy + size, dx:dx + size]
    return out


def train_classifier(images, labels, epochs=20, batch=64, seed=0, lr=2e-3):
    """Train a DigitClassifier. images: float32 [N, 1, R, R] in [-1, 1]; labels: int [N]. Returns it in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    for _epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(images)))
        for start in range(0, len(images), batch):
            idx = order[start:start + batch]
            loss = F.cross_entropy(net(_shift(images[idx], rng)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval().requires_grad_(False)


@torch.no_grad()
def apply(net, images, fn='logits', batch=512):
    """Run `net` over images [N, 1, R, R] in batches: fn 'logits' -> [N, 10], 'features' -> [N, 64] (float64 numpy)."""
    call = net.features if fn == 'features' else net
    outs = [call(images[i:i + batch].float()) for i in range(0, len(images), batch)]
    return torch.cat(outs).double().numpy()


def accuracy(net, images, labels):
    """Share of images whose predicted class equals the label."""
    return float((apply(net, images).argmax(1) == np.asarray(labels)).mean())


def frechet_distance(feat_a, feat_b):
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets [N, D] (FID's formula)."""
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    cov_a, cov_b = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)
    with warnings.catch_warnings():
        # Dead ReLU units make the covariances singular; the square root is still well defined.
        warnings.simplefilter('ignore')
        root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.square(mu_a - mu_b).sum() + np.trace(cov_a + cov_b - 2 * np.real(root)))


def stacked_modes(net, stacks, return_confidence=False):
    """Classify each channel of stacks [N, 3, R, R] (float in [-1, 1]) -> modes int64 [N] in 0..999.

    With return_confidence, also the smallest of the three channels' top softmax probabilities [N].
    """
    logits = [apply(net, stacks[:, k:k + 1]) for k in range(3)]
    digits = [lg.argmax(1) for lg in logits]
    modes = (digits[0] * 100 + digits[1] * 10 + digits[2]).astype(np.int64)
    if not return_confidence:
        return modes
    probs = [np.exp(lg - lg.max(1, keepdims=True)) for lg in logits]
    confidence = np.min([(p / p.sum(1, keepdims=True)).max(1) for p in probs], axis=0)
    return modes, confidence


def mode_coverage(modes, num_modes=1000):
    """(modes with at least one sample, KL(p_model || uniform)) of integer modes [N] (the MNIST-1K measures)."""
    counts = np.bincount(modes, minlength=num_modes).astype(np.float64)
    p = counts / counts.sum()
    nonzero = p > 0
    kl = float(np.sum(p[nonzero] * np.log(p[nonzero] * num_modes)))
    return int(nonzero.sum()), kl
