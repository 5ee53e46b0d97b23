"""P2 profiling aid: CPU milliseconds of each training phase, baseline vs loss plugins, in one process.

    python -m benchmarks.plugin_step --losses=rf,dist --families=dcgan          # ~2 min
    python -m benchmarks.plugin_step --repeats=8 --profile=dist                 # + top operators of dist

`benchmarks/train_speed.py` is the P2 measure (whole train.py runs, CPU s/kimg); this script is
the quick loop for finding where a plugin's time goes. For every (family, loss) it builds the
same training set-up train.py builds (the options are resolved by train.py itself, on the digits
at 32 px, `--aug=noaug`, one thread), then times iterations of the real training loop, all
losses of a family round-robin so that changing load on a shared machine hits them alike. Every
phase runs in every timed iteration (the iteration counter is held at 0), and the cost of an
iteration is the sum over phases of min-over-repeats CPU time x repeat / interval, i.e. the
average iteration of a long run. CPU time (`time.process_time`, one torch thread) barely moves
with other processes on the machine, wall time does.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import argparse
import collections
import contextlib
import inspect
import json
import os
import sys
import tempfile
import time

FAMILIES = {
    'dcgan': ['--cfg=dcgan'],
    'stylegan2': ['--cfg=cifar', '--cbase=1024', '--cmax=64'],
}
LOSSES = ('stylegan2', 'clr', 'rf', 'advlat-qua', 'advlat-div', 'dist', 'logan-b')
LOSS_FLAGS = {'rf': ['--rf-ae-kimg=0']}     # as train_speed.py: the AE pre-training is a one-off
# Named variants: name -> (loss, extra flags); stylegan2-g2 is the baseline on RFGAN's DCGAN schedule.
VARIANTS = {'stylegan2-g2': ('stylegan2', ['--g-steps=2'])}
BASELINE = 'stylegan2'
RESOLUTION = 32


def resolve_options(train_args):
    """The `training_loop` keywords train.py builds from `train_args` (its own parser and checks; nothing trains)."""
    import train  # pylint: disable=import-outside-toplevel
    from stylegan_plus.training import launch  # pylint: disable=import-outside-toplevel
    captured = []
    original = launch.launch_local
    launch.launch_local = lambda options, outdir, *rest, **kwargs: captured.append((options, outdir))
    try:
        train.main(list(train_args))
    except SystemExit as exit_:
        if exit_.code:
            raise
    finally:
        launch.launch_local = original
    if not captured:
        raise RuntimeError(f'train.py {" ".join(train_args)} did not reach the launch')
    options, outdir = captured[0]
    if not hasattr(options, 'loop_kwargs'):     # an older tree (e.g. a baseline copy): a plain dict
        loop_kwargs = dict(options)
        loop_kwargs['run_dir'] = os.path.join(outdir, 'run')
        return loop_kwargs
    return options.loop_kwargs()


def build_trainer(loop_kwargs):
    """A set-up `loop.Trainer` for `training_loop` keywords (its defaults fill the rest)."""
    import dnnlib  # pylint: disable=import-outside-toplevel
    from stylegan_plus.training import loop, training_loop  # pylint: disable=import-outside-toplevel
    defaults = {name: param.default for name, param in inspect.signature(training_loop.training_loop).parameters.items()}
    cfg = dnnlib.EasyDict(defaults)
    cfg.update(loop_kwargs)
    cfg.rank = 0
    os.makedirs(cfg.run_dir, exist_ok=True)
    with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet):
        trainer = loop.Trainer(cfg)
        trainer.setup()
    return trainer


class PhaseClock:
    """Wraps `loop.run_phase` to record the CPU seconds of every phase execution, per trainer."""

    def __init__(self):
        from stylegan_plus.training import loop  # pylint: disable=import-outside-toplevel
        self.loop = loop
        self.original = loop.run_phase
        self.samples = collections.defaultdict(list)    # (key, phase) -> [seconds]
        self.key = None
        loop.run_phase = self._timed

    def _timed(self, loss, spec, *args, **kwargs):
        start = time.process_time()
        result = self.original(loss, spec, *args, **kwargs)
        self.samples[(self.key, spec.name)].append(time.process_time() - start)
        return result


def iteration_cost(clock, key, trainer):
    """(CPU s of an average iteration, {phase: min CPU s per execution}) from the recorded samples."""
    per_phase, total = {}, 0.0
    for spec in trainer.phases:
        times = clock.samples[(key, spec.name)]
        per_phase[spec.name] = min(times)
        total += min(times) * spec.repeat / spec.interval
    return total, per_phase


def time_family(family, losses, data, workdir, repeats, warmup, clock):
    trainers = {}
    for loss in losses:
        name, flags = VARIANTS.get(loss, (loss, []))
        args = [*FAMILIES[family], f'--data={data}', f'--outdir={workdir}', f'--loss={name}', '--aug=noaug',
                '--metrics=none', '--workers=1', '--seed=0', '--device=cpu', '--kimg=1',
                *LOSS_FLAGS.get(name, []), *flags]
        with open(os.devnull, 'w') as quiet, contextlib.redirect_stdout(quiet):
            options = resolve_options(args)
        trainers[loss] = build_trainer(options)
    whole = collections.defaultdict(list)
    for rep in range(warmup + repeats):
        for loss, trainer in trainers.items():
            clock.key = (family, loss)
            trainer.batch_idx = 0       # every phase runs (lazy intervals are weighted in afterwards)
            start = time.process_time()
            trainer._iteration()  # pylint: disable=protected-access
            if rep >= warmup:
                whole[loss].append(time.process_time() - start)
            else:
                for phase in {spec.name for spec in trainer.phases}:
                    clock.samples.pop(((family, loss), phase), None)
    return trainers, whole


def report_family(family, trainers, whole, clock):
    base_total = iteration_cost(clock, (family, BASELINE), trainers[BASELINE])[0] if BASELINE in trainers else None
    print(f'\n{family}: CPU ms per average iteration (min over repeats per phase; x = ratio to {BASELINE})')
    rows = {}
    for loss, trainer in trainers.items():
        total, per_phase = iteration_cost(clock, (family, loss), trainer)
        ratio = f'{total / base_total:5.2f}x' if base_total else '   - '
        phases = ', '.join(f'{name} {1000 * t:.0f}' + (f'/{spec.interval}' if spec.interval > 1 else '')
                           + (f' x{spec.repeat}' if spec.repeat > 1 else '')
                           for spec in trainer.phases for name, t in [(spec.name, per_phase[spec.name])])
        print(f'  {loss:<11} {1000 * total:7.0f} ms {ratio}   whole iteration min {1000 * min(whole[loss]):.0f} ms'
              f'   [{phases}]')
        rows[loss] = dict(total_s=total, ratio=(total / base_total if base_total else None), phases=per_phase,
                          weights={spec.name: spec.repeat / spec.interval for spec in trainer.phases})
    return rows


def phase_figure(path, family, rows):
    """Stacked bars: CPU ms per average iteration of each loss, split by phase (weighted by repeat / interval)."""
    from benchmarks.common import figures  # pylint: disable=import-outside-toplevel
    from stylegan_plus.io import charts  # pylint: disable=import-outside-toplevel
    names = list(rows)
    phases = list(dict.fromkeys(phase for row in rows.values() for phase in row['phases']))
    fig, (ax,) = charts.panel_grid(1, cols=1, panel_size=(7.2, 4.2))
    bottoms = [0.0] * len(names)
    for index, phase in enumerate(phases):
        heights = [1000 * row['phases'].get(phase, 0.0) * row['weights'].get(phase, 0.0) for row in rows.values()]
        ax.bar(range(len(names)), heights, bottom=bottoms, width=0.7, label=phase,
               color=figures.PALETTE[index % len(figures.PALETTE)])
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    for x, (total, row) in enumerate(zip(bottoms, rows.values())):
        label = f'{total:.0f}' + (f' ({row["ratio"]:.2f}x)' if row['ratio'] else '')
        ax.annotate(label, (x, total), xytext=(0, 3), textcoords='offset points', ha='center', va='bottom', fontsize=7)
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.legend(fontsize=7)
    charts.style_axes(ax, f'{family} 32 px: CPU ms per average iteration, by phase', '', 'CPU ms')
    ax.grid(False, axis='x')
    return charts.save_figure(fig, path, dpi=figures.DPI)


def save_results(out, results, args):
    """Write plugin_step.json (atomically) and one phase figure per family into `out`; returns the paths."""
    from stylegan_plus.io import atomic  # pylint: disable=import-outside-toplevel
    os.makedirs(out, exist_ok=True)
    record = dict(command=' '.join(['python -m benchmarks.plugin_step', *args.argv]), load_average=os.getloadavg(),
                  results=results)
    path = os.path.join(out, 'plugin_step.json')
    text = json.dumps(record, indent=2)
    atomic.write_atomic(path, lambda f: f.write(text.encode('utf-8')))
    return [path] + [phase_figure(os.path.join(out, f'phases_{family}.png'), family, rows)
                     for family, rows in results.items()]


def profile_one(trainer, rows=25):
    import torch  # pylint: disable=import-outside-toplevel
    trainer.batch_idx = 0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer._iteration()  # pylint: disable=protected-access
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--losses', default='rf,advlat-div,dist',
                        help=f'comma-separated losses or variants ({", ".join(VARIANTS)}); the baseline is always added')
    parser.add_argument('--families', default='dcgan,stylegan2', help='comma-separated: dcgan, stylegan2')
    parser.add_argument('--repeats', type=int, default=5, help='timed iterations per loss (default 5)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations per loss first (default 2)')
    parser.add_argument('--profile', default=None, metavar='LOSS', help='also print the top operators of one loss')
    parser.add_argument('--out', default=None, metavar='DIR', help='also write plugin_step.json and phase figures here')
    parser.add_argument('--data', default=None, metavar='ZIP', help='a 32-px data set (default: the digits, written to a temp folder)')
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.losses = [BASELINE] + [name for name in args.losses.split(',') if name and name != BASELINE]
    args.families = [name for name in args.families.split(',') if name]
    bad = [name for name in args.losses if name not in LOSSES and name not in VARIANTS] + [name for name in args.families if name not in FAMILIES]
    if bad:
        parser.error(f'unknown name(s) {", ".join(bad)}; losses: {", ".join(LOSSES)}; families: {", ".join(FAMILIES)}')
    if args.repeats < 1 or args.warmup < 0:
        parser.error(f'--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(1)
    clock = PhaseClock()
    results = {}
    with tempfile.TemporaryDirectory(prefix='plugin_step_') as workdir:
        data = args.data
        if data is None:
            from benchmarks.common import digits  # pylint: disable=import-outside-toplevel
            pixels, labels = digits.load(RESOLUTION)
            data = digits.write_dataset(os.path.join(workdir, f'digits{RESOLUTION}.zip'), pixels, labels)
        for family in args.families:
            trainers, whole = time_family(family, args.losses, data, os.path.join(workdir, family), args.repeats,
                                          args.warmup, clock)
            results[family] = report_family(family, trainers, whole, clock)
            if args.profile in trainers:
                profile_one(trainers[args.profile])
    if args.out:
        for path in save_results(args.out, results, args):
            print(f'Wrote {path}')
    return results


if __name__ == '__main__':
    main()
