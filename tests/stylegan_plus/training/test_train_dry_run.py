"""train.py --dry-run: the network sizes and the memory/speed estimate, and that nothing is created."""

import json
import os
import re

import pytest
import torch
from click.testing import CliRunner

import dnnlib
import train
from stylegan_plus.losses.base import plugin_hooks
from stylegan_plus.training import estimate
from stylegan_plus.training.resolve import resolve_options
from tests.stylegan_plus.training.test_train_batch_gpu import option_values
from tests.stylegan_plus.training.test_train_utils import make_image_dataset, make_point_dataset

DCGAN_TINY = ['--cfg=dcgan', '--cbase=64', '--cmax=16', '--batch=8', '--aug=noaug', '--metrics=none', '--device=cpu']


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return dict(images=make_image_dataset(root / 'rand16', count=12), points=make_point_dataset(root / 'ring.npy'))


def dry_run(*args):
    """(options dict, full output) of a successful `train.py --dry-run`."""
    argv = [str(a) for a in args] + ['--dry-run']
    result = CliRunner().invoke(train.build_command(argv), argv)
    assert result.exit_code == 0, result.output
    text = result.output.split('Training options:\n', 1)[1]
    return json.JSONDecoder().raw_decode(text)[0], result.output


def real_networks(opts):
    """G, D and the loss's extra networks built from the printed options, as the loop builds them."""
    dataset = dnnlib.util.construct_class_by_name(**opts['training_set_kwargs'])
    common = dict(c_dim=dataset.label_dim, img_resolution=dataset.resolution, img_channels=dataset.num_channels)
    G = dnnlib.util.construct_class_by_name(**opts['G_kwargs'], **common)
    D = dnnlib.util.construct_class_by_name(**opts['D_kwargs'], **common)
    loss = dnnlib.util.construct_class_by_name(device='cpu', G=G, D=D, augment_pipe=None, **opts['loss_kwargs'])
    return dict(G=G, D=D, **plugin_hooks(loss, G.z_dim).extra_modules())


def printed_counts(output):
    line = re.search(r'^Network parameters: (.*) \(total ([\d,]+)\)$', output, re.MULTILINE)
    assert line, output
    counts = {name: int(count.replace(',', '')) for name, count in
              (part.rsplit(' ', 1) for part in line.group(1).split(', '))}
    return counts, int(line.group(2).replace(',', ''))


def printed_memory(output):
    match = re.search(r'^Peak memory: +~?([\d.]+) (MiB|GiB) per process on cpu', output, re.MULTILINE)
    assert match, output
    return float(match.group(1)) * (2**20 if match.group(2) == 'MiB' else 2**30)


@pytest.mark.parametrize('extra', [[], ['--loss=tests.plugins_for_tests.ExtraNetLoss']])
def test_dry_run_prints_real_parameter_counts_and_memory(datasets, tmp_path, extra):
    outdir = tmp_path / 'runs'
    opts, output = dry_run(f'--outdir={outdir}', f'--data={datasets["images"]}', *DCGAN_TINY, '--batch-gpu=4',
                           *extra)
    counts, total = printed_counts(output)
    nets = real_networks(opts)
    assert counts == {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
    assert total == sum(counts.values()) and list(counts)[:2] == ['G', 'D']
    assert ('H' in counts) == bool(extra)
    # At least the weights, gradients and Adam moments of the trained networks (float32).
    assert printed_memory(output) >= 16 * total * 0.99
    assert '(fp32, --batch-gpu=4)' in output
    assert re.search(r'^Training speed: +~?[\d.e+]+ s/kimg', output, re.MULTILINE), output
    assert re.search(r'^Estimated by: +(measured|computed)', output, re.MULTILINE), output
    assert output.rstrip().endswith('Dry run; exiting.')
    assert not outdir.exists() and os.listdir(tmp_path) == []


def _options(datasets, cfg, batch_gpu):
    kind = 'points' if cfg == 'toy' else 'images'
    size = dict(cbase=64, cmax=16) if cfg != 'toy' else {}
    return resolve_options(option_values(datasets[kind], cfg, 8, batch_gpu, aug='noaug', **size)).loop_kwargs()


def test_measured_and_computed_estimates(datasets):
    args = _options(datasets, 'toy', batch_gpu=8)
    rng_state = torch.get_rng_state()
    measured = estimate.estimate_training(args, budget_s=1e9)
    assert torch.equal(torch.get_rng_state(), rng_state)     # the caller's random stream is untouched
    assert measured.measured and 'training steps at batch 2 and 4' in measured.detail
    computed = estimate.estimate_training(args, budget_s=0)
    assert not computed.measured and computed.detail.startswith('computed from parameter and activation counts')
    params = sum(measured.params.values())
    assert measured.params == computed.params and params > 0
    for est in (measured, computed):
        assert est.peak_bytes >= 16 * params and est.sec_per_kimg > 0
    lines = estimate.format_estimate(computed)
    assert lines[1].startswith('Peak memory:        ~') and lines[2].startswith('Training speed:     ~')


def test_computed_memory_grows_with_batch_gpu(datasets):
    small = estimate.estimate_training(_options(datasets, 'auto', batch_gpu=2), budget_s=0)
    large = estimate.estimate_training(_options(datasets, 'auto', batch_gpu=8), budget_s=0)
    assert large.peak_bytes > small.peak_bytes and small.precision == 'fp32'
    assert large.params == small.params


def test_estimate_failure_is_a_line_not_a_crash(datasets):
    args = _options(datasets, 'toy', batch_gpu=8)
    args.G_kwargs = dict(args.G_kwargs, class_name='no.such.Generator')
    lines = estimate.estimate_lines(args)
    assert len(lines) == 1 and lines[0].startswith('Estimate:           not available (')
