"""P4: throughput of the inference tools on CPU: generate.py, projector.py, calc_metrics.py's feature extraction.

    python -m benchmarks.tools_speed --quick            # ~2 min
    python -m benchmarks.tools_speed                    # larger counts (~5 min)

The network is a snapshot pickle written here: our Generator/Discriminator with the official cifar
settings (32 px, 10 classes, num_fp16_res 4, random weights), so every tool goes through its
usual fp16 -> fp32 preparation on CPU. Measured, each with the code path the tool runs:
- generate.py: images/s of `generate.render_seeds` (one image per seed, as the CLI renders), and
  the wall time of the CLI end to end (start-up, loading, PNG writing);
- projector.py: optimisation steps/s of `projection.project` (as reported by it);
- calc_metrics.py: images/s of `metric_utils.compute_feature_stats_for_dataset` (reals through the
  Inception detector; the digits at 32 px) and `compute_feature_stats_for_generator` (G + detector).
Detectors: NVIDIA's inception-2015-12-05.pt / vgg16.pt when found offline (--detector-dir,
$STYLEGAN_PLUS_DETECTOR_DIR, the download cache); otherwise the tiny TorchScript stand-ins of the
test suite (tests/metrics/test_metrics_detectors.py), and the results say so: then the detector's share of
the time is far below the real one's. No goal: the numbers make regressions visible run to run.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import os
import pickle
import re
import subprocess
import sys
import time

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, digits, figures, report, runner
from benchmarks.common.official_cifar import OFFICIAL_CIFAR, SMOKE_NET, build_discriminator, build_generator
from stylegan_plus.io import atomic

BENCH_ID = 'tools_speed'
PROTOCOLS = {
    'full': dict(net=OFFICIAL_CIFAR, images=64, steps=100, dataset_items=1024, generator_items=256, cli_seeds=16),
    'quick': dict(net=OFFICIAL_CIFAR, images=16, steps=20, dataset_items=512, generator_items=64, cli_seeds=4),
    'smoke': dict(net=SMOKE_NET, images=2, steps=2, dataset_items=16, generator_items=8, cli_seeds=1),
}


def write_snapshot(rep, net_kwargs, data):
    """A snapshot pickle as training writes it (G, D, G_ema, ...), random weights; returns its path."""
    G = build_generator(net_kwargs)
    snapshot = dict(training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path=data,
                                             use_labels=True, max_size=None, xflip=False, resolution=32),
                    G=G, D=build_discriminator(G, net_kwargs), G_ema=G, augment_pipe=None)
    path = rep.path('network-cifar-random.pkl')
    atomic.write_atomic(path, lambda f: pickle.dump(snapshot, f))
    return path


def choose_detectors(rep):
    """'official' when both official detectors are found offline, else 'tiny' (test stand-ins saved under out)."""
    from metrics import detectors  # pylint: disable=import-outside-toplevel
    os.environ[detectors.OFFLINE_ENV] = '1'     # never download inside a benchmark
    try:
        for url in (detectors.INCEPTION_URL, detectors.VGG16_URL):
            detectors.resolve_detector(url)
        return 'official'
    except detectors.DetectorNotFoundError:
        pass
    from tests.metrics.test_metrics_detectors import save_tiny_detectors  # pylint: disable=import-outside-toplevel
    detectors.set_detector_dir(save_tiny_detectors(rep.path('tiny-detectors')))
    print('Official detectors not found offline: using the tiny test detectors (tests/metrics/test_metrics_detectors.py).')
    return 'tiny'


def time_generate(pkl, count):
    """images/s of generate.render_seeds on CPU (seeds 0..count-1, class 0)."""
    import generate  # pylint: disable=import-outside-toplevel
    from stylegan_plus.cli import device as devices  # pylint: disable=import-outside-toplevel
    from stylegan_plus.networks import inference  # pylint: disable=import-outside-toplevel
    G = inference.prepare_generator(devices.load_network(pkl), torch.device('cpu'), log=lambda *a: None)
    label = devices.class_label(G, 0, torch.device('cpu'))
    generate.render_seeds(G, [0], label, log=lambda *a: None)     # warm-up
    start = time.perf_counter()
    generate.render_seeds(G, list(range(count)), label, log=lambda *a: None)
    return count / (time.perf_counter() - start)


def time_generate_cli(rep, pkl, count):
    """Wall seconds of `python generate.py` for `count` seeds, end to end."""
    argv = [sys.executable, os.path.join(REPO_ROOT, 'generate.py'), f'--network={pkl}', f'--seeds=0-{count - 1}',
            '--class=0', f'--outdir={rep.path("generated")}', '--device=cpu']
    rep.command(argv)
    start = time.time()
    subprocess.run(argv, cwd=REPO_ROOT, env=runner.child_env(), check=True, capture_output=True)
    return time.time() - start


def time_projector(pkl, steps):
    """steps/s of projection.project (its own measurement of the optimisation loop) on a digit target."""
    from metrics import detectors
    from stylegan_plus.cli import projection  # pylint: disable=import-outside-toplevel
    from stylegan_plus.cli import device as devices  # pylint: disable=import-outside-toplevel
    G = devices.load_network(pkl)
    pixels, _labels = digits.load(G.img_resolution)
    target = torch.from_numpy(np.repeat(pixels[0][None], G.img_channels, axis=0))
    vgg16 = detectors.load_detector(detectors.VGG16_URL, torch.device('cpu'))
    lines = []
    start = time.perf_counter()
    projection.project(G, target, num_steps=steps, device=torch.device('cpu'), vgg16=vgg16, verbose=True,
                       log=lines.append)
    total = time.perf_counter() - start
    found = [re.search(r'\(([\d.]+) steps/s\)', str(line)) for line in lines]
    found = [m for m in found if m]
    return float(found[-1].group(1)) if found else steps / total, total


def time_features(pkl, data, dataset_items, generator_items):
    """images/s of calc_metrics' feature extraction: (real images, generated images), Inception features."""
    from metrics import metric_utils  # pylint: disable=import-outside-toplevel
    from metrics import detectors  # pylint: disable=import-outside-toplevel
    from stylegan_plus.cli import device as devices  # pylint: disable=import-outside-toplevel
    G = devices.load_network(pkl)
    dataset_kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=data, use_labels=True,
                          resolution=G.img_resolution)
    opts = metric_utils.MetricOptions(G=G, dataset_kwargs=dataset_kwargs, device=torch.device('cpu'), cache=False)
    detector_kwargs = dict(return_features=True)
    metric_utils.get_feature_detector(detectors.INCEPTION_URL, device=opts.device)  # load once, outside the timing
    rates = []
    for fn, items in ((metric_utils.compute_feature_stats_for_dataset, dataset_items),
                      (metric_utils.compute_feature_stats_for_generator, generator_items)):
        start = time.perf_counter()
        stats = fn(opts, detectors.INCEPTION_URL, detector_kwargs, capture_mean_cov=True, max_items=items)
        rates.append(stats.num_items / (time.perf_counter() - start))
    return tuple(rates)


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, report.make_parser(__doc__, BENCH_ID).parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    rep = report.Report(BENCH_ID, 'CPU throughput of generate.py, projector.py, calc_metrics.py', args, seeds,
                        script=__file__, argv=argv, layout='image')
    pixels, labels = digits.load(32)
    data = digits.write_dataset(rep.path('data/digits32.zip'), pixels, labels)
    pkl = write_snapshot(rep, proto['net'], data)
    kind = choose_detectors(rep)
    rep.setting(network=proto['net'], counts={k: v for k, v in proto.items() if k != 'net'}, detectors=kind,
                data='scikit-learn load_digits at 32 px (as RGB for the detector)')
    gen_rate = time_generate(pkl, proto['images'])
    print(f'generate.py render_seeds: {gen_rate:.2f} images/s', flush=True)
    cli_wall = time_generate_cli(rep, pkl, proto['cli_seeds'])
    print(f'generate.py CLI, {proto["cli_seeds"]} seeds end to end: {cli_wall:.1f} s', flush=True)
    proj_rate, proj_total = time_projector(pkl, proto['steps'])
    print(f'projector: {proj_rate:.2f} steps/s ({proto["steps"]} steps; {proj_total:.1f} s with set-up)', flush=True)
    real_rate, fake_rate = time_features(pkl, data, proto['dataset_items'], proto['generator_items'])
    print(f'calc_metrics features: {real_rate:.1f} real images/s, {fake_rate:.2f} generated images/s', flush=True)
    rep.result(generate_images_per_s=gen_rate, generate_cli_wall_s=cli_wall, generate_cli_seeds=proto['cli_seeds'],
               projector_steps_per_s=proj_rate, projector_total_s=proj_total,
               features_real_images_per_s=real_rate, features_generated_images_per_s=fake_rate, detectors=kind)
    rep.figure(figures.bar_plot(rep.path('tools_speed.png'), ['generate img/s', 'projector step/s', 'real feat img/s',
                                                               'gen feat img/s'],
                                [gen_rate, proj_rate, real_rate, fake_rate],
                                title=f'P4: CPU throughput of the tools (detectors: {kind})', ylabel='per second'))
    note = ' (tiny test detectors: not comparable to the official Inception/VGG16)' if kind == 'tiny' else ''
    for what, value in (('generate.py images/s', gen_rate), ('projector.py steps/s', proj_rate),
                        ('calc_metrics.py feature extraction, real images/s', real_rate),
                        ('calc_metrics.py feature extraction, generated images/s', fake_rate)):
        rep.compare(what, 'n/a (printed; regressions visible run to run)', f'{value:.2f}{note}', 'printed', None)
    rep.finish()
    return rep.data


if __name__ == '__main__':
    main()
