"""P2: training throughput of train.py, baseline vs every --loss plugin, side by side in one run.

    python -m benchmarks.train_speed --quick            # ~15 min on 2 cores: short timing windows
    python -m benchmarks.train_speed                    # full: longer windows (~25 min)
    python -m benchmarks.train_speed --device=cuda      # on a GPU (peak memory = torch's GPU peak)
    python -m benchmarks.train_speed --quick --losses=rf,dist --families=dcgan   # a subset (baseline always runs)
    python -m benchmarks.train_speed --merge=DIR1,DIR2 --out DIR   # one table and figure per family from subset runs

For `--cfg=dcgan` at 32 px (the preset's widths) and a small StyleGAN2 at 32 px
(`--cfg=cifar --cbase=1024 --cmax=64`), each loss runs train.py on the same data (the digits at
32 px), with the same seed and batch. Seconds per kimg are taken from stats.jsonl
(`Timing/sec_per_tick`, which leaves out snapshots and images) over the ticks after a warm-up
tick, and as marginal CPU seconds per kimg (a second run that stops after the warm-up is
subtracted; CPU time is what matters on a shared machine, where wall time depends on the
neighbours; on an idle machine with one thread the two agree); peak memory is the training process's peak resident set (CPU, from the kernel) or the
largest `Resources/peak_gpu_mem_gb` (CUDA). Each loss's time is printed as a ratio to the
baseline beside the docs/benchmarks.md goal (the overhead estimated from the papers).
RFGAN runs with `--rf-ae-kimg=0`: its autoencoder pre-training is a one-off at the start of a run
(--rf-ae-kimg, default 200 kimg of the AE alone) and is not part of the per-kimg GAN cost.

Two additions to the side-by-side (full and quick protocols): the baseline runs first and again
last in each family, and the ratios use the mean of its two CPU measures (the spread between them
is printed: it shows how much the machine drifted during the family's runs); and on DCGAN, where
RFGAN trains G twice per D step (its paper's schedule, which its DCGAN baseline shares), the
baseline also runs with `--g-steps=2` (`stylegan2-g2`), so RFGAN's own overhead is printed beside
its ratio to the one-step baseline (the goal is judged on the latter).
"""

if __name__ == '__main__' and not __package__:     # started by path: rerun as `python -m benchmarks.<name>`
    import _by_path
    _by_path.rerun_as_module(__file__)

import json
import os

from benchmarks.common import digits, figures, report, runner, runs
from stylegan_plus.io import atomic, charts

BENCH_ID = 'train_speed'
RESOLUTION = 32
BASELINE = 'stylegan2'
LOSSES = ('stylegan2', 'clr', 'rf', 'advlat-qua', 'advlat-div', 'dist', 'logan-b')
LOSS_FLAGS = {'rf': ['--rf-ae-kimg=0']}
GOALS = {'clr': 1.5, 'rf': 1.5, 'advlat-qua': 1.7, 'advlat-div': 2.2, 'dist': 3.0, 'logan-b': 2.2}
MATCHED = 'benchmarks.common.matched_latent.'
# Plugins run under another --loss value in a family: CLR-GAN reads z off D's 64-wide fc on the small
# StyleGAN2, so it runs with z_dim = w_dim = 64 (train.py refuses the 512-wide latent there), and is
# judged against the baseline on that same generator (the reference `stylegan2-matched`).
SUBSTITUTES = {'stylegan2': {'clr': MATCHED + 'CLR'}}
# Reference runs beside the baseline: name -> loss, extra flags, the plugin it is the baseline of, families,
# and whether the plugin's verdict uses it (judged) or it is printed for information. `--cfg=dcgan` with
# `--loss=rf` sets --g-steps=2 (the RFGAN paper's schedule, which its DCGAN baseline shares).
REFERENCES = {
    'stylegan2-g2': dict(loss=BASELINE, flags=['--g-steps=2'], plugin='rf', families=['dcgan'], judged=False),
    'stylegan2-matched': dict(loss=MATCHED + 'Baseline', flags=[], plugin='clr', families=['stylegan2'], judged=True),
}
FAMILIES = {
    'dcgan': dict(cfg='dcgan', extra=[]),
    'stylegan2': dict(cfg='cifar', extra=['--cbase=1024', '--cmax=64']),
}
# tick: --kimg-per-tick; ticks: timed ticks after the warm-up ticks (tick 0 = one iteration, tick 1 = warm-up).
PROTOCOLS = {
    'full': dict(tick=0.512, ticks=3, families=['dcgan', 'stylegan2'], losses=LOSSES, cpu_pairs=True,
                 baseline_twice=True, references=True),
    'quick': dict(tick=0.256, ticks=2, families=['dcgan', 'stylegan2'], losses=LOSSES, cpu_pairs=True,
                  baseline_twice=True, references=True),
    'smoke': dict(tick=0.064, ticks=1, families=['dcgan'], losses=('stylegan2', 'clr'), extra=['--cbase=256'],
                  cpu_pairs=False),
}
WARMUP_TICKS = 2


def _job(family, loss, data, proto, device, nimg, suffix='', flags=(), name=None):
    spec = FAMILIES[family]
    extra = spec['extra'] + proto.get('extra', []) + LOSS_FLAGS.get(loss, []) + list(flags)
    args = runner.image_train_args(data, 0, cfg=spec['cfg'], loss=loss, nimg=nimg, tick=proto['tick'], snap=10000,
                                   device=device, extra=extra)
    return runner.TrainJob(f'{family}-{name or loss}{suffix}', args)


def time_one(rep, family, loss, data, proto, device, flags=(), name=None):
    """Time one loss: dict(sec_per_kimg (wall), cpu_sec_per_kimg, peak_mem_mb, wall_s, ...).

    The long run holds the warm-up ticks plus the timed ticks; with `cpu_pairs` a second, short
    run stops after the warm-up, and the difference of the two runs' CPU seconds over the timed
    kimg is the marginal CPU cost per kimg (start-up cancels out; other processes on the machine
    barely change CPU time, unlike wall time).
    """
    warmup_nimg = int(round((WARMUP_TICKS - 1) * proto['tick'] * 1000)) + 64
    timed_kimg = proto['ticks'] * proto['tick']
    job = lambda nimg, suffix='': _job(family, loss, data, proto, device, nimg, suffix=suffix, flags=flags, name=name)
    long_job = runner.run_job(job(warmup_nimg + int(round(timed_kimg * 1000))), rep.out)
    rep.add_runs([long_job])
    records = runs.read_stats(long_job.run_dir)
    sec = runs.training_sec_per_kimg(records, skip_ticks=WARMUP_TICKS)
    cpu_sec = None
    if proto['cpu_pairs']:
        short = runner.run_job(job(warmup_nimg, suffix='-warmup-only'), rep.out)
        rep.add_runs([short])
        cpu_sec = (long_job.cpu_sec - short.cpu_sec) / timed_kimg
    peak = long_job.peak_rss_mb
    if device == 'cuda':
        peak = max(r['Resources/peak_gpu_mem_gb']['mean'] for r in records) * 1024
    print(f'  {family}/{name or loss}: {report.fmt(sec, 2)} s/kimg wall, {report.fmt(cpu_sec, 2)} CPU s/kimg, '
          f'peak {"GPU" if device == "cuda" else "RSS"} {peak:.0f} MiB', flush=True)
    return dict(sec_per_kimg=sec, cpu_sec_per_kimg=cpu_sec, peak_mem_mb=peak, wall_s=long_job.wall_sec,
                cpu_s=long_job.cpu_sec, timed_kimg=timed_kimg, run_dir=long_job.run_dir)


def _ratio(row, base, key):
    return row[key] / base[key] if row.get(key) and base.get(key) else None


def merge_baseline(first, again):
    """The baseline row from its first and last run of a family: mean time per kimg (CPU and wall), the larger
    peak memory, both measures kept under `repeats` (their spread shows the machine's drift)."""
    merged = dict(first)
    for key in ('sec_per_kimg', 'cpu_sec_per_kimg'):
        values = [row[key] for row in (first, again) if row.get(key)]
        merged[key] = sum(values) / len(values) if values else None
    merged['peak_mem_mb'] = max(first['peak_mem_mb'], again['peak_mem_mb'])
    merged['repeats'] = {key: [first.get(key), again.get(key)] for key in ('sec_per_kimg', 'cpu_sec_per_kimg')}
    return merged


def family_references(proto, family):
    """Names of the reference runs (REFERENCES) this protocol adds to `family`: those whose plugin it times."""
    return [name for name, ref in REFERENCES.items() if family in ref['families'] and ref['plugin'] in proto['losses']
            and (ref['judged'] or proto.get('references'))]


def time_family(rep, family, data, proto, device):
    """Every run of one family, in order: baseline, plugins, references, baseline again; -> {name: row}."""
    rows = {loss: time_one(rep, family, SUBSTITUTES.get(family, {}).get(loss, loss), data, proto, device, name=loss)
            for loss in proto['losses']}
    for name in family_references(proto, family):
        ref = REFERENCES[name]
        rows[name] = time_one(rep, family, ref['loss'], data, proto, device, flags=ref['flags'], name=name)
    if proto.get('baseline_twice'):
        again = time_one(rep, family, BASELINE, data, proto, device, name=f'{BASELINE}-again')
        rows[BASELINE] = merge_baseline(rows[BASELINE], again)
    return rows


def compare_family(rep, family, rows):
    """Ratios to the baseline and the paper-vs-ours rows of one family; returns the ratio dict.

    The verdict uses the CPU-time ratio when measured (robust to other load on the machine),
    else the wall-time ratio, against the baseline or the plugin's judged reference run (REFERENCES).
    """
    ratios = {}
    for loss, row in rows.items():
        if loss == BASELINE or loss in REFERENCES:
            continue
        judged_by = next((name for name, ref in REFERENCES.items() if ref['plugin'] == loss and ref['judged']
                          and name in rows), BASELINE)
        base = rows[judged_by]
        wall, cpu = _ratio(row, base, 'sec_per_kimg'), _ratio(row, base, 'cpu_sec_per_kimg')
        mem = _ratio(row, base, 'peak_mem_mb')
        ratios[loss] = dict(time_ratio=cpu if cpu is not None else wall, wall_ratio=wall, cpu_ratio=cpu,
                            mem_ratio=mem)
        judged = ratios[loss]['time_ratio']
        against = '' if judged_by == BASELINE else f' ({judged_by})'
        rep.compare(f'{family}: {loss} time per kimg over the baseline{against}', f'estimate <= {GOALS[loss]}x',
                    f'{report.fmt(cpu, 2)}x CPU ({report.fmt(row["cpu_sec_per_kimg"], 2)} vs '
                    f'{report.fmt(base["cpu_sec_per_kimg"], 2)} CPU s/kimg), {report.fmt(wall, 2)}x wall '
                    f'({report.fmt(row["sec_per_kimg"], 2)} vs {report.fmt(base["sec_per_kimg"], 2)} s/kimg); '
                    f'peak memory {report.fmt(mem, 2)}x ({row["peak_mem_mb"]:.0f} vs {base["peak_mem_mb"]:.0f} MiB)',
                    f'<= {GOALS[loss]}x', None if judged is None else bool(judged <= GOALS[loss]))
        for name, ref in REFERENCES.items():
            if ref['plugin'] == loss and name in rows and not ref['judged']:
                same = _ratio(row, rows[name], 'cpu_sec_per_kimg')
                ratios[loss]['same_schedule_ratio'] = same
                rep.compare(f'{family}: {loss} over the baseline on its schedule ({name}: {" ".join(ref["flags"])})',
                            'information (the goal is judged above)',
                            f'{report.fmt(same, 2)}x CPU ({report.fmt(row["cpu_sec_per_kimg"], 2)} vs '
                            f'{report.fmt(rows[name]["cpu_sec_per_kimg"], 2)} CPU s/kimg)', '-', None)
    return ratios


def print_table(results):
    print()
    print(f'{"family":<10} {"loss":<12} {"s/kimg":>8} {"CPU s/kimg":>10} {"ratio":>6} {"goal":>6} {"peak MiB":>9} '
          f'{"mem x":>6}')
    for family, rows in results.items():
        base = rows[BASELINE]
        for loss, row in rows.items():
            ratio = _ratio(row, base, 'cpu_sec_per_kimg') or _ratio(row, base, 'sec_per_kimg')
            goal = f'{GOALS[loss]:.1f}x' if loss in GOALS else '-'
            print(f'{family:<10} {loss:<12} {report.fmt(row["sec_per_kimg"], 2):>8} '
                  f'{report.fmt(row["cpu_sec_per_kimg"], 2):>10} {report.fmt(ratio, 2):>6} {goal:>6} '
                  f'{row["peak_mem_mb"]:>9.0f} {_ratio(row, base, "peak_mem_mb"):>6.2f}')
        if 'repeats' in base:
            first, last = base['repeats']['cpu_sec_per_kimg']
            print(f'{family:<10} baseline CPU s/kimg first / last run: {report.fmt(first, 2)} / {report.fmt(last, 2)}')


def restrict_protocol(proto, losses=None, families=None):
    """A copy of `proto` limited to the given losses (the baseline is always kept) and families (None: all)."""
    proto = dict(proto)
    proto['losses'] = tuple(loss for loss in proto['losses'] if loss == BASELINE or losses is None or loss in losses)
    proto['families'] = [family for family in proto['families'] if families is None or family in families]
    return proto


def goal_figure(path, family, ratios):
    """Bars: each plugin's time ratio; a black tick at its goal, a dashed line at 1.0; returns path."""
    names = [name for name in LOSSES if name in ratios]
    values = [ratios[name]['time_ratio'] or 0.0 for name in names]
    fig, (ax,) = charts.panel_grid(1, cols=1, panel_size=(7.2, 4.2))
    met = [value <= GOALS[name] for name, value in zip(names, values)]
    ax.bar(range(len(names)), values, width=0.6, color=[figures.PALETTE[2] if ok else figures.PALETTE[3] for ok in met])
    for x, name in enumerate(names):
        ax.hlines(GOALS[name], x - 0.38, x + 0.38, color='black', linewidth=2)
        top = max(values[x], GOALS[name])     # the label clears the goal tick
        ax.annotate(f'{values[x]:.2f}x', (x, top), xytext=(0, 3), textcoords='offset points', ha='center',
                    va='bottom', fontsize=7)
    ax.axhline(1.0, color='#555555', linestyle='--', linewidth=1)
    ax.set_xticks(range(len(names)), names, fontsize=7)
    charts.style_axes(ax, f'P2 {family} 32 px: CPU time per kimg / baseline (black: goal; green met, red not)', '',
                      'ratio')
    ax.grid(False, axis='x')
    return charts.save_figure(fig, path, dpi=figures.DPI)


def merge_results(folders, out):
    """Combine the results.json of subset runs (each with its own baseline): one ratio table and goal figure
    per family in `out` (merged.json, overhead_<family>.png); returns the merged dict."""
    merged = dict(sources=[], ratios={}, baselines={}, load_average=[])
    for folder in folders:
        with open(os.path.join(folder, 'results.json'), encoding='utf-8') as f:
            data = json.load(f)
        merged['sources'].append(dict(folder=folder, command=data['command'], wall_time_s=data.get('wall_time_s')))
        merged['load_average'].append([data.get('load_average_start'), data.get('load_average_end')])
        for family, ratios in data['results']['ratios'].items():
            merged['ratios'].setdefault(family, {}).update(ratios)
            merged['baselines'].setdefault(family, []).append(data['results']['runs'][family][BASELINE])
    os.makedirs(out, exist_ok=True)
    for family, ratios in merged['ratios'].items():
        goal_figure(os.path.join(out, f'overhead_{family}.png'), family, ratios)
        for name in (name for name in LOSSES if name in ratios):
            row = ratios[name]
            same = row.get('same_schedule_ratio')
            print(f'{family:<10} {name:<11} {report.fmt(row["time_ratio"], 2)}x (goal {GOALS[name]}x)'
                  + (f', {report.fmt(same, 2)}x on the same schedule' if same else ''))
    text = json.dumps(merged, indent=2)
    atomic.write_atomic(os.path.join(out, 'merged.json'), lambda f: f.write(text.encode('utf-8')))
    return merged


def parse_args(argv):
    parser = report.make_parser(__doc__, BENCH_ID)
    parser.add_argument('--merge', default=None, metavar='DIR,DIR',
                        help='train nothing: combine the results.json of these earlier (subset) runs into --out')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='train.py --device (default: cpu)')
    parser.add_argument('--losses', type=report.name_list(LOSSES), metavar='A,B', default=None,
                        help='only these losses beside the baseline (comma-separated; default: all of the protocol)')
    parser.add_argument('--families', type=report.name_list(FAMILIES), metavar='A,B', default=None,
                        help='only these network families (dcgan, stylegan2; default: all of the protocol)')
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark; returns the results.json content (with --merge: the merged dict)."""
    return report.benchmark_main(argv, parse_args, run)


def run(args, argv):
    if args.merge:
        folders = [folder for folder in args.merge.split(',') if folder]
        missing = [folder for folder in folders if not os.path.isfile(os.path.join(folder, 'results.json'))]
        if not folders or missing:
            raise SystemExit(f'--merge={args.merge}: no results.json in {", ".join(missing) or "(no folder given)"}; '
                             f'give the --out folders of earlier train_speed runs, comma-separated')
        return merge_results(folders, args.out)
    proto, seeds = report.protocol(args, PROTOCOLS)
    proto = restrict_protocol(proto, args.losses, args.families)
    rep = report.Report(BENCH_ID, 'train.py sec/kimg and peak memory, baseline vs every loss plugin', args, seeds,
                        script=__file__, argv=argv, layout='image')
    rep.setting(resolution=RESOLUTION, device=args.device, families={f: FAMILIES[f] for f in proto['families']},
                losses=proto['losses'], loss_flags=LOSS_FLAGS, tick_kimg=proto['tick'], timed_ticks=proto['ticks'],
                warmup_ticks=WARMUP_TICKS, goals=GOALS, references=REFERENCES,
                baseline_twice=bool(proto.get('baseline_twice')), data='scikit-learn load_digits at 32 px (1 797 images)')
    pixels, labels = digits.load(RESOLUTION)
    data = digits.write_dataset(rep.path(f'data/digits{RESOLUTION}.zip'), pixels, labels)
    results, ratios = {}, {}
    for family in proto['families']:
        results[family] = time_family(rep, family, data, proto, args.device)
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
