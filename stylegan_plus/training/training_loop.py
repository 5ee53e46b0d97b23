"""`training_loop(...)`: the official entry point of a training process (docs/compat.md section 6).

It is called with `rank` plus every key of training_options.json (`TrainingOptions.loop_kwargs()`;
official `training.*` class names work as well as ours). The keyword arguments after
`progress_fn` are this fork's additions; their defaults reproduce the official behaviour. The
work is done by `loop.Trainer`. Metrics come in as a callable (`metrics_fn`), as `abort_fn` does:
the training layer does not import the metrics layer.
"""

import dnnlib

from .loop import Trainer
from .options import migrate_retired_options

__all__ = ['training_loop']


def training_loop(
    run_dir='.', training_set_kwargs={}, data_loader_kwargs={}, G_kwargs={}, D_kwargs={},
    G_opt_kwargs={}, D_opt_kwargs={}, augment_kwargs=None, loss_kwargs={}, metrics=[],
    random_seed=0, num_gpus=1, rank=0, batch_size=4, batch_gpu=4, ema_kimg=10, ema_rampup=None,
    G_reg_interval=4, D_reg_interval=16, augment_p=0, ada_target=None, ada_interval=4, ada_kimg=500,
    total_kimg=25000, kimg_per_tick=4, image_snapshot_ticks=50, network_snapshot_ticks=50,
    resume_pkl=None, cudnn_benchmark=True, allow_tf32=False, abort_fn=None, progress_fn=None,
    device=None, g_steps=1, resume_state=None, keep_states=2, precision='fp32', metrics_fn=None,
    d_steps=1, z_dist=None, lr_schedule=None, g_batch_factor=1,
):  # pylint: disable=dangerous-default-value,unused-argument
    """Train G and D; write snapshots, logs and statistics into `run_dir`.

    What gets built (each `*_kwargs` is a dict whose `class_name` names the class to construct):
      training_set_kwargs  the dataset; `data_loader_kwargs` go to torch.utils.data.DataLoader
      G_kwargs, D_kwargs   the two networks (c_dim, resolution and channels come from the dataset)
      G_opt_kwargs, ...    D_opt_kwargs likewise: the optimizers, e.g. torch.optim.Adam with lr/betas
      augment_kwargs       the augmentation pipe; None, or augment_p == 0 without ada_target, means none
      loss_kwargs          the loss plugin and its hyper-parameters
      metrics              list of metric names, evaluated whenever a network snapshot is written

    Processes and batches:
      num_gpus, rank       how many processes take part, and which one this is (0 writes the files)
      random_seed          seeds networks, data order and latents; with several processes,
                           training draws then use random_seed * num_gpus + rank
      batch_size           images per optimizer step over all processes
      batch_gpu            images one process handles per forward/backward; gradients accumulate
                           over batch_size // (batch_gpu * num_gpus) such rounds
      device               'cuda', 'cpu', or None for CUDA whenever it is available
      g_steps              how many times the G main phase runs per iteration (1 = official)
      d_steps              likewise the D main phase (1 = official); each execution draws its own latents,
                           and each one after the first its own real batch (n-critic loops)
      g_batch_factor       each G main step takes the mean over g_batch_factor x batch_size latents
                           (1 = official; 2 = pytorch-gan-collections' G batch, which AdvLatGAN uses),
                           accumulated in g_batch_factor x the rounds, the iteration's reals reused
      z_dist               the latent prior: 'normal' (N(0, I), official; also None) or 'uniform'
                           (U[-1, 1]); the loss draws from it and every snapshot records it
      lr_schedule          None/'none' (constant rates, official), 'step:FACTOR:EVERY': every
                           optimizer's configured lr times FACTOR ** (iteration // EVERY), or
                           'linear:ITERS': times max(0, 1 - iteration / ITERS)
      precision            'fp32' (official), or 'bf16': every phase's forward/backward runs under
                           torch.autocast(bfloat16) on CPUs with AMX/AVX512-BF16 and on bf16-capable
                           GPUs (parameters, gradients, optimizer state stay float32); elsewhere fp32
                           with one printed notice (torch_utils.misc.precision_context)

    Schedule (1 kimg = 1000 real images shown to D):
      total_kimg           length of the run
      kimg_per_tick        spacing of status lines, stats.jsonl rows and the abort check
      image_snapshot_ticks write fakes*.png every that many ticks (None: never)
      network_snapshot_ticks  write network-snapshot-*.pkl, and run the metrics, likewise
      G_reg_interval, D_reg_interval  lazy regularisation: R1 / path length every that many
                           iterations (None: computed together with the main loss)

    Averaged generator G_ema:
      ema_kimg             half-life of G_ema's running average, in kimg
      ema_rampup           if set, the half-life is at most ema_rampup * images seen so far

    Adaptive augmentation:
      augment_p            probability the pipe starts with (and keeps, without ada_target)
      ada_target           wanted mean of sign(D(real)); None switches the adaptation off
      ada_interval         iterations between two adjustments of p
      ada_kimg             p can travel from 0 to 1 in no fewer than this many kimg

    Resuming, hardware and control:
      resume_pkl           a pickle (path or URL) whose G, D, G_ema weights are copied by name
      resume_state         its training-state file: continue exactly (optimizers, counters, RNGs)
      keep_states          how many training-state files to keep in run_dir (newest; None: all)
      cudnn_benchmark      value for torch.backends.cudnn.benchmark
      allow_tf32           let matmuls and convolutions use TF32 on Ampere and newer GPUs
      abort_fn             callable -> bool, asked at every tick; True ends the run early
      progress_fn          callable(cur_kimg, total_kimg), called at the start and every tick
      metrics_fn           callable(metrics, *, G, dataset_kwargs, num_gpus, rank, device, run_dir,
                           snapshot_pkl, z_dist) -> {result name: value}, called on every process at each
                           network snapshot when `metrics` is not empty (train.py passes
                           metrics.training_hook.evaluate); required then
    """
    if metrics and metrics_fn is None:
        raise ValueError(f'metrics {", ".join(metrics)} were requested but no metrics_fn was given: pass '
                         f'metrics_fn=metrics.training_hook.evaluate, or metrics=[]')
    # Options of runs written before --z-dist / --d-steps replaced plugin options still work.
    moved = migrate_retired_options(dict(loss_kwargs=loss_kwargs))
    if moved['loss_kwargs'] is not loss_kwargs:
        loss_kwargs = moved['loss_kwargs']
        z_dist = z_dist if z_dist is not None else moved.get('z_dist')
        d_steps = d_steps if d_steps != 1 else moved.get('d_steps', 1)
    cfg = dnnlib.EasyDict(locals())
    del cfg['moved']
    trainer = Trainer(cfg)
    trainer.setup()
    trainer.run()
