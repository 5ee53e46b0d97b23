"""Shared machinery of the metrics: options, detectors, and feature extraction for reals and fakes.

Every metric follows the same pattern: extract detector features of the real images (cached on
disk under `dnnlib.make_cache_dir_path('gan-metrics', ...)`) and of freshly generated images, then
reduce them with a formula. With `num_gpus > 1`, each process works on a strided share and the
features are all-gathered; `torch.distributed` must then be initialised by the caller.
"""

import copy
import hashlib
import json
import os

import numpy as np
import torch

import dnnlib
from metrics import detectors
from stylegan_plus import devices
from stylegan_plus.networks.inference import prepare_generator
from stylegan_plus.sampling import memory_budget, prior
from torch_utils import misc

# FeatureStats and ProgressMonitor live in their own modules; this one keeps their official import path.
from .feature_stats import FeatureStats, broadcast_flag
from .progress import ProgressMonitor

_CACHE_FORMAT = 1  # bump when the cached statistics change meaning, so old files are not reused


def default_device(rank=0):
    """`cuda:<rank>` when CUDA is available, else CPU (`stylegan_plus.devices.resolve_device`)."""
    return devices.resolve_device(None, local_rank=rank)


class MetricOptions:
    """Everything a metric needs (official signature, plus `max_samples`).

    G:              generator (any module with z_dim, c_dim, img_resolution, img_channels, and
                    `G(z=..., c=..., **G_kwargs)` -> [N, C, H, W] float in [-1, 1]); copied, not modified.
    dataset_kwargs: `class_name` + arguments of the real data set (dnnlib.util.construct_class_by_name).
    num_gpus, rank: processes taking part and this one's index (torch.distributed when num_gpus > 1).
    device:         where G and the detectors run (default: cuda:<rank> if available, else CPU).
    progress:       a ProgressMonitor of the caller (rank 0 only), or None for silence.
    cache:          reuse/store the real-image statistics in the dnnlib cache.
    max_samples:    cap on every sample count (reals, fakes, PPL samples), for quick smoke runs;
                    None (default) computes the metric as defined.
    z_dist:         the latent prior G was trained on, as its snapshot records it ('normal', the
                    official N(0, I), also for None; or 'uniform'); every fake's z is drawn from it.
    """

    def __init__(self, G=None, G_kwargs={}, dataset_kwargs={}, num_gpus=1, rank=0, device=None, progress=None,
                 cache=True, *, max_samples=None, z_dist=None):
        if not 0 <= rank < num_gpus:
            raise ValueError(f'rank must be in 0..{num_gpus - 1} for num_gpus={num_gpus}, got {rank}')
        if max_samples is not None and max_samples < 1:
            raise ValueError(f'max_samples must be a positive number of samples or None, got {max_samples}')
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs)
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs)
        self.num_gpus = num_gpus
        self.rank = rank
        self.device = devices.resolve_device(device) if device is not None else default_device(rank)
        self.progress = progress.sub() if progress is not None and rank == 0 else ProgressMonitor()
        self.cache = cache
        self.max_samples = max_samples
        self.z_dist = prior.canonical_z_dist(z_dist)

    def capped(self, count):
        """`count` limited by max_samples; None means unlimited on either side."""
        if self.max_samples is None:
            return count
        return self.max_samples if count is None else min(count, self.max_samples)

# ---------------------------------------------------------------------------------------------------
# Detectors.


def get_feature_detector_name(url):
    """`.../inception-2015-12-05.pt` -> `inception-2015-12-05`."""
    return os.path.splitext(detectors.detector_file_name(url))[0]


def get_feature_detector(url, device=torch.device('cpu'), num_gpus=1, rank=0, verbose=False):
    """TorchScript detector named by `url` (see metrics.detectors for the lookup).

    With several processes, rank 0 resolves (and possibly downloads) the file first, so that the
    others find it in the cache instead of downloading it again.
    """
    if num_gpus > 1 and rank != 0:
        torch.distributed.barrier()
    detector = detectors.load_detector(url, device, verbose=verbose and rank == 0)
    if num_gpus > 1 and rank == 0:
        torch.distributed.barrier()
    return detector

# ---------------------------------------------------------------------------------------------------
# Images and labels.


def as_rgb(images):
    """uint8 [N, C, H, W] with C = 1 or 3 -> [N, 3, H, W] (grayscale repeated, as the detectors need RGB)."""
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


def to_uint8_rgb(img):
    """Generator output float [N, C, H, W] in [-1, 1] -> uint8 [N, 3, H, W] (clamp(x*127.5 + 128))."""
    return as_rgb((img * 127.5 + 128).clamp(0, 255).to(torch.uint8))


class LabelSampler:
    """Draws conditioning labels for G from the real data set, like training does.

    Called with n, returns float32 [n, c_dim] on `device`; for c_dim == 0 the data set is not opened.
    """

    def __init__(self, opts, c_dim):
        self.device = opts.device
        self.c_dim = c_dim
        self.dataset = None
        if c_dim > 0:
            self.dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)
            if self.dataset.label_dim != c_dim:
                raise ValueError(f'the generator expects labels of size {c_dim}, but the data set '
                                 f'{opts.dataset_kwargs.get("path")!r} provides size {self.dataset.label_dim} '
                                 f'(is use_labels set?)')

    def __call__(self, n):
        if self.dataset is None:
            return torch.zeros([n, 0], device=self.device)
        labels = [self.dataset.get_label(np.random.randint(len(self.dataset))) for _ in range(n)]
        return torch.from_numpy(np.stack(labels)).to(self.device)


def prepare_metric_generator(opts):
    """A private copy of opts.G on opts.device, eval mode, no gradients (fp16 blocks in fp32 on CPU)."""
    quiet = lambda *args, **kwargs: None  # noqa: E731 (the fp32 notice would repeat at every snapshot)
    return prepare_generator(copy.deepcopy(opts.G), opts.device, log=quiet)

# ---------------------------------------------------------------------------------------------------
# Feature extraction.


def _loader_kwargs(device, num_items, batch_size):
    """DataLoader settings: worker processes pay off only for more than a few batches."""
    workers = 0 if num_items <= 4 * batch_size else min(3, max((os.cpu_count() or 1) - 1, 0))
    kwargs = dict(pin_memory=device.type == 'cuda', num_workers=workers)
    if workers > 0:
        kwargs['prefetch_factor'] = 2
    return kwargs


def _stats_cache_file(opts, dataset, detector_url, detector_kwargs, stats_kwargs):
    """Cache path `<cache>/gan-metrics/<dataset>-<detector>-<md5>.pkl` of one statistics request.

    The key includes the detector's SHA-256, so statistics from a different detector file are
    never reused, and the data set length, which catches most edits of the data set.
    """
    key = dict(dataset_kwargs=opts.dataset_kwargs, dataset_len=len(dataset), detector_kwargs=detector_kwargs,
               detector_sha256=detectors.file_sha256(detectors.resolve_detector(detector_url)),
               stats_kwargs=stats_kwargs, format=_CACHE_FORMAT)
    md5 = hashlib.md5(json.dumps(key, sort_keys=True, default=str).encode('utf-8')).hexdigest()
    file_name = f'{dataset.name}-{get_feature_detector_name(detector_url)}-{md5}.pkl'
    return dnnlib.make_cache_dir_path('gan-metrics', file_name)


def _rank_loader(dataset, num_items, opts, batch_size, data_loader_kwargs):
    """DataLoader over this rank's strided share of the first `num_items` items.

    Every rank gets the same number of items (wrapping around), so that all-gathers match;
    the surplus is dropped by FeatureStats.max_items.
    """
    per_rank = (num_items - 1) // opts.num_gpus + 1
    subset = [(i * opts.num_gpus + opts.rank) % num_items for i in range(per_rank)]
    kwargs = data_loader_kwargs if data_loader_kwargs is not None else _loader_kwargs(opts.device, num_items,
                                                                                      batch_size)
    return torch.utils.data.DataLoader(dataset, sampler=subset, batch_size=batch_size, **kwargs)


@torch.no_grad()
def compute_feature_stats_for_dataset(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1, batch_size=64,
                                      data_loader_kwargs=None, max_items=None, **stats_kwargs):
    """Detector features of the real images (opts.dataset_kwargs), read from the cache when possible.

    detector_url/detector_kwargs: which detector and how it is called, e.g. return_features=True.
    max_items: use only the first N items (None = all). stats_kwargs: capture_all / capture_mean_cov.
    Returns FeatureStats, identical on every rank.
    """
    dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)
    max_items = opts.capped(max_items)
    detector = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank,
                                    verbose=opts.progress.verbose)
    cache_file = None
    if opts.cache:
        cache_file = _stats_cache_file(opts, dataset, detector_url, detector_kwargs,
                                       dict(stats_kwargs, max_items=max_items))
        if broadcast_flag(opts.rank == 0 and os.path.isfile(cache_file), opts.num_gpus, opts.device):
            return FeatureStats.load(cache_file)

    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    stats = FeatureStats(max_items=num_items, **stats_kwargs)
    progress = opts.progress.sub(tag='dataset features', num_items=num_items, rel_lo=rel_lo, rel_hi=rel_hi)
    for images, _labels in _rank_loader(dataset, num_items, opts, batch_size, data_loader_kwargs):
        features = detector(as_rgb(images).to(opts.device), **detector_kwargs)
        stats.append_torch(features, num_gpus=opts.num_gpus, rank=opts.rank)
        progress.update(stats.num_items)
    progress.finish()
    if cache_file is not None and opts.rank == 0:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        stats.save(cache_file)      # atomic (FeatureStats.save): a parallel reader never sees a part
    return stats


def _image_source(opts, G, labels, batch_gen, jit):
    """Function () -> uint8 [batch_gen, 3, H, W] of fresh fakes; with `jit`, G's call is traced once."""
    def run(z, c):
        return to_uint8_rgb(G(z=z, c=c, **opts.G_kwargs))

    if jit:
        example = (torch.zeros([batch_gen, G.z_dim], device=opts.device),
                   torch.zeros([batch_gen, G.c_dim], device=opts.device))
        # Tracing runs G once: keep the RNG stream as it was, and silence warnings about shape checks.
        with torch.random.fork_rng(devices=[opts.device] if opts.device.type == 'cuda' else []), \
                misc.suppress_tracer_warnings():
            run = torch.jit.trace(run, example, check_trace=False)
    return lambda: run(prior.draw_z(opts.z_dist, batch_gen, G.z_dim, opts.device), labels(batch_gen))


def _fitting_batch_gen(G, opts, batch_size, batch_gen):
    """`batch_gen`, or the largest divisor of batch_size below it that the memory budget allows.

    With several processes, the smallest allowance wins: every rank must append equal counts.
    """
    allowed = memory_budget.generation_chunk(G, opts.device, limit=batch_gen, **opts.G_kwargs)
    if opts.num_gpus > 1:
        shared = torch.tensor(allowed, device=opts.device)
        torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MIN)
        allowed = int(shared)
    return max(d for d in range(1, allowed + 1) if batch_size % d == 0)


@torch.no_grad()
def compute_feature_stats_for_generator(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1, batch_size=64,
                                        batch_gen=None, jit=False, **stats_kwargs):
    """Detector features of images generated by opts.G until `max_items` (required) are collected.

    z ~ N(0, I) from torch's global RNG on opts.device; labels drawn from the real data set for a
    conditional G. Images are generated in chunks of `batch_gen` (default min(batch_size, 4); smaller,
    still dividing batch_size, when `memory_budget.generation_chunk` finds too little free memory)
    and passed to the detector `batch_size` at a time. Returns FeatureStats, identical on every rank.
    """
    batch_gen = min(batch_size, 4) if batch_gen is None else batch_gen
    if batch_size % batch_gen != 0:
        raise ValueError(f'batch_size ({batch_size}) must be a multiple of batch_gen ({batch_gen})')
    stats_kwargs = dict(stats_kwargs, max_items=opts.capped(stats_kwargs.get('max_items')))
    if stats_kwargs['max_items'] is None:
        raise ValueError('compute_feature_stats_for_generator needs max_items (the number of images to generate)')
    G = prepare_metric_generator(opts)
    batch_gen = _fitting_batch_gen(G, opts, batch_size, batch_gen)
    generate = _image_source(opts, G, LabelSampler(opts, G.c_dim), batch_gen, jit)
    detector = get_feature_detector(detector_url, device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank,
                                    verbose=opts.progress.verbose)
    stats = FeatureStats(**stats_kwargs)
    progress = opts.progress.sub(tag='generator features', num_items=stats.max_items, rel_lo=rel_lo, rel_hi=rel_hi)
    while not stats.is_full():
        # The last round generates only what is still missing (same count on every rank).
        missing_per_rank = -(-(stats.max_items - stats.num_items) // opts.num_gpus)
        num_chunks = min(batch_size // batch_gen, -(-missing_per_rank // batch_gen))
        images = torch.cat([generate() for _ in range(num_chunks)])
        stats.append_torch(detector(images, **detector_kwargs), num_gpus=opts.num_gpus, rank=opts.rank)
        progress.update(stats.num_items)
    progress.finish()
    return stats
