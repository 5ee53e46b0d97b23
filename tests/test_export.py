"""Safe (code-free) network export: round trips, weights_only loading, class names, errors."""

import json
import pickle

import pytest
import torch

from stylegan_plus.networks import export
from torch_utils import persistence
from tests.test_legacy import load_pickle, make_snapshot, render, write_pickle


def test_generator_round_trip_is_identical(tmp_path):
    G = make_snapshot(c_dim=2, num_fp16_res=1)['G_ema']
    written = export.save_safe(G, tmp_path / 'G.pt', use_safetensors=False)
    assert [p.rsplit('/', 1)[-1] for p in written] == ['G.json', 'G.pt']
    header = json.loads((tmp_path / 'G.json').read_text())
    assert header['class_name'] == 'training.networks.Generator'
    assert header['init_kwargs']['synthesis_kwargs'] == dict(channel_base=128, channel_max=16, num_fp16_res=1,
                                                             conv_clamp=256)
    # The weights file is plain tensors: the restricted loader accepts it.
    state = torch.load(tmp_path / 'G.pt', weights_only=True)
    assert list(state) == list(G.state_dict()) and all(isinstance(t, torch.Tensor) for t in state.values())

    loaded = export.load_safe(tmp_path / 'G', device='cpu')
    assert type(loaded) is type(G) and not loaded.training
    assert loaded.init_kwargs == G.init_kwargs
    assert torch.equal(render(loaded, 4, class_idx=1, psi=0.5), render(G, 4, class_idx=1, psi=0.5))


def test_snapshot_round_trip(tmp_path):
    data = make_snapshot(augment=True)
    written = export.save_safe(data, tmp_path / 'snap', use_safetensors=False)
    assert (tmp_path / 'snap' / 'snapshot.json').as_posix() in [str(p) for p in written]
    loaded = export.load_safe(tmp_path / 'snap')
    assert loaded['training_set_kwargs'] == data['training_set_kwargs']
    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        ref = data[key].state_dict()
        assert all(torch.equal(t, ref[name]) for name, t in loaded[key].state_dict().items())
    header = json.loads((tmp_path / 'snap' / 'augment_pipe.json').read_text())
    assert header['class_name'] == 'training.augment.AugmentPipe'
    assert torch.equal(render(loaded['G_ema'], 7), render(data['G_ema'], 7))
    img = render(data['G'], 2)
    with torch.no_grad():
        assert torch.equal(loaded['D'](img, None), data['D'](img, None))


def test_snapshot_without_augment_pipe_loads_none(tmp_path):
    data = make_snapshot()
    export.save_safe(data, tmp_path / 'snap', use_safetensors=False)
    loaded = export.load_safe(tmp_path / 'snap')
    assert loaded['augment_pipe'] is None and not (tmp_path / 'snap' / 'augment_pipe.json').exists()


def test_net_from_foreign_source_is_exported_by_name(tmp_path):
    """A class executed from a pickle's embedded source (an anonymous module) maps to training.networks."""
    def touch_source(meta):
        if meta.class_name == 'Generator':
            meta.module_src = meta.module_src + '\n# a different source text forces a fresh module\n'
        return meta

    path = write_pickle(make_snapshot(), tmp_path / 'snap.pkl')
    persistence.import_hook(touch_source)
    try:
        G = load_pickle(path)['G_ema']
    finally:
        persistence._import_hooks.remove(touch_source)
    assert type(G).__mro__[1].__module__.startswith('_imported_module_')
    assert export.export_class_name(G) == 'training.networks.Generator'
    export.save_safe(G, tmp_path / 'G', use_safetensors=False)
    assert torch.equal(render(export.load_safe(tmp_path / 'G'), 1), render(G, 1))


def test_export_errors(tmp_path):
    with pytest.raises(TypeError, match='persistent network module'):
        export.save_safe(torch.nn.Linear(2, 2), tmp_path / 'lin')
    with pytest.raises(ValueError, match='needs G, D and G_ema'):
        export.save_safe(dict(G=make_snapshot()['G']), tmp_path / 'partial')
    with pytest.raises(TypeError, match=r'init_kwargs\.bad'):
        export._to_json(dict(bad=object()), 'init_kwargs')
    G = make_snapshot()['G']
    export.save_safe(G, tmp_path / 'G', use_safetensors=False)
    header = json.loads((tmp_path / 'G.json').read_text())
    header['init_kwargs']['w_dim'] = 4  # the recorded architecture no longer fits the weights
    (tmp_path / 'G.json').write_text(json.dumps(header))
    with pytest.raises(ValueError, match='do not fit training.networks.Generator'):
        export.load_safe(tmp_path / 'G.json')


def test_weights_file_holds_no_code(tmp_path):
    """Unlike the pickle, the exported files carry neither source code nor references to our classes."""
    G = make_snapshot()['G']
    pickled = pickle.dumps(G)
    assert b'_reconstruct_persistent_obj' in pickled and b'class Generator' in pickled
    export.save_safe(G, tmp_path / 'G', use_safetensors=False)
    for name in ('G.pt', 'G.json'):
        raw = (tmp_path / name).read_bytes()
        assert b'persistence' not in raw and b'class Generator' not in raw and b'import ' not in raw
