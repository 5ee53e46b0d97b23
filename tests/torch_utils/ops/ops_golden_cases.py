"""Reference cases for the Python ops in torch_utils/ops, shared by the golden test and its generator.

Each case draws its inputs from a seeded generator, runs only the public op API (so the same code
can be run against an older checkout of the ops) and returns named output tensors: forward values,
first-order gradients and, where the op supports them, second-order gradients.

`tests/data/ops_golden.pt` holds these outputs as computed by the ops of commit f160765, the
last version before the ops were rewritten. Regenerate it only when an intended numerical change
is made, from the checkout whose numbers are to be kept:

    cd <checkout> && python -c "import runpy, sys; sys.argv = ['x', '<out.pt>']; \
        runpy.run_path('<this file>', run_name='__main__')"

(the checkout's folder must come first on sys.path, which `python -c` run there gives).
"""

import itertools
import sys

import torch

from torch_utils.ops import bias_act, conv2d_gradfix, conv2d_resample, fma, upfirdn2d

CASES = {} # name -> zero-argument function returning {output name: tensor}


def _case(name):
    def register(fn):
        if name in CASES:
            raise KeyError(f'duplicate golden case {name!r}')
        CASES[name] = fn
        return fn
    return register


def _randn(gen, shape, dtype=torch.float32, grad=False):
    t = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    return t.requires_grad_(grad)


def _seed(name):
    """A generator seeded from the case name, so cases do not shift when others are added."""
    return torch.Generator().manual_seed(sum((i + 1) * ord(ch) for i, ch in enumerate(name)))


def _grads(y, inputs, gen):
    """Gradients of <y, dy> for a random dy, w.r.t. each input (None where it gets none)."""
    dy = _randn(gen, y.shape, y.dtype)
    return torch.autograd.grad(y, inputs, dy, allow_unused=True)

#----------------------------------------------------------------------------
# upfirdn2d and its wrappers.

def _filters():
    return {
        'sym4': upfirdn2d.setup_filter([1, 3, 3, 1]),
        'asym2d': upfirdn2d.setup_filter([[0.3, -1.0, 2.0, 0.5], [1.5, 0.2, -0.7, 1.0], [0.1, 0.9, 0.4, -0.3]]),
        'sep8': upfirdn2d.setup_filter([1, 2, 3, 4, 4, 3, 2, 1]),
        'asym1d': upfirdn2d.setup_filter([0.2, -0.5, 1.0, 0.7, 0.1], separable=True, gain=2),
        'none': None,
    }

_PADDINGS = [0, 2, [2, -1], [1, -2, 3, 0], [-1, 2, 0, -1]]


def _register_upfirdn2d_cases():
    combos = list(itertools.product([1, 2, 4], [1, 2, 4], sorted(_filters())))
    for index, (up, down, fname) in enumerate(combos):
        padding = _PADDINGS[index % len(_PADDINGS)]
        flip = bool(index % 2)
        gain = [1, 2.5, 0.5][index % 3]

        @_case(f'upfirdn2d/up{up}-down{down}-{fname}')
        def run(up=up, down=down, fname=fname, padding=padding, flip=flip, gain=gain):
            gen = _seed(f'upfirdn2d{up}{down}{fname}')
            x = _randn(gen, [1, 1, 10, 9], grad=True)
            y = upfirdn2d.upfirdn2d(x, _filters()[fname], up=up, down=down, padding=padding, flip_filter=flip,
                                    gain=gain)
            (dx,) = _grads(y, [x], gen)
            return {'y': y, 'dx': dx}

_register_upfirdn2d_cases()


@_case('upfirdn2d/anisotropic')
def _upfirdn2d_anisotropic():
    gen = _seed('aniso')
    x = _randn(gen, [1, 1, 9, 10], grad=True)
    out = {}
    for i, (up, down, padding) in enumerate([([2, 1], [1, 3], [1, 2, -1, 0]), ([1, 4], [2, 1], [0, 3, 2, 1]),
                                             ([3, 2], [2, 3], [-1, 1, 2, -2])]):
        for fname in ['asym2d', 'sep8']:
            y = upfirdn2d.upfirdn2d(x, _filters()[fname], up=up, down=down, padding=padding, gain=1.5)
            out[f'y{i}-{fname}'], out[f'dx{i}-{fname}'] = y, _grads(y, [x], gen)[0]
    return out


@_case('upfirdn2d/second-order')
def _upfirdn2d_second_order():
    gen = _seed('upfirdn2nd')
    x = _randn(gen, [1, 2, 5, 6], dtype=torch.float64, grad=True)
    y = upfirdn2d.upfirdn2d(x, _filters()['asym2d'], up=2, down=2, padding=[2, 1, 1, 2], flip_filter=True)
    (dx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
    (ddx,) = torch.autograd.grad(dx.square().sum(), [x])
    return {'y': y, 'dx': dx, 'ddx': ddx}


@_case('upfirdn2d/wrappers')
def _upfirdn2d_wrappers():
    gen = _seed('wrappers')
    x = _randn(gen, [1, 2, 6, 5], grad=True)
    out = {}
    for fname in ['sym4', 'asym2d', 'sep8']:
        f = _filters()[fname]
        for kind, fn, kwargs in [('filter', upfirdn2d.filter2d, dict(padding=[1, 0, 2, 1], gain=3)),
                                 ('up2', upfirdn2d.upsample2d, dict(up=2, flip_filter=True)),
                                 ('up21', upfirdn2d.upsample2d, dict(up=[2, 1], padding=1)),
                                 ('down2', upfirdn2d.downsample2d, dict(down=2, padding=1)),
                                 ('down12', upfirdn2d.downsample2d, dict(down=[1, 2], gain=2))]:
            y = fn(x, f, **kwargs)
            out[f'{kind}-{fname}'], out[f'{kind}-{fname}-dx'] = y, _grads(y, [x], gen)[0]
    return out


@_case('upfirdn2d/half')
def _upfirdn2d_half():
    gen = _seed('upfirdnhalf')
    x = _randn(gen, [1, 3, 6, 6], dtype=torch.float16)
    f = _filters()['sym4']
    return {'up': upfirdn2d.upsample2d(x, f), 'down': upfirdn2d.downsample2d(x, f),
            'cl': upfirdn2d.upfirdn2d(x.to(memory_format=torch.channels_last), f, up=2, down=2, padding=1)}


@_case('upfirdn2d/setup_filter')
def _setup_filter():
    return {
        'none': upfirdn2d.setup_filter(None), 'scalar': upfirdn2d.setup_filter(3, normalize=False),
        'sym4': upfirdn2d.setup_filter([1, 3, 3, 1], gain=4), 'flip': upfirdn2d.setup_filter([1, 2, 5], flip_filter=True),
        'sep': upfirdn2d.setup_filter([1, 2, 5], separable=True, gain=9), 'long': upfirdn2d.setup_filter(list(range(1, 10))),
        'long2d': upfirdn2d.setup_filter(list(range(1, 10)), separable=False, normalize=False),
        '2d': upfirdn2d.setup_filter([[1, 2], [3, 4]], flip_filter=True, gain=2),
    }

#----------------------------------------------------------------------------
# conv2d_resample.

def _register_conv2d_resample_cases():
    paddings = [0, 1, [1, 2], [1, 0, 2, 1], -1, [2, 1, 0, 3]]
    combos = [(k, up, down) for k in [1, 3] for up in [1, 2, 4] for down in [1, 2, 4] if up == 1 or (up == 2 and down <= 2) or (up == 4 and down == 1)]
    for index, (k, up, down) in enumerate(combos):
        for variant in range(2):
            groups = [1, 2][variant]
            padding = paddings[(index + variant) % len(paddings)]
            fname = ['sym4', 'asym2d', 'none'][(index + variant) % 3]

            @_case(f'conv2d_resample/k{k}-up{up}-down{down}-v{variant}')
            def run(k=k, up=up, down=down, variant=variant, groups=groups, padding=padding, fname=fname):
                gen = _seed(f'c2r{k}{up}{down}{variant}')
                x = _randn(gen, [1, 2, 8, 7] if up < 4 else [1, 2, 5, 5], grad=True)
                w = _randn(gen, [2, 2 // groups, k, k], grad=True)
                y = conv2d_resample.conv2d_resample(x, w, f=_filters()[fname], up=up, down=down, padding=padding,
                                                    groups=groups, flip_weight=bool(variant), flip_filter=not variant)
                dx, dw = _grads(y, [x, w], gen)
                return {'y': y, 'dx': dx, 'dw': dw}

_register_conv2d_resample_cases()


@_case('conv2d_resample/network-like')
def _conv2d_resample_network_like():
    # The calls the official networks make: 3x3 up=2 (flip_weight False), 3x3 down=2, 1x1 skip.
    gen = _seed('netlike')
    f = _filters()['sym4']
    x = _randn(gen, [1, 4, 8, 8], grad=True)
    w3 = _randn(gen, [4, 4, 3, 3], grad=True)
    w1 = _randn(gen, [2, 4, 1, 1], grad=True)
    out = {
        'up': conv2d_resample.conv2d_resample(x, w3, f=f, up=2, padding=1, flip_weight=False),
        'down': conv2d_resample.conv2d_resample(x, w3, f=f, down=2, padding=1),
        'skip': conv2d_resample.conv2d_resample(x, w1, f=f, down=2),
        'same': conv2d_resample.conv2d_resample(x, w3, f=f, padding=1),
        'torgb': conv2d_resample.conv2d_resample(x, w1),
    }
    total = sum(y.square().mean() for y in out.values())
    out['dx'], out['dw3'], out['dw1'] = torch.autograd.grad(total, [x, w3, w1])
    return out


@_case('conv2d_resample/half-and-channels-last')
def _conv2d_resample_half():
    gen = _seed('c2rhalf')
    f = _filters()['sym4']
    x = _randn(gen, [1, 8, 6, 6])
    w3 = _randn(gen, [4, 8, 3, 3])
    w1 = _randn(gen, [3, 8, 1, 1])
    cl = x.to(memory_format=torch.channels_last)
    return {
        'up16': conv2d_resample.conv2d_resample(x.half(), w3.half(), f=f, up=2, padding=1),
        'down16': conv2d_resample.conv2d_resample(x.half(), w3.half(), f=f, down=2, padding=1),
        'cl-1x1': conv2d_resample.conv2d_resample(cl, w1),
        'cl-1x1-wide': conv2d_resample.conv2d_resample(cl, _randn(gen, [8, 8, 1, 1])),
        'cl-up': conv2d_resample.conv2d_resample(cl, w3, f=f, up=2, padding=1),
    }

#----------------------------------------------------------------------------
# bias_act.

def _register_bias_act_cases():
    settings = [dict(), dict(alpha=0.3, gain=0.5, clamp=0.8), dict(gain=2.0, clamp=0.25, dim=2)]
    for act in bias_act.activation_funcs:
        for index, kwargs in enumerate(settings):
            @_case(f'bias_act/{act}-{index}')
            def run(act=act, kwargs=kwargs, index=index):
                gen = _seed(f'ba{act}{index}')
                dim = kwargs.get('dim', 1)
                x = _randn(gen, [2, 3, 2, 2], dtype=torch.float64, grad=True) * 1.5
                b = _randn(gen, [x.shape[dim]], dtype=torch.float64, grad=True)
                y = bias_act.bias_act(x, b, act=act, **kwargs)
                dy = _randn(gen, y.shape, y.dtype)
                dx, db = torch.autograd.grad(y, [x, b], dy, create_graph=True)
                out = {'y': y, 'dx': dx, 'db': db}
                second = dx.square().sum() + db.square().sum()
                if second.requires_grad: # Not for linear without clamp: dx = dy there.
                    out['ddx'], out['ddb'] = torch.autograd.grad(second, [x, b], allow_unused=True)
                out['y32'] = bias_act.bias_act(x.float(), b.float(), act=act, **kwargs)
                out['y16'] = bias_act.bias_act(x.half(), b.half(), act=act, **kwargs)
                out['nobias'] = bias_act.bias_act(x.float(), None, act=act, **kwargs)
                return out

_register_bias_act_cases()

#----------------------------------------------------------------------------
# fma and conv2d_gradfix.

@_case('fma')
def _fma():
    gen = _seed('fma')
    out = {}
    for i, shapes in enumerate([([2, 3], [2, 3], [2, 3]), ([2, 1, 4], [3, 1], [4]), ([5], [2, 5], [1]),
                                ([], [3, 2], [3, 1])]):
        a, b, c = (_randn(gen, s, grad=True) for s in shapes)
        y = fma.fma(a, b, c)
        out[f'y{i}'] = y
        for name, g in zip('abc', _grads(y, [a, b, c], gen)):
            out[f'd{name}{i}'] = g
    return out


@_case('conv2d_gradfix')
def _conv2d_gradfix():
    gen = _seed('gradfix')
    out = {}
    previous = conv2d_gradfix.enabled
    try:
        for enabled in [False, True]:
            conv2d_gradfix.enabled = enabled
            x = _randn(gen, [1, 4, 7, 6], grad=True)
            w = _randn(gen, [4, 2, 3, 3], grad=True)
            b = _randn(gen, [4], grad=True)
            def run():
                y = conv2d_gradfix.conv2d(x, w, b, stride=[2, 1], padding=1, groups=2)
                return y, conv2d_gradfix.conv_transpose2d(y, w, b, stride=2, padding=1, output_padding=1, groups=2)
            out[f'y{enabled}'], t = run()
            out[f't{enabled}'] = t
            out[f'dx{enabled}'], out[f'dw{enabled}'], out[f'db{enabled}'] = _grads(t, [x, w, b], gen)
            with conv2d_gradfix.no_weight_gradients():
                (gx,) = torch.autograd.grad(run()[1].square().sum(), [x], create_graph=True)
            out[f'r1w{enabled}'], out[f'r1b{enabled}'] = torch.autograd.grad(gx.square().sum(), [w, b])
    finally:
        conv2d_gradfix.enabled = previous
    return out

#----------------------------------------------------------------------------

def compute_all():
    """{'<case>/<output>': tensor} for every case, detached."""
    results = {}
    for name, fn in CASES.items():
        for key, value in fn().items():
            results[f'{name}/{key}'] = None if value is None else value.detach().clone().contiguous()
    return results


def pack(results):
    """One flat buffer per dtype plus an index: a few hundred small tensors saved one by one would
    spend most of the file on per-tensor headers. float64 is stored as float32 (the test's
    tolerances are float32-sized anyway)."""
    index, buffers = {}, {}
    for key, value in results.items():
        if value is None:
            index[key] = None
            continue
        value = value.float() if value.dtype == torch.float64 else value
        dtype = str(value.dtype).replace('torch.', '')
        chunks = buffers.setdefault(dtype, [])
        index[key] = (dtype, list(value.shape), sum(c.numel() for c in chunks))
        chunks.append(value.reshape(-1))
    return {'index': index, 'buffers': {dtype: torch.cat(chunks) for dtype, chunks in buffers.items()}}


def unpack(packed):
    """Inverse of pack(): {'<case>/<output>': tensor or None}."""
    results = {}
    for key, entry in packed['index'].items():
        if entry is None:
            results[key] = None
            continue
        dtype, shape, offset = entry
        count = 1
        for size in shape:
            count *= size
        results[key] = packed['buffers'][dtype][offset : offset + count].reshape(shape)
    return results


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(f'usage: {sys.argv[0]} OUT.pt   (writes the golden outputs of the ops importable from here)')
    import torch_utils
    print(f'computing with {torch_utils.__file__}')
    torch.save(pack(compute_all()), sys.argv[1])
