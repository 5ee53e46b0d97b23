"""The training data stream: a resumable sampler, the DataLoader, and reals/latents per iteration.

`ResumableSampler` yields exactly the official `InfiniteSampler` sequence (so the real-image order
of a run is the official one) and can report its state at any batch boundary that the loop has
consumed, although the DataLoader has already pulled indices further ahead for its workers. That
state goes into the training-state file, so a resumed run sees the same images in the same order.

Latents and generator labels are drawn per iteration from a seed derived from (random_seed,
batch_idx), on every process alike, and each process keeps its slice of the global batch. A run
therefore does not depend on how many processes share the batch, and resuming needs no state for
them.
"""

import collections

import numpy as np
import torch

from torch_utils import misc

from .rng import numpy_state_from_plain, numpy_state_to_plain


class ResumableSampler(misc.InfiniteSampler):
    """`InfiniteSampler` that can be checkpointed at global positions `start + k * stride`.

    stride: indices consumed (over all processes) per training iteration, i.e. the total batch.
    state: what `state_at()` returned earlier, to continue from there (None = fresh start).
    history: how many batch boundaries stay recoverable behind the iterator's read position; it
    must exceed the DataLoader's prefetch depth (workers * prefetch_factor batches).
    """

    def __init__(self, dataset, rank=0, num_replicas=1, seed=0, window_size=0.5, stride=1, state=None,
                 history=64):
        super().__init__(dataset, rank=rank, num_replicas=num_replicas, shuffle=True, seed=seed,
                         window_size=window_size)
        self.stride = int(stride)
        self.history = int(history)
        self._start = state
        self._order = None
        self._marks = collections.deque()     # (position, plain rnd state) at batch boundaries
        self._journal = collections.deque()   # (position, slot, other) swaps made since the oldest mark

    @property
    def start_position(self):
        return 0 if self._start is None else int(self._start['position'])

    def _initial(self):
        size = len(self.dataset)
        window = int(np.rint(size * self.window_size))
        rnd = np.random.RandomState(self.seed)
        if self._start is None:
            order = np.arange(size)
            rnd.shuffle(order)
            return order, rnd, window, 0
        order = self._start['order']
        order = order.numpy() if isinstance(order, torch.Tensor) else np.asarray(order)
        rnd.set_state(numpy_state_from_plain(self._start['rnd']))
        return order.astype(np.int64).copy(), rnd, window, int(self._start['position'])

    def __iter__(self):
        order, rnd, window, position = self._initial()
        size = order.size
        base = position
        self._order = order
        self._marks.clear()
        self._journal.clear()
        self._mark(position, rnd)
        while True:
            slot = position % size
            value = int(order[slot])
            mine = position % self.num_replicas == self.rank
            # The swap (and the mark of a batch boundary) happen before the value is handed out, so
            # the state after the last index of a batch exists as soon as that index is read, also
            # without a DataLoader prefetching further (num_workers=0).
            if window >= 2:
                other = (slot - rnd.randint(window)) % size
                order[slot], order[other] = order[other], order[slot]
                self._journal.append((position, slot, other))
            position += 1
            if (position - base) % self.stride == 0:
                self._mark(position, rnd)
            if mine:
                yield value

    def _mark(self, position, rnd):
        self._marks.append((position, numpy_state_to_plain(rnd.get_state())))
        while len(self._marks) > self.history:
            self._marks.popleft()
            oldest = self._marks[0][0]
            while self._journal and self._journal[0][0] < oldest:
                self._journal.popleft()

    def state_at(self, position):
        """The sampler state just before global `position` (a consumed batch boundary).

        Returns a dict of plain data (`position`, `size`, `order` int64 tensor, `rnd`), or raises
        RuntimeError if that position is no longer (or not yet) recoverable.
        """
        if self._order is None:
            if position == self.start_position and self._start is not None:
                return dict(self._start)
            raise RuntimeError('the sampler has not been iterated yet')
        marks = {pos: rnd_state for pos, rnd_state in self._marks}
        if position not in marks:
            raise RuntimeError(f'sampler position {position} is outside the recoverable window '
                               f'[{self._marks[0][0]}, {self._marks[-1][0]}]')
        order = self._order.copy()
        for pos, slot, other in reversed(self._journal):
            if pos < position:
                break
            order[slot], order[other] = order[other], order[slot]
        return dict(position=int(position), size=int(order.size), order=torch.from_numpy(order),
                    rnd=marks[position])


def is_point_data(dataset):
    """True for 2-D point datasets (items are [2] vectors), False for images ([C, H, W])."""
    return len(dataset.image_shape) == 1


def build_loader(dataset, *, rank, num_gpus, batch_size, random_seed, data_loader_kwargs, device,
                 sampler_state=None):
    """(sampler, iterator over (reals, labels) batches of `batch_size // num_gpus` items)."""
    kwargs = dict(data_loader_kwargs)
    if device.type != 'cuda':
        kwargs['pin_memory'] = False    # pinning needs an accelerator; it only warns on CPU
    if kwargs.get('num_workers', 0) == 0:
        kwargs.pop('prefetch_factor', None)
    depth = kwargs.get('num_workers', 0) * kwargs.get('prefetch_factor', 2) + 8
    if sampler_state is not None and int(sampler_state.get('size', -1)) != len(dataset):
        print(f'Sampler state is for {sampler_state.get("size")} items, the data set has {len(dataset)}: '
              f'starting a fresh image order.')
        sampler_state = None
    sampler = ResumableSampler(dataset, rank=rank, num_replicas=num_gpus, seed=random_seed, stride=batch_size,
                               state=sampler_state, history=depth)
    loader = torch.utils.data.DataLoader(dataset=dataset, sampler=sampler, batch_size=batch_size // num_gpus,
                                         **kwargs)
    return sampler, iter(loader)


def prepare_reals(images, labels, device, batch_gpu, points):
    """One loader batch -> per-round lists of reals and labels on `device`.

    images: uint8 [n, C, H, W] (scaled to float32 in [-1, 1]) or float32 [n, 2] points (kept).
    Returns (list of [batch_gpu, ...] float32, list of [batch_gpu, c_dim] float32).
    """
    reals = images.to(device).to(torch.float32)
    if not points:
        reals = reals / 127.5 - 1
    return list(reals.split(batch_gpu)), list(labels.to(device).to(torch.float32).split(batch_gpu))


def iteration_seed(random_seed, batch_idx):
    """Seed of the latents/labels drawn at iteration `batch_idx` (same on every process)."""
    return int(np.random.SeedSequence([int(random_seed), int(batch_idx), 0x5EED]).generate_state(1)[0])


def draw_fakes_inputs(hooks, dataset, *, seed, count, device, rank, num_gpus):
    """Latents and labels of one iteration: `count` global draws, this process's slice.

    hooks: the loss's plugin hooks (`sample_z(n, device)` is the prior). The global draw is made
    with the RNGs seeded from `seed`; the caller's RNG streams are left untouched. `count` is a
    multiple of num_gpus; the slice of process r is block r of every per-execution chunk, which the
    caller splits further.
    Returns (z [count // num_gpus, z_dim], c [count // num_gpus, c_dim]) on `device`.
    """
    devices = [device] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if device.type == 'cuda':
            torch.cuda.default_generators[device.index or 0].manual_seed(seed)
        z = hooks.sample_z(count, device)
    rnd = np.random.RandomState(seed % (2**32))
    if dataset.label_dim == 0:
        c = np.zeros([count, 0], dtype=np.float32)
    else:
        c = np.stack([dataset.get_label(rnd.randint(len(dataset))) for _ in range(count)])
    c = torch.from_numpy(c).to(device)
    return z, c


def rank_slices(tensor, executions, num_gpus, rank):
    """Split a global draw into `executions` chunks and keep block `rank` of each chunk."""
    chunks = tensor.split(tensor.shape[0] // executions)
    return [chunk.split(chunk.shape[0] // num_gpus)[rank] for chunk in chunks]
