"""torch_utils.misc: sampler order, constants, shape checks, parameter copies, module summary."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from torch_utils import misc


def _reference_order(size, count, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5):
    """The official index stream, written directly from its description."""
    order = np.arange(size)
    rnd = np.random.RandomState(seed)
    window = 0
    if shuffle:
        rnd.shuffle(order)
        window = int(np.rint(size * window_size))
    result = []
    idx = 0
    while len(result) < count:
        i = idx % size
        if idx % num_replicas == rank:
            result.append(int(order[i]))
        if shuffle and window >= 2:
            j = (i - rnd.randint(window)) % size
            order[i], order[j] = order[j], order[i]
        idx += 1
    return result


def _take(sampler, count):
    return [int(i) for i in itertools.islice(iter(sampler), count)]

#----------------------------------------------------------------------------

@pytest.mark.parametrize('seed', [0, 1, 123])
@pytest.mark.parametrize('size', [1, 7, 50])
def test_infinite_sampler_matches_reference(seed, size):
    dataset = list(range(size))
    sampler = misc.InfiniteSampler(dataset, seed=seed)
    assert _take(sampler, 3 * size + 5) == _reference_order(size, 3 * size + 5, seed=seed)


@pytest.mark.parametrize('num_replicas', [2, 3])
def test_infinite_sampler_splits_between_replicas(num_replicas):
    dataset = list(range(20))
    streams = [_take(misc.InfiniteSampler(dataset, rank=r, num_replicas=num_replicas, seed=5, window_size=0.3), 30)
               for r in range(num_replicas)]
    for rank, stream in enumerate(streams):
        assert stream == _reference_order(20, 30, rank=rank, num_replicas=num_replicas, seed=5, window_size=0.3)
    # Interleaving the replicas' streams gives back the single-process stream.
    merged = [streams[i % num_replicas][i // num_replicas] for i in range(30 * num_replicas)]
    assert merged == _reference_order(20, 30 * num_replicas, seed=5, window_size=0.3)


def test_infinite_sampler_without_shuffle_cycles_in_order():
    sampler = misc.InfiniteSampler(list(range(5)), rank=1, num_replicas=2, shuffle=False)
    assert _take(sampler, 6) == [1, 3, 0, 2, 4, 1]
    assert _take(sampler, 6) == _reference_order(5, 6, rank=1, num_replicas=2, shuffle=False)


def test_infinite_sampler_works_with_dataloader():
    dataset = torch.arange(10, dtype=torch.float32)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=misc.InfiniteSampler(dataset, seed=3))
    batch = next(iter(loader))
    assert batch.tolist() == [float(i) for i in _reference_order(10, 4, seed=3)]


@pytest.mark.parametrize('kwargs, match', [
    (dict(rank=2, num_replicas=2), 'rank'),
    (dict(rank=-1), 'rank'),
    (dict(num_replicas=0), 'num_replicas'),
    (dict(window_size=1.5), 'window_size'),
    (dict(seed=0.5), 'seed'),
])
def test_infinite_sampler_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        misc.InfiniteSampler(list(range(4)), **kwargs)
    with pytest.raises(ValueError, match='non-empty'):
        misc.InfiniteSampler([])

#----------------------------------------------------------------------------

def test_constant_is_cached_and_keyed_by_everything():
    a = misc.constant([1, 2, 3])
    assert a is misc.constant([1, 2, 3])
    assert a.dtype == torch.get_default_dtype() and a.device.type == 'cpu'
    assert misc.constant([1, 2, 4]) is not a
    assert misc.constant([1, 2, 3], dtype=torch.float64) is not a
    assert misc.constant(np.array([1, 2, 3], dtype=np.int64)) is not misc.constant(np.array([1, 2, 3], dtype=np.int32))
    b = misc.constant(2.0, shape=[2, 3])
    assert b.shape == (2, 3) and b.is_contiguous() and torch.all(b == 2)
    c = misc.constant([[1.0], [2.0]], shape=[1, 4])
    assert c.shape == (2, 4) and c[1].tolist() == [2.0] * 4
    d = misc.constant(np.zeros([1, 2, 3, 3]), memory_format=torch.channels_last)
    assert d.is_contiguous(memory_format=torch.channels_last)


def test_assert_shape_messages():
    x = torch.zeros([2, 3, 4])
    misc.assert_shape(x, [2, None, 4])
    with pytest.raises(AssertionError, match='Wrong number of dimensions: got 3, expected 2'):
        misc.assert_shape(x, [2, 3])
    with pytest.raises(AssertionError, match='Wrong size for dimension 1: got 3, expected 5'):
        misc.assert_shape(x, [2, 5, 4])


def test_suppress_tracer_warnings_only_inside_block():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with misc.suppress_tracer_warnings():
            warnings.warn('hidden', torch.jit.TracerWarning)
        warnings.warn('shown', torch.jit.TracerWarning)
    assert [str(w.message) for w in caught] == ['shown']


def test_profiled_function_keeps_name_and_result():
    @misc.profiled_function
    def double(x):
        return 2 * x
    assert double(3) == 6 and double.__name__ == 'double'


def test_nan_to_num_and_symbolic_assert():
    x = torch.tensor([float('nan'), float('inf'), -float('inf'), 1.0])
    assert misc.nan_to_num(x).tolist()[::3] == [0.0, 1.0]
    assert misc._nan_to_num_fallback(x).tolist() == misc.nan_to_num(x).tolist()
    misc.symbolic_assert(True, 'fine')

#----------------------------------------------------------------------------

class _Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 3))

    def forward(self, x):
        features = self.norm(self.conv(x))
        return self.head(features), features


def test_params_and_buffers_order():
    net = _Small()
    names = [name for name, _ in misc.named_params_and_buffers(net)]
    assert names[:2] == ['conv.weight', 'conv.bias'] and names[-1] == 'norm.num_batches_tracked'
    assert len(misc.params_and_buffers(net)) == len(names)


def test_copy_params_and_buffers():
    torch.manual_seed(0)
    src, dst = _Small(), _Small()
    src.norm.running_mean.fill_(3.0)
    misc.copy_params_and_buffers(src, dst, require_all=True)
    for (name, a), (_, b) in zip(misc.named_params_and_buffers(src), misc.named_params_and_buffers(dst)):
        assert torch.equal(a, b), name
    assert dst.conv.weight.requires_grad

    partial = torch.nn.Module()
    partial.conv = torch.nn.Conv2d(2, 4, 3)
    misc.copy_params_and_buffers(partial, dst) # missing names are fine without require_all
    assert torch.equal(dst.conv.weight, partial.conv.weight)
    with pytest.raises(KeyError, match='head.1.weight'):
        misc.copy_params_and_buffers(partial, dst, require_all=True)
    partial.conv = torch.nn.Conv2d(2, 4, 1)
    with pytest.raises(ValueError, match='conv.weight'):
        misc.copy_params_and_buffers(partial, dst)


def test_ddp_sync_is_a_no_op_for_plain_modules():
    net = _Small()
    for sync in (False, True):
        with misc.ddp_sync(net, sync):
            pass


def test_print_module_summary(capsys):
    net = _Small().eval()
    x = torch.randn([2, 2, 5, 5])
    logits, features = misc.print_module_summary(net, [x])
    assert logits.shape == (2, 3) and features.shape == (2, 4, 5, 5)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ['_Small', 'Parameters', 'Buffers', 'Output', 'shape', 'Datatype']
    rows = {line.split()[0]: line.split() for line in lines[2:-2]}
    assert rows['conv'][1:] == ['76', '-', '[2,', '4,', '5,', '5]', 'float32']
    assert rows['norm'][1:3] == ['8', '9'] # weight+bias; running mean/var + num_batches_tracked
    assert rows['head.1'][1:] == ['303', '-', '[2,', '3]', 'float32']
    assert rows['head.0'][1:3] == ['-', '-'] # Flatten: no tensors of its own, but a new output
    # The Sequential and the top level only re-emit tensors already listed: skipped as redundant.
    assert 'head' not in rows and '<top-level>' not in rows
    total = lines[-1].split()
    num_params = sum(p.numel() for p in net.parameters())
    num_buffers = sum(b.numel() for b in net.buffers())
    assert total == ['Total', str(num_params), str(num_buffers), '-', '-']


def test_print_module_summary_respects_max_nesting(capsys):
    net = _Small().eval()
    misc.print_module_summary(net, [torch.randn([1, 2, 5, 5])], max_nesting=1)
    names = [line.split()[0] for line in capsys.readouterr().out.strip().splitlines()[2:-2]]
    assert names == ['conv', 'norm', 'head']


def test_print_module_summary_can_keep_redundant_rows(capsys):
    misc.print_module_summary(_Small().eval(), [torch.randn([1, 2, 5, 5])], skip_redundant=False)
    names = [line.split()[0] for line in capsys.readouterr().out.strip().splitlines()[2:-2]]
    assert names == ['conv', 'norm', 'head.0', 'head.1', 'head', '<top-level>']
