"""`training_loop(...)`: the official entry point of a training process (COMPAT.md section 6).

It is called with `rank` plus every key of training_options.json. The keyword arguments after
`progress_fn` are this fork's additions; their defaults reproduce the official behaviour. The
work is done by `loop.Trainer`.
"""

import dnnlib

from .loop import Trainer

__all__ = ['training_loop']


def training_loop(
    run_dir                 = '.',      # Output directory.
    training_set_kwargs     = {},       # Options for the training set.
    data_loader_kwargs      = {},       # Options for torch.utils.data.DataLoader.
    G_kwargs                = {},       # Options for the generator network.
    D_kwargs                = {},       # Options for the discriminator network.
    G_opt_kwargs            = {},       # Options for the generator optimizer.
    D_opt_kwargs            = {},       # Options for the discriminator optimizer.
    augment_kwargs          = None,     # Options for the augmentation pipeline; None = off.
    loss_kwargs             = {},       # Options for the loss (class_name picks the plugin).
    metrics                 = [],       # Metrics evaluated at network snapshots.
    random_seed             = 0,        # Global random seed.
    num_gpus                = 1,        # Number of processes taking part.
    rank                    = 0,        # Rank of this process in [0, num_gpus).
    batch_size              = 4,        # Total batch over all processes.
    batch_gpu               = 4,        # Images per process and accumulation round.
    ema_kimg                = 10,       # Half-life of the G_ema average, in kimg.
    ema_rampup              = None,     # EMA ramp-up coefficient; None = no ramp-up.
    G_reg_interval          = 4,        # Lazy regularisation interval of G; None = with the main loss.
    D_reg_interval          = 16,       # Lazy regularisation interval of D; None = with the main loss.
    augment_p               = 0,        # Initial augment probability.
    ada_target              = None,     # ADA target of E[sign(D(real))]; None = fixed p.
    ada_interval            = 4,        # Iterations between ADA adjustments.
    ada_kimg                = 500,      # kimg for p to move from 0 to 1 at most.
    total_kimg              = 25000,    # Training length.
    kimg_per_tick           = 4,        # Progress ticks every this many kimg.
    image_snapshot_ticks    = 50,       # Image snapshot every this many ticks; None = off.
    network_snapshot_ticks  = 50,       # Network snapshot every this many ticks; None = off.
    resume_pkl              = None,     # Network pickle to start from (path or URL).
    cudnn_benchmark         = True,     # torch.backends.cudnn.benchmark.
    allow_tf32              = False,    # TF32 in matmuls and convolutions.
    abort_fn                = None,     # Callable returning True to stop training early.
    progress_fn             = None,     # Callable (cur_kimg, total_kimg) at the start and every tick.
    device                  = None,     # 'cuda', 'cpu' or None = CUDA when available.
    g_steps                 = 1,        # G main-phase executions per iteration.
    resume_state            = None,     # Training-state file of resume_pkl: continue exactly.
    keep_states             = 2,        # Training-state files kept per run (newest); None = all.
):
    """Train G and D; write snapshots, logs and statistics into `run_dir`."""
    cfg = dnnlib.EasyDict(locals())
    trainer = Trainer(cfg)
    trainer.setup()
    trainer.run()
