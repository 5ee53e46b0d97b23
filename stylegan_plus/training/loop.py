"""The training loop: the official schedule, driven through the loss plugin's hooks.

One iteration: fetch a real batch; draw latents and labels for every phase execution; run the
phases (lazy regularisation by interval, `repeat` executions per iteration); update G_ema; advance
the image counter; adapt the ADA probability every `ada_interval` iterations. Every
`kimg_per_tick` kimg (and after the first iteration, and at the end) a tick does the maintenance:
status line, image and network snapshots with their training state, metrics, stats.jsonl and
TensorBoard.

Gradients of the `batch_size // (num_gpus * batch_gpu)` accumulation rounds and of all processes
are averaged before each optimizer step (one all-reduce), so a step equals one on the whole batch;
modules are never wrapped in DistributedDataParallel. Set-up is seeded identically on every
process, and per-process seeds (`random_seed * num_gpus + rank`) take over when training starts.
The loss gets the run folder as `loss.run_dir`, and hands ADA the signs of its real-image logits
through its hook `ada_signs()` (docs/plugins.md).
"""

import os
import time

import numpy as np
import torch

import dnnlib
from stylegan_plus.losses.phases import Phase, run_phase
from stylegan_plus.sampling import prior as prior_lib
from torch_utils import misc, training_stats

from . import data as data_lib
from . import distributed, grids, progress, rng, setup
from . import lr_schedule as lr_lib
from . import resume as resume_lib
from . import snapshots


def _sum_over_processes(counts, device):
    """(count, sum) pairs of every process added up: an all-reduce of one float64 pair (exact for
    sign sums); the pair itself without a process group. Returns (int count, float sum)."""
    if not distributed.is_distributed():
        return counts
    pair = torch.tensor(counts, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(pair)
    return int(pair[0]), float(pair[1])


class Trainer:
    """State and steps of one training run; `run()` trains until `total_kimg`."""

    def __init__(self, cfg):
        setup.check_batch_split(cfg.batch_size, cfg.num_gpus, cfg.batch_gpu)
        self.cfg = cfg
        self.rank = cfg.rank
        self.device = setup.resolve_device(cfg.device, cfg.rank)
        self.start_time = time.time()
        self.state = resume_lib.load_state(cfg.resume_state) if cfg.resume_state else None
        self.cur_nimg = 0
        self.cur_tick = 0
        self.batch_idx = 0
        self.tick_start_nimg = 0
        self.ada_pending = [0, 0.0]     # ADA sign statistics since the last adjustment, before a snapshot
        self.last_snapshot_nimg = None  # names a later snapshot of the same kimg apart (snapshots.snapshot_name)
        self.ada_silence_noted = False  # the notice that an ADA interval brought no real-image signs is given once
        if self.state is not None:
            for key in ('cur_nimg', 'cur_tick', 'batch_idx', 'tick_start_nimg'):
                setattr(self, key, int(self.state[key]))
            self.ada_pending = list(self.state['ada_pending'])

    def log(self, *args):
        if self.rank == 0:
            print(*args)

    # --- Set-up, in the official order ----------------------------------------------------------

    def setup(self):
        cfg = self.cfg
        # Set-up draws are the same on every process: seeded as a single-process run (whose seed,
        # random_seed * num_gpus + rank, is random_seed).
        np.random.seed(cfg.random_seed)
        torch.manual_seed(cfg.random_seed)
        # Statistics of an earlier run in this process (a notebook) must not leak into this one.
        training_stats.reset()
        setup.configure_backends(self.device, cfg.cudnn_benchmark, cfg.allow_tf32)
        self._setup_data()
        self._setup_networks()
        self._setup_loss()
        if self.rank == 0:
            self.log('Exporting sample images...')
            self.pictures = grids.SnapshotPictures(self.dataset, self.hooks, self.device, cfg.batch_gpu, self.points)
            self.pictures.save_reals(os.path.join(cfg.run_dir, 'reals.png'))
            self.pictures.save_fakes(self.G_ema, os.path.join(cfg.run_dir, 'fakes_init.png'))
        self.log('Initializing logs...')
        self.stats_collector = training_stats.Collector(regex='.*')
        self.logs = progress.RunLogs(cfg.run_dir, enabled=(self.rank == 0))
        self.timer = progress.PhaseTimer([spec.name for spec in self.phases], self.device)
        self._start_streams()

    def _setup_data(self):
        cfg = self.cfg
        self.log('Loading training set...')
        self.dataset = dnnlib.util.construct_class_by_name(**cfg.training_set_kwargs)
        self.points = data_lib.is_point_data(self.dataset)
        sampler_state = self.state['sampler'] if self.state is not None else None
        self.sampler, self.data_iter = data_lib.build_loader(
            self.dataset, rank=self.rank, num_gpus=cfg.num_gpus, batch_size=cfg.batch_size,
            random_seed=cfg.random_seed, data_loader_kwargs=cfg.data_loader_kwargs, device=self.device,
            sampler_state=sampler_state)
        self.consumed = self.sampler.start_position
        self.log(f'Number of items: {len(self.dataset)}; item shape: {self.dataset.image_shape}; '
                 f'label shape: {self.dataset.label_shape}')

    def _setup_networks(self):
        cfg = self.cfg
        self.log('Constructing networks...')
        G_kwargs, D_kwargs = setup.cpu_precision(cfg.G_kwargs, cfg.D_kwargs, self.device, log=self.log)
        self.G, self.D, self.G_ema = setup.build_networks(G_kwargs, D_kwargs, self.dataset, self.device)
        self.resume_data = None
        if cfg.resume_pkl is not None:
            kind = 'full training state' if self.state is not None else 'weights only, as the official trainer'
            self.log(f'Resuming from "{cfg.resume_pkl}" ({kind})')
            self.resume_data = resume_lib.load_snapshot(cfg.resume_pkl)
            self._check_resumed_prior()
            resume_lib.copy_networks(self.resume_data, dict(G=self.G, D=self.D, G_ema=self.G_ema), cfg.resume_pkl)
        if self.rank == 0:
            setup.print_summaries(self.G, self.D, cfg.batch_gpu, self.device)
        self.log('Setting up augmentation...')
        self.augment_pipe, self.ada_adapts = setup.build_augment_pipe(cfg.augment_kwargs, cfg.augment_p,
                                                                       cfg.ada_target, self.device)
        if self.augment_pipe is not None and self.state is not None and self.state.get('augment_p') is not None:
            self.augment_pipe.p.copy_(torch.as_tensor(self.state['augment_p']))
        for module in (self.G, self.D, self.G_ema, self.augment_pipe):
            distributed.broadcast_module(module)

    def _check_resumed_prior(self):
        """Say once when the snapshot's G was trained on another latent prior than this run draws from."""
        try:
            trained = prior_lib.snapshot_z_dist(self.resume_data)
        except ValueError as err:
            self.log(f'Note: {err}; this run draws from {prior_lib.canonical_z_dist(self.cfg.z_dist)}.')
            return
        if trained != prior_lib.canonical_z_dist(self.cfg.z_dist):
            self.log(f'Note: "{self.cfg.resume_pkl}" was trained on the {trained} prior; this run draws z from '
                     f'{prior_lib.canonical_z_dist(self.cfg.z_dist)} (--z-dist).')

    def _setup_loss(self):
        cfg = self.cfg
        self.log('Setting up training phases...')
        self.loss, self.hooks, self.extras = setup.build_loss(cfg.loss_kwargs, self.G, self.D, self.augment_pipe,
                                                              self.device, z_dist=cfg.z_dist)
        setup.give_run_dir(self.loss, cfg.run_dir)
        if self.ada_adapts and not self.hooks.real_decisions:
            # Said once, here: the loss declared that it has no real/fake logits on real images.
            self.log(f'ADA cannot adapt: --loss={setup.describe_loss(self.loss)} reports no real-image decisions; '
                     f'p stays at {float(self.augment_pipe.p):g}.')
            self.ada_adapts = False
        if self.resume_data is not None:
            resume_lib.copy_networks(self.resume_data, self.extras, cfg.resume_pkl)
        for module in self.extras.values():
            distributed.broadcast_module(module)
        self.modules = dict(G=self.G, D=self.D, **self.extras)
        self.phases, self.optimizers = setup.build_phases(
            self.hooks, self.modules, G_opt_kwargs=cfg.G_opt_kwargs, D_opt_kwargs=cfg.D_opt_kwargs,
            G_reg_interval=cfg.G_reg_interval, D_reg_interval=cfg.D_reg_interval, g_steps=cfg.g_steps,
            d_steps=cfg.d_steps, g_batch_factor=cfg.g_batch_factor, num_gpus=cfg.num_gpus,
            rounds=cfg.batch_size // (cfg.num_gpus * cfg.batch_gpu))
        # The configured rates, taken before a resumed optimizer state overwrites them: the schedule
        # multiplies these, so the rate at any iteration depends on the iteration count alone.
        self.lr_schedule = lr_lib.parse_schedule(cfg.lr_schedule)
        self.configured_lrs = lr_lib.configured_rates(self.optimizers)
        if self.state is not None:
            resume_lib.load_optimizer_states(self.optimizers, self.state['optimizers'])
            resume_lib.load_loss_state(self.hooks, self.state['loss'], self.rank)

    def _start_streams(self):
        """Hand the RNGs over to training: the saved states, or per-process seeds."""
        cfg = self.cfg
        if self.state is not None:
            rng.restore(resume_lib.per_rank(self.state['rng'], self.rank, 'RNG state'), self.device)
        elif cfg.num_gpus > 1:
            np.random.seed(cfg.random_seed * cfg.num_gpus + self.rank)
            torch.manual_seed(cfg.random_seed * cfg.num_gpus + self.rank)

    # --- Training --------------------------------------------------------------------------------

    def run(self):
        cfg = self.cfg
        if self.cur_nimg >= cfg.total_kimg * 1000:
            self.log(f'The snapshot was taken at {self.cur_nimg / 1000:g} kimg, which is already at or past the '
                     f'training length of {cfg.total_kimg:g} kimg: nothing to train. Raise --kimg to continue.')
            return
        self.log(f'Training for {cfg.total_kimg} kimg...')
        self.log()
        self.tick_start_time = time.time()
        self.maintenance_time = self.tick_start_time - self.start_time
        if cfg.progress_fn is not None:
            cfg.progress_fn(self.cur_nimg // 1000, cfg.total_kimg)
        # Live terms need a collective read of the statistics, so only single-process runs show them.
        self.live = progress.LiveProgress(cfg.total_kimg, self.cur_nimg, enabled=(self.rank == 0),
                                          terms=(cfg.num_gpus == 1))
        while True:
            self._iteration()
            self.live.update(self.cur_nimg)
            done = self.cur_nimg >= cfg.total_kimg * 1000
            if not done and self.cur_tick != 0 and \
                    self.cur_nimg < self.tick_start_nimg + cfg.kimg_per_tick * 1000:
                continue
            if self._maintenance(done):
                break
        self.live.close()
        self.logs.close()
        self.log()
        self.log('Exiting...')

    def _iteration(self):
        cfg = self.cfg
        with torch.autograd.profiler.record_function('data_fetch'):
            reals, real_cs = self._next_reals()
            batches = sum(spec.latent_batches for spec in self.phases)
            z, c = data_lib.draw_fakes_inputs(self.hooks, self.dataset,
                                              seed=data_lib.iteration_seed(cfg.random_seed, self.batch_idx),
                                              count=batches * cfg.batch_size, device=self.device,
                                              rank=self.rank, num_gpus=cfg.num_gpus)
            z_slices = data_lib.rank_slices(z, batches, cfg.num_gpus, self.rank)
            c_slices = data_lib.rank_slices(c, batches, cfg.num_gpus, self.rank)

        if self.lr_schedule is not None:
            lr_lib.apply_factor(self.optimizers, self.configured_lrs, self.lr_factor())
        slot = 0
        for spec in self.phases:
            for repeat in range(spec.repeat):
                factor = spec.batch_factor
                if factor == 1:
                    gen_z, gen_c = z_slices[slot], c_slices[slot]
                else:
                    gen_z, gen_c = torch.cat(z_slices[slot:slot + factor]), torch.cat(c_slices[slot:slot + factor])
                slot += factor
                if self.batch_idx % spec.interval != 0:
                    continue
                if repeat > 0 and spec.name in Phase.mains('D'):
                    # `--d-steps` > 1: each extra D step gets a real batch of its own, as n-critic loops
                    # (WGAN, Dist-GAN's 2-D code) draw one per critic step. kimg still counts iterations.
                    with torch.autograd.profiler.record_function('data_fetch'):
                        reals, real_cs = self._next_reals()
                # batch_factor > 1 (`--g-batch-factor`): more rounds of fresh latents, the reals reused;
                # the gain divided by it, so the step takes the mean over all of them.
                rounds = list(zip(reals * factor, real_cs * factor, gen_z.split(cfg.batch_gpu),
                                  gen_c.split(cfg.batch_gpu)))
                self.timer.start(spec.name)
                with misc.precision_context(cfg.precision, self.device):
                    # Through the hooks: the adapter of an official-style loss listens to its reports there.
                    run_phase(self.hooks, spec, self.modules, self.optimizers[spec.opt], rounds,
                              gain=spec.interval / factor)
                self.timer.stop(spec.name)

        self._update_ema()
        self.cur_nimg += cfg.batch_size
        self.batch_idx += 1
        if self.ada_adapts and self.batch_idx % cfg.ada_interval == 0:
            self._adapt_augment()

    def _next_reals(self):
        """The loader's next batch as per-round reals and labels on the device (data.prepare_reals).
        Counts it in `consumed` (global indices), the sampler position a snapshot records."""
        images, labels = next(self.data_iter)
        self.consumed += self.cfg.batch_size
        return data_lib.prepare_reals(images, labels, self.device, self.cfg.batch_gpu, self.points)

    def lr_factor(self):
        """The learning-rate multiplier of the current iteration (1.0 without `--lr-schedule`)."""
        return 1.0 if self.lr_schedule is None else self.lr_schedule.factor_at(self.batch_idx)

    @torch.no_grad()
    def _update_ema(self):
        cfg = self.cfg
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def _collect_ada(self):
        """Move the real-logit signs the loss handed over since the last call (all processes) into `ada_pending`."""
        num, total = _sum_over_processes(self.hooks.ada_signs(), self.device)
        if num > 0:
            self.ada_pending[0] += num
            self.ada_pending[1] += num * (total / num)     # as a mean times its count, like the statistic it replaces

    def _adapt_augment(self):
        cfg = self.cfg
        self._collect_ada()
        num, total = self.ada_pending
        self.ada_pending = [0, 0.0]
        if num == 0:
            self._note_no_signs()
            return
        adjust = np.sign(total / num - cfg.ada_target) * (cfg.batch_size * cfg.ada_interval) / (cfg.ada_kimg * 1000)
        pipe = self.augment_pipe
        pipe.p.copy_((pipe.p + adjust).max(misc.constant(0, device=self.device)))

    def _note_no_signs(self):
        """Say once that an ADA interval brought no real-image signs. Whether an official-style loss
        reports them shows only while it trains; p stays where it is until signs arrive."""
        if self.ada_silence_noted:
            return
        self.ada_silence_noted = True
        self.log(f'ADA cannot adapt: --loss={setup.describe_loss(self.loss)} reported no real-image signs '
                 f'(Loss/signs/real) in {self.cfg.ada_interval} iterations; p stays at '
                 f'{float(self.augment_pipe.p):g} until it does.')

    # --- Maintenance ----------------------------------------------------------------------------

    def _maintenance(self, done):
        """One tick: status, snapshots, metrics, logs. Returns True when training should stop."""
        cfg = self.cfg
        tick_end_time = time.time()
        augment_p = float(self.augment_pipe.p.cpu()) if self.augment_pipe is not None else 0
        line = progress.status_line(cur_tick=self.cur_tick, cur_nimg=self.cur_nimg, start_time=self.start_time,
                                    tick_start_time=self.tick_start_time, tick_end_time=tick_end_time,
                                    tick_start_nimg=self.tick_start_nimg, maintenance_time=self.maintenance_time,
                                    augment_p=augment_p, device=self.device)
        self.live.tick()
        self.log(line)
        if self.lr_schedule is not None:    # only with a schedule: the official runs keep the official stats
            training_stats.report0('Progress/lr_factor', self.lr_factor())
        if not done and cfg.abort_fn is not None and cfg.abort_fn():
            done = True
            self.log()
            self.log('Aborting...')

        if self.rank == 0 and cfg.image_snapshot_ticks is not None and \
                (done or self.cur_tick % cfg.image_snapshot_ticks == 0):
            with rng.preserved(self.device):
                self.pictures.save_fakes(self.G_ema, os.path.join(cfg.run_dir, f'fakes{self.cur_nimg // 1000:06d}.png'))

        metric_results = {}
        if cfg.network_snapshot_ticks is not None and (done or self.cur_tick % cfg.network_snapshot_ticks == 0):
            metric_results = self._network_snapshot()

        self.timer.report()
        self.stats_collector.update()
        self.logs.write(self.stats_collector.as_dict(), metric_results, self.cur_nimg, self.start_time)
        if cfg.progress_fn is not None:
            cfg.progress_fn(self.cur_nimg // 1000, cfg.total_kimg)

        self.cur_tick += 1
        self.tick_start_nimg = self.cur_nimg
        self.tick_start_time = time.time()
        self.maintenance_time = self.tick_start_time - tick_end_time
        return done

    def _network_snapshot(self):
        """Write the snapshot pickle and its training state (rank 0); evaluate metrics (all ranks)."""
        cfg = self.cfg
        data = snapshots.snapshot_data(cfg.training_set_kwargs, self.G, self.D, self.G_ema, self.augment_pipe,
                                       self.extras, z_dist=cfg.z_dist)
        pkl_path = os.path.join(cfg.run_dir, snapshots.snapshot_name(self.cur_nimg, self.last_snapshot_nimg))
        self.last_snapshot_nimg = self.cur_nimg
        state = self._training_state(os.path.basename(pkl_path))
        if self.rank == 0:
            # The pickle appears last, with its state (which records its checksum) already beside it.
            snapshots.write_pair(pkl_path, data, state)
            snapshots.prune_states(cfg.run_dir, cfg.keep_states)
        if not cfg.metrics:
            return {}
        with rng.preserved(self.device):     # metrics_fn: the metrics layer's callable (training_loop)
            return cfg.metrics_fn(cfg.metrics, G=data['G_ema'], dataset_kwargs=cfg.training_set_kwargs,
                                  num_gpus=cfg.num_gpus, rank=self.rank, device=self.device, run_dir=cfg.run_dir,
                                  snapshot_pkl=pkl_path, z_dist=data[prior_lib.SNAPSHOT_KEY])

    def _training_state(self, snapshot_basename):
        """Everything a resumed run needs to continue exactly from the end of this tick (plain data)."""
        cfg = self.cfg
        if self.ada_adapts:
            self._collect_ada()
        gathered = distributed.gather_objects(dict(rng=rng.capture(self.device), loss=self.hooks.state_dict()))
        return dict(
            version=resume_lib.STATE_VERSION,
            snapshot=snapshot_basename,
            cur_nimg=self.cur_nimg, cur_tick=self.cur_tick + 1, batch_idx=self.batch_idx,
            tick_start_nimg=self.cur_nimg,
            sampler=self.sampler.state_at(self.consumed),
            optimizers=resume_lib.optimizer_states(self.optimizers),
            loss=[entry['loss'] for entry in gathered],
            rng=[entry['rng'] for entry in gathered],
            augment_p=float(self.augment_pipe.p.cpu()) if self.augment_pipe is not None else None,
            ada_pending=list(self.ada_pending),
            # The last five make the run what it is: a resume without their flags takes them (resolve.py).
            options=dict(ada_kimg=cfg.ada_kimg, ema_rampup=cfg.ema_rampup, batch_size=cfg.batch_size,
                         num_gpus=cfg.num_gpus, random_seed=cfg.random_seed,
                         z_dist=prior_lib.canonical_z_dist(cfg.z_dist), g_steps=cfg.g_steps, d_steps=cfg.d_steps,
                         g_batch_factor=cfg.g_batch_factor, lr_schedule=cfg.lr_schedule or 'none'),
        )
