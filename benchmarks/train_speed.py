"""P2: training throughput of train.py, baseline vs every --loss plugin, side by side in one run.

    python -m benchmarks.train_speed --quick            # ~15 min on 2 cores: short timing windows
    python -m benchmarks.train_speed                    # full: longer windows (~25 min)
    python -m benchmarks.train_speed --device=cuda      # on a GPU (peak memory = torch's GPU peak)
    python -m benchmarks.train_speed --quick --losses=rf,dist --families=dcgan   # a subset (baseline always runs)

For `--cfg=dcgan` at 32 px (the preset's widths) and a small StyleGAN2 at 32 px
(`--cfg=cifar --cbase=1024 --cmax=64`), each loss runs train.py on the same data (the digits at
32 px), with the same seed and batch. Seconds per kimg are taken from stats.jsonl
(`Timing/sec_per_tick`, which leaves out snapshots and images) over the ticks after a warm-up
tick, and as marginal CPU seconds per kimg (a second run that stops after the warm-up is
subtracted; CPU time is what matters on a shared machine, where wall time depends on the
neighbours; on an idle machine with one thread the two agree); peak memory is the training process's peak resident set (CPU, from the kernel) or the
largest `Resources/peak_gpu_mem_gb` (CUDA). Each loss's time is printed as a ratio to the
baseline beside the BENCHMARKS.md goal (the overhead estimated from the papers).
RFGAN runs with `--rf-ae-kimg=0`: its autoencoder pre-training is a one-off at the start of a run
(--rf-ae-kimg, default 200 kimg of the AE alone) and is not part of the per-kimg GAN cost.
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

from benchmarks.common import digits, figures, report, runner, runs

BENCH_ID = 'train_speed'
RESOLUTION = 32
BASELINE = 'stylegan2'
LOSSES = ('stylegan2', 'clr', 'rf', 'advlat-qua', 'advlat-div', 'dist', 'logan-b')
LOSS_FLAGS = {'rf': ['--rf-ae-kimg=0']}
GOALS = {'clr': 1.5, 'rf': 1.5, 'advlat-qua': 1.7, 'advlat-div': 2.2, 'dist': 3.0, 'logan-b': 2.2}
FAMILIES = {
    'dcgan': dict(cfg='dcgan', extra=[]),
    'stylegan2': dict(cfg='cifar', extra=['--cbase=1024', '--cmax=64']),
}
# tick: --kimg-per-tick; ticks: timed ticks after the warm-up ticks (tick 0 = one iteration, tick 1 = warm-up).
PROTOCOLS = {
    'full': dict(tick=0.512, ticks=3, families=['dcgan', 'stylegan2'], losses=LOSSES, cpu_pairs=True),
    'quick': dict(tick=0.256, ticks=2, families=['dcgan', 'stylegan2'], losses=LOSSES, cpu_pairs=True),
    'smoke': dict(tick=0.064, ticks=1, families=['dcgan'], losses=('stylegan2', 'clr'), extra=['--cbase=256'],
                  cpu_pairs=False),
}
WARMUP_TICKS = 2


def _job(family, loss, data, proto, device, nimg, suffix=''):
    spec = FAMILIES[family]
    args = runner.image_train_args(data, 0, cfg=spec['cfg'], loss=loss, nimg=nimg, tick=proto['tick'], snap=10000,
                                   device=device, extra=spec['extra'] + proto.get('extra', []) + LOSS_FLAGS.get(loss, []))
    return runner.TrainJob(f'{family}-{loss}{suffix}', args)


def time_one(rep, family, loss, data, proto, device):
    """Time one loss: dict(sec_per_kimg (wall), cpu_sec_per_kimg, peak_mem_mb, wall_s, ...).

    The long run holds the warm-up ticks plus the timed ticks; with `cpu_pairs` a second, short
    run stops after the warm-up, and the difference of the two runs' CPU seconds over the timed
    kimg is the marginal CPU cost per kimg (start-up cancels out; other processes on the machine
    barely change CPU time, unlike wall time).
    """
    warmup_nimg = int(round((WARMUP_TICKS - 1) * proto['tick'] * 1000)) + 64
    timed_kimg = proto['ticks'] * proto['tick']
    long_job = runner.run_job(_job(family, loss, data, proto, device, warmup_nimg + int(round(timed_kimg * 1000))),
                              rep.out)
    rep.add_runs([long_job])
    records = runs.read_stats(long_job.run_dir)
    sec = runs.training_sec_per_kimg(records, skip_ticks=WARMUP_TICKS)
    cpu_sec = None
    if proto['cpu_pairs']:
        short = runner.run_job(_job(family, loss, data, proto, device, warmup_nimg, suffix='-warmup-only'), rep.out)
        rep.add_runs([short])
        cpu_sec = (long_job.cpu_sec - short.cpu_sec) / timed_kimg
    peak = long_job.peak_rss_mb
    if device == 'cuda':
        peak = max(r['Resources/peak_gpu_mem_gb']['mean'] for r in records) * 1024
    print(f'  {family}/{loss}: {report.fmt(sec, 2)} s/kimg wall, {report.fmt(cpu_sec, 2)} CPU s/kimg, '
          f'peak {"GPU" if device == "cuda" else "RSS"} {peak:.0f} MiB', flush=True)
    return dict(sec_per_kimg=sec, cpu_sec_per_kimg=cpu_sec, peak_mem_mb=peak, wall_s=long_job.wall_sec,
                cpu_s=long_job.cpu_sec, timed_kimg=timed_kimg, run_dir=long_job.run_dir)


def _ratio(row, base, key):
    return row[key] / base[key] if row.get(key) and base.get(key) else None


def compare_family(rep, family, rows):
    """Ratios to the baseline and the paper-vs-ours rows of one family; returns the ratio dict.

    The verdict uses the CPU-time ratio when measured (robust to other load on the machine),
    else the wall-time ratio.
    """
    base = rows[BASELINE]
    ratios = {}
    for loss, row in rows.items():
        if loss == BASELINE:
            continue
        wall, cpu = _ratio(row, base, 'sec_per_kimg'), _ratio(row, base, 'cpu_sec_per_kimg')
        mem = _ratio(row, base, 'peak_mem_mb')
        ratios[loss] = dict(time_ratio=cpu if cpu is not None else wall, wall_ratio=wall, cpu_ratio=cpu,
                            mem_ratio=mem)
        judged = ratios[loss]['time_ratio']
        rep.compare(f'{family}: {loss} time per kimg over the baseline', f'estimate <= {GOALS[loss]}x',
                    f'{report.fmt(cpu, 2)}x CPU ({report.fmt(row["cpu_sec_per_kimg"], 2)} vs '
                    f'{report.fmt(base["cpu_sec_per_kimg"], 2)} CPU s/kimg), {report.fmt(wall, 2)}x wall '
                    f'({report.fmt(row["sec_per_kimg"], 2)} vs {report.fmt(base["sec_per_kimg"], 2)} s/kimg); '
                    f'peak memory {report.fmt(mem, 2)}x ({row["peak_mem_mb"]:.0f} vs {base["peak_mem_mb"]:.0f} MiB)',
                    f'<= {GOALS[loss]}x', None if judged is None else bool(judged <= GOALS[loss]))
    return ratios


def print_table(results):
    print()
    print(f'{"family":<10} {"loss":<11} {"s/kimg":>8} {"CPU s/kimg":>10} {"ratio":>6} {"goal":>6} {"peak MiB":>9} '
          f'{"mem x":>6}')
    for family, rows in results.items():
        base = rows[BASELINE]
        for loss, row in rows.items():
            ratio = _ratio(row, base, 'cpu_sec_per_kimg') or _ratio(row, base, 'sec_per_kimg')
            goal = f'{GOALS[loss]:.1f}x' if loss in GOALS else '-'
            print(f'{family:<10} {loss:<11} {report.fmt(row["sec_per_kimg"], 2):>8} '
                  f'{report.fmt(row["cpu_sec_per_kimg"], 2):>10} {report.fmt(ratio, 2):>6} {goal:>6} '
                  f'{row["peak_mem_mb"]:>9.0f} {_ratio(row, base, "peak_mem_mb"):>6.2f}')


def restrict_protocol(proto, losses=None, families=None):
    """A copy of `proto` limited to the given losses (the baseline is always kept) and families (None: all)."""
    proto = dict(proto)
    proto['losses'] = tuple(loss for loss in proto['losses'] if loss == BASELINE or losses is None or loss in losses)
    proto['families'] = [family for family in proto['families'] if families is None or family in families]
    return proto


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='train.py --device (default: cpu)')
    parser.add_argument('--losses', type=report.name_list(LOSSES), metavar='A,B', default=None,
                        help='only these losses beside the baseline (comma-separated; default: all of the protocol)')
    parser.add_argument('--families', type=report.name_list(FAMILIES), metavar='A,B', default=None,
                        help='only these network families (dcgan, stylegan2; default: all of the protocol)')
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark; returns the results.json content."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    proto, seeds = report.protocol(args, PROTOCOLS)
    proto = restrict_protocol(proto, args.losses, args.families)
    rep = report.Report(BENCH_ID, 'train.py sec/kimg and peak memory, baseline vs every loss plugin', args, seeds,
                        script=__file__, argv=argv, layout='image')
    rep.setting(resolution=RESOLUTION, device=args.device, families={f: FAMILIES[f] for f in proto['families']},
                losses=proto['losses'], loss_flags=LOSS_FLAGS, tick_kimg=proto['tick'], timed_ticks=proto['ticks'],
                warmup_ticks=WARMUP_TICKS, goals=GOALS, data='scikit-learn load_digits at 32 px (1 797 images)')
    pixels, labels = digits.load(RESOLUTION)
    data = digits.write_dataset(rep.path(f'data/digits{RESOLUTION}.zip'), pixels, labels)
    results, ratios = {}, {}
    for family in proto['families']:
        results[family] = {loss: time_one(rep, family, loss, data, proto, args.device) for loss in proto['losses']}
        ratios[family] = compare_family(rep, family, results[family])
        rep.result(runs=results, ratios=ratios)
        rep.save()
        names = [loss for loss in proto['losses'] if loss != BASELINE]
        rep.figure(figures.bar_plot(rep.path(f'overhead_{family}.png'), names,
                                    [ratios[family][n]['time_ratio'] for n in names], reference=1.0,
                                    title=f'P2 {family} 32 px: time per kimg / baseline (CPU if measured; dashed: 1.0)',
                                    ylabel='ratio'))
    print_table(results)
    rep.finish()
    return rep.data


if __name__ == '__main__':
    main()
