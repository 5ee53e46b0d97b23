"""Network sizes and a memory/speed estimate for `train.py --dry-run`.

The networks (G, D and the loss plugin's extra ones), the augment pipe, the loss and its
optimizers are built as the training loop builds them, on the device the run would use, with its
precision settings. Then:

- a probe: one forward pass of G then D on two images with autograd on, timed, recording the
  bytes autograd saves for the backward pass (the activations);
- if the probe predicts it fits in `budget_s` seconds, a measurement: every phase of a first
  iteration, run twice (warm-up, timed) at one or two small batch sizes; peak memory
  (`torch.cuda.max_memory_allocated` on CUDA, the sampled process RSS on CPU) and time are
  extrapolated linearly to `batch_gpu`;
- otherwise (or if the measurement fails), a computed estimate: weights, gradients and Adam's two
  moments of the trained networks, G_ema, buffers, plus twice the probe's activation bytes scaled
  to `batch_gpu`; time from the probe (a rough figure, marked with `~`).

The summary shows the memory the machine has free (host RAM for CPU runs, device memory for CUDA)
beside the peak, and warns when the peak does not fit.

Nothing is written to disk, and the caller's random streams are left untouched.
"""

import contextlib
import copy
import dataclasses
import io
import threading
import time

import psutil
import torch

import dnnlib
from stylegan_plus.losses.phases import build_optimizers, run_phase
from stylegan_plus.sampling import memory_budget

from . import setup

_ACTIVATION_FACTOR = 2      # computed estimate: saved activations x this (gradients, double backward of R1/PL)
_PHASE_COST = 1.5           # computed estimate: seconds of one phase / seconds of a G+D forward pass (rough, CPU)
_MAX_MEASURED_BATCH = 4
_REPROBE_S = 1.0            # a probe faster than this is repeated for a timing without first-call costs


@dataclasses.dataclass
class Estimate:
    """What `estimate_training` found: sizes, peak bytes of one process, seconds per 1000 training images."""
    device: str
    precision: str
    batch_gpu: int
    params: dict                    # network name -> parameter count (G, D, extras)
    peak_bytes: float
    sec_per_kimg: float
    measured: bool                  # True: from timed training steps; False: computed
    detail: str                     # how the numbers were obtained
    free_bytes: float = None        # memory free on the device before the estimate (host RAM on CPU)
    total_bytes: float = None       # the device's total memory


def _count_params(module):
    return sum(p.numel() for p in module.parameters())


def _precision(G_kwargs, D_kwargs):
    res = [kw.get('num_fp16_res', 0) or 0 for kw in (G_kwargs.get('synthesis_kwargs', {}), D_kwargs)]
    return f'fp16 in the top {max(res)} resolutions' if max(res) > 0 else 'fp32'


class _Run:
    """The pieces of a training run needed for one iteration, built like `loop.Trainer` does."""

    def __init__(self, args, device):
        self.device = device
        self.dataset = dnnlib.util.construct_class_by_name(**args.training_set_kwargs)
        G_kwargs, D_kwargs = setup.cpu_precision(args.G_kwargs, args.D_kwargs, device, log=lambda *_: None)
        self.precision = _precision(G_kwargs, D_kwargs)
        self.G, self.D, _G_ema = setup.build_networks(G_kwargs, D_kwargs, self.dataset, device, with_ema=False)
        pipe = None
        if args.get('augment_kwargs') is not None and (args.get('augment_p', 0) > 0 or args.get('ada_target')):
            pipe = dnnlib.util.construct_class_by_name(**args.augment_kwargs).train().requires_grad_(False).to(device)
        self.loss, self.hooks, extras = setup.build_loss(args.loss_kwargs, self.G, self.D, pipe, device,
                                                         z_dist=args.get('z_dist'))
        self.modules = dict(G=self.G, D=self.D, **extras)
        self.phases = setup.plan_phases(
            self.hooks, G_opt_kwargs=args.G_opt_kwargs, D_opt_kwargs=args.D_opt_kwargs,
            G_reg_interval=args.get('G_reg_interval', 4), D_reg_interval=args.get('D_reg_interval', 16),
            g_steps=args.get('g_steps', 1), d_steps=args.get('d_steps', 1),
            g_batch_factor=args.get('g_batch_factor', 1))
        self.optimizers = None
        self.G_ema = None

    def prepare_training(self):
        """What only a measured step needs: the optimizers and G_ema (its memory counts)."""
        self.optimizers = build_optimizers(self.phases, self.modules)
        self.G_ema = copy.deepcopy(self.G).eval()

    def params(self):
        return {name: _count_params(module) for name, module in self.modules.items()}

    def static_bytes(self):
        """Weights, gradients and Adam moments of every trained network, plus G_ema's weights and buffers."""
        def size(tensors):
            return sum(t.numel() * t.element_size() for t in tensors)
        trained = size(p for m in self.modules.values() for p in m.parameters())
        buffers = size(b for m in self.modules.values() for b in m.buffers()) + size(self.G.buffers())
        return 4 * trained + size(self.G.parameters()) + buffers

    def inputs(self, n):
        """Random reals in [-1, 1] (or standard-normal points) and labels of the first image, for `n` images."""
        shape = [n, *self.dataset.image_shape]
        reals = torch.randn(shape, device=self.device)
        if len(shape) > 2:
            reals = reals.clamp(-1, 1)
        label = torch.as_tensor(self.dataset.get_label(0), dtype=torch.float32, device=self.device)
        return reals, label.reshape(1, -1).repeat(n, 1)

    def iteration_seconds(self, n):
        """Run every phase once at batch `n`; returns the phase-weighted seconds of one iteration."""
        reals, labels = self.inputs(n)
        total = 0.0
        for spec in self.phases:
            z = self.hooks.sample_z(n, self.device)
            start = _now(self.device)
            run_phase(self.loss, spec, self.modules, self.optimizers[spec.opt], [(reals, labels, z, labels)],
                      gain=spec.interval)
            total += (_now(self.device) - start) * spec.latent_batches / spec.interval
        return total

    def probe(self, n=2):
        """One forward pass of G then D on `n` images with autograd on, as in a training step.

        Returns (seconds, per-image bytes, fixed bytes) of what autograd saves for the backward
        pass: saved tensors whose first dimension is `n` count as per-image activations, the rest
        (e.g. scaled weights) as fixed. Train mode, as in training (it decides e.g. StyleGAN2's
        modulated-convolution path); the networks are throw-away, so their running statistics may move.
        """
        seen, saved = set(), [0, 0]
        params = {p.untyped_storage().data_ptr() for m in self.modules.values() for p in m.parameters()}

        def pack(tensor):
            key = tensor.untyped_storage().data_ptr()
            if key not in seen and key not in params:
                seen.add(key)
                per_image = tensor.dim() > 0 and tensor.shape[0] == n
                saved[0 if per_image else 1] += tensor.untyped_storage().nbytes()
            return tensor

        z = self.hooks.sample_z(n, self.device)
        _reals, c = self.inputs(n)
        self.G.requires_grad_(True)
        self.D.requires_grad_(True)
        try:
            start = _now(self.device)
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                self.D(self.G(z, c), c)
            seconds = _now(self.device) - start
        finally:
            self.G.requires_grad_(False)
            self.D.requires_grad_(False)
        return seconds, saved[0] / n, saved[1]


def _now(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter()


class _PeakMemory:
    """Peak memory of this process while inside the `with` block, in bytes above `baseline`.

    CUDA: the allocator's peak; CPU: the resident set size, sampled every millisecond by a thread.
    """

    def __init__(self, device, baseline):
        self.device = device
        self.baseline = baseline
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss - self.baseline)
            self._stop.wait(0.001)

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.baseline
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, psutil.Process().memory_info().rss - self.baseline)


def current_memory(device):
    """Bytes in use now: allocated CUDA memory, or the process RSS on CPU."""
    if device.type == 'cuda':
        return torch.cuda.memory_allocated(device)
    return psutil.Process().memory_info().rss


def _fit(points, x):
    """Value at `x` of the line through (batch, value) points (one point: proportional growth)."""
    (b0, v0), (b1, v1) = points[0], points[-1]
    if b1 == b0:
        return v1 * x / b1
    slope = max((v1 - v0) / (b1 - b0), 0.0)
    return max(v0 + slope * (x - b0), 0.0)


def _measured_sizes(batch_gpu):
    """Batch sizes of the measured steps: up to two, at most `_MAX_MEASURED_BATCH`."""
    largest = min(batch_gpu, _MAX_MEASURED_BATCH)
    return [largest // 2, largest] if largest >= 4 else [largest]


def _measure(run, sizes, baseline):
    """[(batch, peak bytes, phase-weighted iteration seconds)] for each batch size."""
    points = []
    for n in sizes:
        with _PeakMemory(run.device, baseline) as memory:
            if run.optimizers is None:
                run.prepare_training()
            run.iteration_seconds(n)    # warm-up: optimizer state, kernel selection
            seconds = run.iteration_seconds(n)
        points.append((n, memory.peak, seconds))
    return points


def estimate_training(args, budget_s=10.0):
    """Build the run's networks and estimate peak memory and speed (see the module docstring).

    args: the training-options EasyDict (as written to training_options.json).
    budget_s: longest a measured estimate may take; beyond it the computed one is used.
    Returns an `Estimate`.
    """
    device = setup.resolve_device(args.get('device'), 0)
    free_bytes, total_bytes = memory_budget.memory_status(device)
    cuda_devices = [device] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda_devices), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(args.random_seed)
        if device.type == 'cuda':
            setup.configure_backends(device, args.get('cudnn_benchmark', True), args.get('allow_tf32', False))
        baseline = current_memory(device)
        run = _Run(args, device)
        probe_s, image_bytes, fixed_bytes = run.probe()
        if probe_s < _REPROBE_S or device.type == 'cuda':
            # First-call costs (kernel builds and selection, allocations) dominate the first pass of a
            # small network, and of any network on a GPU; a second pass is cheap there and closer.
            probe_s = run.probe()[0]
        image_s = probe_s / 2       # seconds of a G+D forward pass per image
        sizes = _measured_sizes(args.batch_gpu)
        executions = sum(spec.latent_batches for spec in run.phases)
        planned = 2 * _PHASE_COST * executions * image_s * sum(sizes)    # every phase twice per size
        points, note = None, f'measuring a training step would take about {planned:.0f} s on {device.type}'
        if planned <= budget_s:
            try:
                points = _measure(run, sizes, baseline)
            except Exception as err:  # pylint: disable=broad-except
                note = f'the measured step failed ({type(err).__name__}: {err})'
    if points is not None:
        peak, step = _from_measurements(points, run.static_bytes(), args.batch_gpu)
        detail = f'measured: training steps at batch {" and ".join(str(p[0]) for p in points)}, ' \
                 f'extrapolated to --batch-gpu={args.batch_gpu}'
    else:
        peak = run.static_bytes() + _ACTIVATION_FACTOR * (fixed_bytes + image_bytes * args.batch_gpu)
        weight = sum(spec.latent_batches / spec.interval for spec in run.phases)
        step = _PHASE_COST * weight * image_s * args.batch_gpu
        detail = f'computed from parameter and activation counts; {note}'
    rounds = args.batch_size // (args.num_gpus * args.batch_gpu)
    return Estimate(device=str(device), precision=run.precision, batch_gpu=args.batch_gpu, params=run.params(),
                    peak_bytes=peak, sec_per_kimg=step * rounds * 1000 / args.batch_size,
                    measured=points is not None, detail=detail, free_bytes=free_bytes, total_bytes=total_bytes)


def _from_measurements(points, static_bytes, batch_gpu):
    """(peak bytes, seconds per accumulation round) at batch_gpu from the measured points."""
    peak = _fit([(n, memory) for n, memory, _seconds in points], batch_gpu)
    step = _fit([(n, seconds) for n, _memory, seconds in points], batch_gpu)
    # RSS can miss memory an earlier, larger user of the process left behind; never report less than the state.
    return max(peak, static_bytes), step


def _machine_memory(est):
    """'; this machine: X free of Y RAM' (or '... device memory' on CUDA), empty when unknown."""
    if est.free_bytes is None:
        return ''
    kind = 'RAM' if est.device.startswith('cpu') else 'device memory'
    free, total = (memory_budget.format_bytes(count) for count in (est.free_bytes, est.total_bytes))
    return f'; this machine: {free} free of {total} {kind}'


def format_estimate(est):
    """Summary lines for the dry run (a warning line last when the peak exceeds the free memory)."""
    sizes = ', '.join(f'{name} {count:,}' for name, count in est.params.items())
    approx = '' if est.measured else '~'
    peak = memory_budget.format_bytes(est.peak_bytes)
    lines = [
        f'Network parameters: {sizes} (total {sum(est.params.values()):,})',
        f'Peak memory:        {approx}{peak} per process on {est.device} '
        f'({est.precision}, --batch-gpu={est.batch_gpu}){_machine_memory(est)}',
        f'Training speed:     {approx}{est.sec_per_kimg:.3g} s/kimg (training steps only: data loading, ticks, '
        f'snapshots and metrics add to it)',
        f'Estimated by:       {est.detail}',
    ]
    if est.free_bytes is not None and est.peak_bytes > est.free_bytes:
        lines.append(f'Warning:            the estimated peak ({peak}) exceeds the '
                     f'{memory_budget.format_bytes(est.free_bytes)} free on {est.device}; '
                     f'lower --batch-gpu or the network size')
    return lines


def estimate_lines(args, budget_s=10.0):
    """`format_estimate(estimate_training(args))`, or one line saying why there is no estimate."""
    try:
        return format_estimate(estimate_training(args, budget_s=budget_s))
    except Exception as err:  # pylint: disable=broad-except
        return [f'Estimate:           not available ({type(err).__name__}: {err})']
