"""torch_utils.training_stats: moments, Collector behaviour, and a 2-process gloo reduction."""

import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import training_stats

from tests import REPO as REPO_ROOT
import tests
GOLDEN = tests.DATA / 'training_stats_baseline.json'


@pytest.fixture(autouse=True)
def fresh_stats(monkeypatch):
    """Each test starts with empty, single-process module state."""
    monkeypatch.setattr(training_stats, '_counters', {})
    monkeypatch.setattr(training_stats, '_cumulative', {})
    monkeypatch.setattr(training_stats, '_rank', 0)
    monkeypatch.setattr(training_stats, '_sync_device', None)
    monkeypatch.setattr(training_stats, '_sync_called', False)


def test_constants():
    assert training_stats._num_moments == 3
    assert training_stats._reduce_dtype == torch.float32
    assert training_stats._counter_dtype == torch.float64


def test_moments_of_mixed_value_kinds():
    collector = training_stats.Collector()
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    training_stats.report('Loss/a', torch.tensor(values[:2]))
    training_stats.report('Loss/a', np.array([[values[2]], [values[3]]]))
    assert training_stats.report('Loss/a', values[4]) == values[4] # returns the value
    collector.update()
    assert collector.num('Loss/a') == 5
    assert collector.mean('Loss/a') == pytest.approx(np.mean(values))
    assert collector.std('Loss/a') == pytest.approx(np.std(values))
    assert collector['Loss/a'] == collector.mean('Loss/a')


def test_report_leaves_autograd_alone_and_checks_the_name():
    collector = training_stats.Collector()
    weight = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = weight * 3
    assert training_stats.report('Loss/w', loss) is loss
    loss.sum().backward()                   # the graph is intact and the report added nothing to it
    assert weight.grad.tolist() == [3.0, 3.0]
    collector.update()
    assert collector.mean('Loss/w') == 4.5
    with pytest.raises(TypeError, match='must be a str'):
        training_stats.report(('Loss', 'w'), 1.0)


def test_unknown_empty_and_single_values():
    training_stats.report('empty', [])
    training_stats.report('single', torch.tensor(5.0))
    collector = training_stats.Collector()
    training_stats.report('single', torch.tensor(5.0))
    collector.update()
    assert collector.names() == ['empty', 'single']
    for name in ('empty', 'never-reported'):
        assert collector.num(name) == 0
        assert math.isnan(collector.mean(name)) and math.isnan(collector.std(name))
    # Only the report after the collector was created counts.
    assert collector.num('single') == 1 and collector.mean('single') == 5.0 and collector.std('single') == 0.0


def test_as_dict_and_regex():
    training_stats.report('Loss/G', [1.0, 3.0])
    training_stats.report('Timing/step', [0.5])
    collector = training_stats.Collector(regex='Loss/.*')
    training_stats.report('Loss/G', [1.0, 3.0])
    training_stats.report('Timing/step', [0.5])
    collector.update()
    stats = collector.as_dict()
    assert isinstance(stats, dnnlib.EasyDict) and list(stats) == ['Loss/G']
    assert stats['Loss/G'] == dict(num=2, mean=2.0, std=1.0)
    assert isinstance(stats['Loss/G'], dnnlib.EasyDict)


@pytest.mark.parametrize('keep_previous', [True, False])
def test_keep_previous(keep_previous):
    collector = training_stats.Collector(keep_previous=keep_previous)
    training_stats.report('x', [2.0, 4.0])
    collector.update()
    assert collector.mean('x') == 3.0
    collector.update() # nothing new in this interval
    if keep_previous:
        assert collector.num('x') == 2 and collector.mean('x') == 3.0
    else:
        assert collector.num('x') == 0 and math.isnan(collector.mean('x'))
    training_stats.report('x', [10.0])
    collector.update()
    assert collector.num('x') == 1 and collector.mean('x') == 10.0


def test_collectors_are_independent():
    first = training_stats.Collector()
    training_stats.report('x', [1.0])
    first.update()
    second = training_stats.Collector()
    training_stats.report('x', [3.0])
    first.update()
    second.update()
    assert first.mean('x') == 3.0 and second.mean('x') == 3.0
    assert first.num('x') == 1 and second.num('x') == 1


def test_report0_only_counts_on_rank0(monkeypatch):
    collector = training_stats.Collector()
    training_stats.report0('r0', [1.0, 2.0])
    monkeypatch.setattr(training_stats, '_rank', 1)
    training_stats.report0('r1', [1.0, 2.0])
    collector.update()
    assert collector.num('r0') == 2
    assert 'r1' in collector.names() and collector.num('r1') == 0


def test_init_multiprocessing_after_sync_fails_with_other_settings():
    training_stats.report('x', [1.0])
    training_stats.Collector()
    with pytest.raises(RuntimeError, match='before the first Collector.update'):
        training_stats.init_multiprocessing(1, torch.device('cpu'))
    assert (training_stats._rank, training_stats._sync_device) == (0, None)    # unchanged


def test_init_multiprocessing_again_with_the_same_settings():
    """A second training run in one process (a notebook) initialises again with the same values."""
    training_stats.init_multiprocessing(0, None)
    training_stats.report('x', [1.0])
    collector = training_stats.Collector()
    training_stats.init_multiprocessing(0, None)
    training_stats.report('x', [3.0])
    collector.update()
    assert collector.num('x') == 1 and collector.mean('x') == 3.0


def test_reset_forgets_names_and_allows_new_settings():
    training_stats.report('old/name', [1.0, 2.0])
    training_stats.Collector().update()
    training_stats.reset()
    assert training_stats._counters == {} and training_stats._cumulative == {}
    training_stats.init_multiprocessing(1, None)    # allowed again after a reset
    collector = training_stats.Collector()
    training_stats.report0('new/name', [5.0])       # rank 1 only registers the name
    training_stats.report('other', [4.0])
    collector.update()
    assert collector.names() == ['new/name', 'other']
    assert collector.num('new/name') == 0 and collector.mean('other') == 4.0

#----------------------------------------------------------------------------
# Golden numbers: a fixed sequence of reports and updates, recorded once with the code as it was
# before the rewrite of training_stats (tests/data/training_stats_baseline.json). The rewrite must
# reproduce every count, mean and std bit for bit, NaN/inf/empty statistics included.

def stats_scenario(ts):
    """Drive module `ts` through reports, updates and collectors; return what they showed (JSON-able)."""
    ts.reset()
    ts.init_multiprocessing(0, None)
    gen = torch.Generator().manual_seed(1234)
    record = []

    def snapshot(label, **collectors):
        for key, collector in collectors.items():
            record.append([label, key, collector.names(), collector.as_dict(),
                           [collector.num('never'), collector.mean('never'), collector.std('never')]])

    ts.report('Loss/a', torch.randn([5], generator=gen))        # before any collector: never counted
    everything = ts.Collector()
    losses = ts.Collector(regex='Loss/.*', keep_previous=False)
    late = None
    for step in range(6):
        # Large offsets make the variance a small difference of large sums (cancellation).
        assert ts.report('Loss/a', torch.randn([37], generator=gen) * 3 + 1e4).shape == (37,)
        ts.report('Loss/a', torch.randn([3, 4], generator=gen).t())      # non-contiguous
        ts.report('Loss/b', np.random.RandomState(step).uniform(-1, 1, size=[7]).astype(np.float64))
        ts.report('Timing/x', 0.1 * (step + 1))
        ts.report0('Progress/k', step * 1.5)
        ts.report('Loss/half', torch.randn([9], generator=gen).half())
        ts.report('Loss/int', torch.arange(step + 2))
        ts.report('Loss/bool', torch.arange(5) < step)
        ts.report('Loss/big', torch.randn([100003], generator=gen) * 50 + 7)
        ts.report('Loss/empty', [])
        ts.report('Loss/nan', [1.0, float('nan')] if step == 2 else [float(step)])
        ts.report('Loss/inf', [float('inf')] if step == 3 else [2.0, 4.0])
        if step in (0, 3):
            ts.report('Loss/sometimes', [step + 0.25, step - 0.5])
        if step == 4:
            ts.report('Loss/single', 42.0)
        everything.update()
        if step % 2 == 1:
            losses.update()
        if step == 2:
            late = ts.Collector(regex='Loss/(a|sometimes|nan)')
        if late is not None:
            late.update()
        snapshot(f'step{step}', everything=everything, losses=losses, **({'late': late} if late else {}))
    everything.update()     # an interval without reports
    losses.update()
    snapshot('idle', everything=everything, losses=losses)

    ts.reset()
    ts.init_multiprocessing(1, None)    # rank 1: report0 only registers the name
    rank1 = ts.Collector()
    ts.report0('Progress/k', [3.0, 4.0])
    ts.report('Loss/a', [5.0])
    rank1.update()
    snapshot('rank1', rank1=rank1)
    ts.reset()
    ts.init_multiprocessing(0, None)
    return record


def _assert_same_structure(got, want, where='baseline'):
    """Equal structure, keys, strings and counts; floats equal to 1e-6 relative.

    The float32 sums over 200k values round differently with different SIMD widths, so the
    recorded means/stds may move in the 7th digit from one CPU to another.
    """
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for key in want:
            _assert_same_structure(got[key], want[key], f'{where}/{key}')
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want)):
            _assert_same_structure(g, w, f'{where}[{index}]')
    elif isinstance(want, float):
        assert isinstance(got, (int, float)), where
        if math.isnan(want):
            assert math.isnan(got), f'{where}: {got} is not NaN'
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9), where
    else:
        assert got == want and type(got) is type(want), f'{where}: {got!r} != {want!r}'


def test_scenario_matches_recorded_baseline():
    got = json.loads(json.dumps(stats_scenario(training_stats)))
    want = json.loads(GOLDEN.read_text())
    _assert_same_structure(got, want)


def test_scenario_exercises_nan_inf_and_empty():
    """Guards the golden file itself: it must contain the edge cases it is meant to pin down."""
    stats = [entry for _label, _key, _names, table, _never in json.loads(GOLDEN.read_text())
             for entry in table.values()]
    assert any(s['num'] == 0 and math.isnan(s['mean']) and math.isnan(s['std']) for s in stats)
    assert any(s['num'] > 0 and math.isnan(s['mean']) for s in stats)
    assert any(math.isinf(s['mean']) and math.isnan(s['std']) for s in stats)
    assert any(s['num'] == 1 and s['std'] == 0.0 for s in stats)
    assert any(s['num'] > 100000 and s['std'] > 0 for s in stats)


#----------------------------------------------------------------------------
# Two real processes reducing over gloo on CPU.

_WORKER = textwrap.dedent('''\
    import json, sys
    import torch
    from torch_utils import misc, training_stats

    rank, init_file, out_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    torch.distributed.init_process_group('gloo', init_method='file://' + init_file, rank=rank, world_size=2)
    training_stats.init_multiprocessing(rank=rank, sync_device=torch.device('cpu'))
    # Different first-report order on the two ranks must still pair the right names.
    names = ['Loss/b', 'Loss/a'] if rank == 0 else ['Loss/a', 'Loss/b']
    for name in names:
        training_stats.report(name, [])
    collector = training_stats.Collector(regex='Loss/.*')
    training_stats.report('Loss/a', torch.full([rank + 1], float(rank + 1)))  # rank0: [1], rank1: [2, 2]
    training_stats.report('Loss/b', [10.0 * (rank + 1)])
    training_stats.report0('Loss/only0', [7.0, 9.0])
    collector.update()

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    misc.check_ddp_consistency(net)
    net.bias.data[0] += rank
    try:
        misc.check_ddp_consistency(net, ignore_regex=None)
        mismatch = None
    except AssertionError as exc:
        mismatch = str(exc)
    misc.check_ddp_consistency(net, ignore_regex=r'.*\\.bias')
    with open(out_file, 'w') as f:
        json.dump(dict(stats=collector.as_dict(), names=collector.names(), mismatch=mismatch), f)
    torch.distributed.destroy_process_group()
''')


@pytest.mark.slow
def test_two_process_gloo_reduction(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(_WORKER)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path / 'rendezvous'),
                               str(tmp_path / f'out{rank}.json')], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    try:
        logs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log

    for rank in range(2):
        result = json.loads((tmp_path / f'out{rank}.json').read_text())
        stats = result['stats']
        assert result['names'] == (['Loss/b', 'Loss/a', 'Loss/only0'] if rank == 0 else ['Loss/a', 'Loss/b', 'Loss/only0'])
        assert stats['Loss/a'] == dict(num=3, mean=pytest.approx(5 / 3), std=pytest.approx(np.std([1, 2, 2])))
        assert stats['Loss/b'] == dict(num=2, mean=15.0, std=5.0)
        assert stats['Loss/only0'] == dict(num=2, mean=8.0, std=1.0)
        expected_mismatch = 'Linear.bias differs from rank 0' if rank == 1 else None
        assert result['mismatch'] == expected_mismatch
