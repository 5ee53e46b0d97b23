"""torch_utils.persistence: pickle format, round trips, import hooks, official-format pickles."""

import copy
import importlib
import io
import pathlib
import pickle
import sys
import textwrap
import uuid
import warnings

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import persistence

# Every global an official snapshot pickle may reference (docs/compat.md §3.1).
OFFICIAL_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'),
    ('dnnlib.util', 'EasyDict'),
    ('collections', 'OrderedDict'),
    ('torch._utils', '_rebuild_tensor_v2'),
    ('torch._utils', '_rebuild_parameter'),
    ('torch.storage', '_load_from_bytes'),
    ('numpy', 'dtype'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.multiarray', 'scalar'),
}

DEMO_SOURCE = textwrap.dedent('''\
    """Persistent demo networks written by the test into tmp_path."""
    import numpy as np
    import torch
    from torch_utils import persistence

    @persistence.persistent_class
    class Block(torch.nn.Module):
        def __init__(self, channels, scale=1.0):
            super().__init__()
            self.channels = channels
            self.scale = np.float32(scale)
            self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
            self.register_buffer('offset', torch.arange(channels, dtype=torch.float32))

        def forward(self, x):
            return x.matmul(self.weight.t()) * self.scale + self.offset

    @persistence.persistent_class
    class Net(torch.nn.Module):
        def __init__(self, channels, num_blocks=2, cfg=None):
            super().__init__()
            # Only persistent submodules, as in official networks: no torch classes in the pickle.
            self.num_blocks = num_blocks
            for i in range(num_blocks):
                setattr(self, f'b{i}', Block(channels, scale=0.5 + i))

        def forward(self, x):
            for i in range(self.num_blocks):
                x = getattr(self, f'b{i}')(x)
            return x

    class Plain:
        pass
''')


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """Import DEMO_SOURCE as a real module file (unique name per test)."""
    name = f'persist_demo_{uuid.uuid4().hex[:8]}'
    (tmp_path / f'{name}.py').write_text(DEMO_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


@pytest.fixture
def fresh_registry(monkeypatch):
    """Forget which sources were already executed, so loading execs embedded source anew."""
    monkeypatch.setattr(persistence, '_src_to_module_dict', {})
    monkeypatch.setattr(persistence, '_import_hooks', [])


class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.globals = set()

    def find_class(self, module, name):
        self.globals.add((module, name))
        return super().find_class(module, name)


def _load_recording(data):
    unpickler = _RecordingUnpickler(data)
    return unpickler.load(), unpickler.globals


def _make_net(demo):
    torch.manual_seed(0)
    return demo.Net(4, num_blocks=2, cfg=dnnlib.EasyDict(depth=2, tags=['a', 'b']))

#----------------------------------------------------------------------------
# Golden pickles, written once by the code as it was before persistence.py was rewritten.
# Pickles of this code must keep loading in that code and in the official tree, and theirs here.

from tests import DATA
BASELINE_PICKLE = DATA / 'persistence_baseline.pkl'         # pickle.dumps(_golden_payload(demo))
BASELINE_STREAM = DATA / 'persistence_baseline_stream.bin'  # _stable_dumps of the same payload


def _golden_payload(demo):
    """A snapshot-like dict: persistent nets nested in a plain dict, sharing one module source."""
    net = _make_net(demo)
    torch.manual_seed(5)
    block = demo.Block(3, scale=2.5)
    return dict(training_set_kwargs=dict(path='/data/x.zip', max_size=7), G=net, D=block, augment_pipe=None)


class _StableStoragePickler(pickle.Pickler):
    """Writes tensor storages as their raw bytes.

    torch names each storage by its memory address inside the pickle, so two pickles of equal
    tensors differ byte-wise between processes; without those names, the stream depends only on
    what persistence.py writes (meta dicts, state order, memoised source) and the tensor values.
    The stream is for comparison only and does not load back.
    """
    def reducer_override(self, obj):
        if isinstance(obj, torch.storage.TypedStorage):
            with warnings.catch_warnings():   # TypedStorage.untyped() warns that TypedStorage is deprecated
                warnings.simplefilter('ignore', UserWarning)
                return (bytes, (bytes(obj.untyped().tolist()),))
        return NotImplemented


def _stable_dumps(obj):
    buf = io.BytesIO()
    _StableStoragePickler(buf, protocol=pickle.DEFAULT_PROTOCOL).dump(obj)
    return buf.getvalue()


def test_stream_is_byte_identical_to_the_baseline(demo):
    assert _stable_dumps(_golden_payload(demo)) == BASELINE_STREAM.read_bytes()


def test_baseline_pickle_loads_and_pickles_back_identically(demo, fresh_registry):
    loaded = pickle.loads(BASELINE_PICKLE.read_bytes())
    fresh = _golden_payload(demo)
    assert loaded['training_set_kwargs'] == fresh['training_set_kwargs'] and loaded['augment_pipe'] is None
    for key in ('G', 'D'):
        assert type(loaded[key]).__name__ == type(fresh[key]).__name__
        assert type(loaded[key])._orig_module_src == DEMO_SOURCE
        assert loaded[key].init_args == fresh[key].init_args
        assert loaded[key].init_kwargs == fresh[key].init_kwargs
        want = fresh[key].state_dict()
        assert list(loaded[key].state_dict()) == list(want)
        assert all(torch.equal(t, want[name]) for name, t in loaded[key].state_dict().items())
    x = torch.randn([2, 4])
    assert torch.equal(loaded['G'](x), fresh['G'](x))
    # What the baseline wrote and this code writes again are the same stream.
    assert _stable_dumps(loaded) == BASELINE_STREAM.read_bytes()

#----------------------------------------------------------------------------

def test_round_trip_keeps_state_kwargs_and_outputs(demo):
    net = _make_net(demo)
    loaded = pickle.loads(pickle.dumps(net))
    assert type(loaded).__name__ == 'Net'
    assert loaded.init_kwargs == net.init_kwargs
    assert isinstance(loaded.init_kwargs, dnnlib.EasyDict)
    assert isinstance(loaded.init_kwargs.cfg, dnnlib.EasyDict)
    assert loaded.init_args == (4,)
    for (name_a, a), (name_b, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert name_a == name_b and torch.equal(a, b)
    x = torch.randn([3, 4])
    assert torch.equal(net(x), loaded(x))
    # deepcopy (used for G_ema) goes through the same reduce and keeps class and values.
    clone = copy.deepcopy(net)
    assert type(clone) is type(net) and clone.init_kwargs == net.init_kwargs
    assert clone.b0.weight is not net.b0.weight and torch.equal(clone(x), net(x))


def test_loading_execs_embedded_source_and_repickles(demo, fresh_registry):
    net = _make_net(demo)
    loaded = pickle.loads(pickle.dumps(net))
    embedded_module = sys.modules[type(loaded).__mro__[1].__module__]
    assert embedded_module.__name__.startswith('_imported_module_')
    assert type(loaded) is not type(net)
    x = torch.randn([2, 4])
    assert torch.equal(net(x), loaded(x))
    # A class defined by embedded source pickles again with the same source, and that module is reused.
    again = pickle.loads(pickle.dumps(loaded))
    assert type(again) is type(loaded)
    assert type(again)._orig_module_src == DEMO_SOURCE
    assert torch.equal(again(x), net(x))


def test_meta_format_and_class_attributes(demo):
    net = _make_net(demo)
    func, args = net.__reduce__()
    assert func is persistence._reconstruct_persistent_obj
    meta = args[0]
    assert type(meta) is dict
    assert list(meta) == ['type', 'version', 'module_src', 'class_name', 'state']
    assert meta['type'] == 'class' and meta['version'] == 6 == persistence._version
    assert meta['module_src'] == DEMO_SOURCE and meta['class_name'] == 'Net'
    assert list(meta['state'])[-2:] == ['_init_args', '_init_kwargs']
    assert list(meta['state'])[0] == 'training'
    assert demo.Net.__name__ == 'Net' and demo.Net.__module__ == 'torch_utils.persistence'
    assert demo.Net._orig_class_name == 'Net'


def test_source_is_stored_once(demo):
    data = pickle.dumps(_make_net(demo)) # Net + 2 Blocks from the same module.
    assert data.count(DEMO_SOURCE.encode('utf-8')) == 1
    assert data.count(b'_reconstruct_persistent_obj') == 1


def test_pickle_references_only_official_globals(demo):
    _, found = _load_recording(pickle.dumps(_make_net(demo)))
    assert found <= OFFICIAL_GLOBALS, found - OFFICIAL_GLOBALS
    assert ('torch_utils.persistence', '_reconstruct_persistent_obj') in found
    assert ('dnnlib.util', 'EasyDict') in found
    assert ('numpy._core.multiarray', 'scalar') in found


def test_numpy_scalar_attribute_round_trips(demo):
    loaded = pickle.loads(pickle.dumps(_make_net(demo)))
    scale = loaded.b1.scale
    assert type(scale) is np.float32 and scale == np.float32(1.5)


def test_init_args_are_deep_copies(demo):
    cfg = dnnlib.EasyDict(depth=2)
    net = demo.Net(4, cfg=cfg)
    cfg.depth = 99
    kwargs = net.init_kwargs
    kwargs.cfg.depth = 7
    assert net.init_kwargs.cfg.depth == 2
    assert isinstance(net.init_args, tuple)


def test_unpicklable_constructor_argument_is_rejected(demo):
    with pytest.raises(TypeError, match='cannot be pickled'):
        demo.Net(4, cfg=lambda: None)


def test_is_persistent(demo):
    net = _make_net(demo)
    assert persistence.is_persistent(demo.Net) and persistence.is_persistent(net)
    assert not persistence.is_persistent(demo.Plain) and not persistence.is_persistent(demo.Plain())
    assert not persistence.is_persistent([1, 2]) # unhashable
    assert persistence.persistent_class(demo.Net) is demo.Net
    wrapped = persistence.persistent_class(demo.Plain)
    assert persistence.is_persistent(wrapped) and wrapped.__name__ == 'Plain'
    assert persistence.persistent_class(demo.Plain) is wrapped


def test_import_hook_rewrites_source(demo, fresh_registry):
    net = _make_net(demo)
    data = pickle.dumps(net)
    seen = []

    @persistence.import_hook
    def shift_output(meta):
        seen.append(type(meta.state))
        meta.module_src = meta.module_src.replace('return x\n', 'return x + 1000\n')
        return meta

    loaded = pickle.loads(data)
    x = torch.randn([2, 4])
    assert torch.allclose(loaded(x), net(x) + 1000)
    assert seen and all(t is dnnlib.EasyDict for t in seen)


def test_import_hook_returning_none_fails(demo, fresh_registry):
    data = pickle.dumps(_make_net(demo))
    persistence.import_hook(lambda meta: None)
    with pytest.raises(TypeError, match='returned None'):
        pickle.loads(data)


def test_wrong_version_is_rejected(demo):
    meta = _make_net(demo).__reduce__()[1][0]
    meta['version'] = 5
    with pytest.raises(ValueError, match='version'):
        persistence._reconstruct_persistent_obj(meta)


def test_wrong_type_and_missing_class_are_rejected(demo, fresh_registry):
    meta = _make_net(demo).__reduce__()[1][0]
    with pytest.raises(ValueError, match="type 'function'"):
        persistence._reconstruct_persistent_obj(dict(meta, type='function'))
    with pytest.raises(ValueError, match="no top-level class 'Missing'"):
        persistence._reconstruct_persistent_obj(dict(meta, class_name='Missing'))


def test_source_that_fails_leaves_no_module_behind(demo, fresh_registry):
    meta = _make_net(demo).__reduce__()[1][0]
    broken = dict(meta, module_src=meta['module_src'] + '\nraise RuntimeError("boom")\n')
    modules_before = set(sys.modules)
    with pytest.raises(RuntimeError, match='boom'):
        persistence._reconstruct_persistent_obj(broken)
    assert set(sys.modules) == modules_before
    assert broken['module_src'] not in persistence._src_to_module_dict
    # The intact source still loads, into a module of the documented name.
    net = persistence._reconstruct_persistent_obj(meta)
    assert type(net).__mro__[1].__module__.startswith('_imported_module_')


def test_class_not_reachable_by_name_cannot_be_pickled(demo, fresh_registry):
    loaded = pickle.loads(pickle.dumps(_make_net(demo)))
    module = sys.modules[type(loaded).__mro__[1].__module__]
    del module.Net      # the loaded source no longer names the class
    with pytest.raises(pickle.PicklingError, match="no top-level class of that name"):
        pickle.dumps(loaded)


def test_classes_with_a_metaclass_and_plain_state(tmp_path, monkeypatch):
    """A persistent class keeps its metaclass (abc.ABC here) and non-Module state pickles via __dict__."""
    (tmp_path / 'persist_abc_demo.py').write_text(textwrap.dedent('''\
        import abc
        from torch_utils import persistence

        @persistence.persistent_class
        class Config(abc.ABC):
            def __init__(self, depth, tags=()):
                self.depth = depth
                self.tags = list(tags)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module('persist_abc_demo')
    try:
        cfg = module.Config(3, tags=['x'])
        assert isinstance(type(cfg), type(module.Config.__mro__[1])) and type(module.Config).__name__ == 'ABCMeta'
        loaded = pickle.loads(pickle.dumps(cfg))
        assert (loaded.depth, loaded.tags, loaded.init_args, loaded.init_kwargs) == (3, ['x'], (3,), {'tags': ['x']})
    finally:
        sys.modules.pop('persist_abc_demo', None)

#----------------------------------------------------------------------------
# A pickle built by hand in the official format, whose embedded source uses every name that
# official networks.py / augment.py use from torch_utils.

OFFICIAL_STYLE_SOURCE = textwrap.dedent('''\
    import numpy as np
    import torch
    from torch_utils import misc
    from torch_utils import persistence
    from torch_utils.ops import conv2d_resample
    from torch_utils.ops import upfirdn2d
    from torch_utils.ops import bias_act
    from torch_utils.ops import fma
    from torch_utils.ops import conv2d_gradfix
    from torch_utils.ops import grid_sample_gradfix

    @misc.profiled_function
    def modulate(x, styles):
        misc.assert_shape(styles, [x.shape[0], x.shape[1]])
        return fma.fma(x, styles.reshape(x.shape[0], -1, 1, 1), misc.constant(0.25, dtype=x.dtype))

    @persistence.persistent_class
    class Affine(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn([channels, channels]))

        def forward(self, x):
            return x.matmul(self.weight.t())

    @persistence.persistent_class
    class Probe(torch.nn.Module):
        def __init__(self, channels=3, act='lrelu', mapping_kwargs={}):
            super().__init__()
            self.channels = channels
            self.act = act
            self.act_gain = bias_act.activation_funcs[act].def_gain
            self.weight_gain = np.float32(1 / np.sqrt(channels * 9))
            self.weight = torch.nn.Parameter(torch.randn([channels, channels, 3, 3]))
            self.bias = torch.nn.Parameter(torch.randn([channels]))
            self.register_buffer('resample_filter', upfirdn2d.setup_filter([1, 3, 3, 1]))
            self.affine = Affine(channels)

        def forward(self, x):
            misc.assert_shape(x, [None, self.channels, None, None])
            with misc.suppress_tracer_warnings():
                batch = int(x.shape[0])
            y = modulate(x, self.affine(x.mean(dim=[2, 3])))
            w = self.weight * self.weight_gain
            conv = conv2d_resample.conv2d_resample(y, w, f=self.resample_filter, padding=1)
            act = bias_act.bias_act(conv, self.bias, act=self.act, gain=self.act_gain)
            conv_down = conv2d_resample.conv2d_resample(act, w, f=self.resample_filter, down=2, padding=1)
            conv_up = conv2d_resample.conv2d_resample(act, w, f=self.resample_filter, up=2, padding=1)
            up = upfirdn2d.upsample2d(act, self.resample_filter)
            down = upfirdn2d.downsample2d(up, self.resample_filter)
            theta = misc.constant([[1, 0, 0], [0, 1, 0]], dtype=x.dtype).unsqueeze(0).repeat([batch, 1, 1])
            grid = torch.nn.functional.affine_grid(theta, list(down.shape), align_corners=False)
            sampled = grid_sample_gradfix.grid_sample(down, grid)
            out = conv2d_gradfix.conv2d(sampled, w, padding=1)
            return out, conv_down, conv_up
''')


class _PersistentCall:
    """Stands for one official persistent object inside the hand-built pickle."""
    def __init__(self, meta):
        self.meta = meta


class _OfficialStylePickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, _PersistentCall):
            return (persistence._reconstruct_persistent_obj, (obj.meta,))
        return NotImplemented


def _official_meta(class_name, module, init_args, init_kwargs):
    """Meta dict as an official pickle holds it; `module` is a plain torch Module with the state."""
    state = dict(module.__dict__)
    state['_init_args'] = init_args
    state['_init_kwargs'] = init_kwargs
    return dict(type='class', version=6, module_src=OFFICIAL_STYLE_SOURCE, class_name=class_name, state=state)


def _hand_built_probe_pickle(channels):
    torch.manual_seed(1)
    affine = torch.nn.Module()
    affine.weight = torch.nn.Parameter(torch.randn([channels, channels]))
    probe = torch.nn.Module()
    probe.channels = channels
    probe.act = 'lrelu'
    probe.act_gain = np.sqrt(2)
    probe.weight_gain = np.float32(1 / np.sqrt(channels * 9))
    probe.weight = torch.nn.Parameter(torch.randn([channels, channels, 3, 3]))
    probe.bias = torch.nn.Parameter(torch.randn([channels]))
    probe.register_buffer('resample_filter', torch.outer(*[torch.tensor([1., 3., 3., 1.])] * 2) / 64)
    probe._modules['affine'] = _PersistentCall(_official_meta('Affine', affine, (channels,), {}))
    kwargs = dict(channels=channels, act='lrelu', mapping_kwargs=dnnlib.EasyDict(num_layers=2))
    buf = io.BytesIO()
    _OfficialStylePickler(buf, protocol=4).dump(_PersistentCall(_official_meta('Probe', probe, (), kwargs)))
    return buf.getvalue(), probe, affine


def _fir(x, f):
    """Depthwise true convolution with the 2-D filter f, no padding."""
    kernel = f.flip([0, 1])[None, None].repeat([x.shape[1], 1, 1, 1])
    return torch.nn.functional.conv2d(x, kernel, groups=x.shape[1])


def _zero_insert(x, up):
    out = x.new_zeros([x.shape[0], x.shape[1], x.shape[2] * up, x.shape[3] * up])
    out[:, :, ::up, ::up] = x
    return out


def _expected_probe_outputs(x, probe, affine):
    """The embedded forward, written with plain torch from the documented op semantics."""
    F = torch.nn.functional
    f = probe.resample_filter
    styles = x.mean(dim=[2, 3]) @ affine.weight.t()
    y = x * styles[:, :, None, None] + 0.25
    w = probe.weight * float(probe.weight_gain)
    act = F.leaky_relu(F.conv2d(y, w, padding=1) + probe.bias[None, :, None, None], 0.2) * np.sqrt(2)
    conv_down = _fir(F.conv2d(F.pad(act, [2, 2, 2, 2]), w), f)[:, :, ::2, ::2]
    conv_up = F.conv2d(_fir(F.pad(_zero_insert(act, 2), [3, 2, 3, 2]), f * 4), w)
    up = _fir(F.pad(_zero_insert(act, 2), [2, 1, 2, 1]), f * 4)
    down = _fir(F.pad(up, [1, 1, 1, 1]), f)[:, :, ::2, ::2]
    out = F.conv2d(down, w, padding=1) # grid_sample with the identity grid leaves `down` unchanged.
    return out, conv_down, conv_up


def test_hand_built_official_pickle_loads_and_matches_plain_torch():
    data, probe, affine = _hand_built_probe_pickle(channels=3)
    assert data.count(OFFICIAL_STYLE_SOURCE.encode('utf-8')) == 1
    loaded, found = _load_recording(data)
    assert found <= OFFICIAL_GLOBALS, found - OFFICIAL_GLOBALS
    assert type(loaded).__name__ == 'Probe' and persistence.is_persistent(loaded)
    assert persistence.is_persistent(loaded.affine)
    assert sys.modules[type(loaded).__mro__[1].__module__].__name__.startswith('_imported_module_')
    assert loaded.init_kwargs.mapping_kwargs.num_layers == 2

    x = torch.randn([2, 3, 8, 8], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = loaded(x)
        want = _expected_probe_outputs(x, probe, affine)
    assert [list(t.shape) for t in got] == [[2, 3, 8, 8], [2, 3, 4, 4], [2, 3, 16, 16]]
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)

    # Written again by our persistence, it keeps the embedded source and loads to the same outputs.
    again = pickle.loads(pickle.dumps(loaded))
    assert type(again)._orig_module_src == OFFICIAL_STYLE_SOURCE
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], got[0])
