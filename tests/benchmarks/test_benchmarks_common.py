"""The benchmark framework (`benchmarks/common`: report, runner, runs, figures) on hand-made cases.

The benchmarks themselves run end to end (train.py subprocesses) in tests/benchmarks/test_benchmarks_toy.py
and tests/benchmarks/test_benchmarks_images.py. The only process started here is the `git` call with which a
`Report` records the commit; the tests that build a Report are marked slow for that reason.
"""

import argparse
import json
import os

import numpy as np
import PIL.Image
import pytest
import torch

from benchmarks import _by_path
from benchmarks.common import REPO_ROOT, figures, report, runner, runs


def _args(tmp_path, smoke=False, threads=1):
    return argparse.Namespace(out=str(tmp_path / 'out'), smoke=smoke, quick=False, threads=threads)


def _report(tmp_path, layout, smoke=False):
    return report.Report('demo', 'a demo', _args(tmp_path, smoke), [0, 1], script='/x/benchmarks/demo_bench.py',
                         argv=['--quick', '--out=o'], layout=layout, settings=dict(kimg=3))

#----------------------------------------------------------------------------
# report


@pytest.mark.parametrize('layout', ['toy', 'image'])
@pytest.mark.slow
def test_report_writes_its_layout(tmp_path, layout, capsys):
    rep = _report(tmp_path, layout)
    rep.compare('modes', 8, np.int64(7), '8/8', np.bool_(False))
    rep.result(value=np.float32(1.5), missing=float('nan'), curve=np.arange(3))
    rep.command(['python', 'x y.py'])
    saved_path = rep.finish(dict(extra=[1, 2]))
    with open(saved_path, encoding='utf-8') as f:
        saved = json.load(f)
    spec = report.LAYOUTS[layout]
    assert list(saved) == list(spec.keys)
    assert saved['comparison'] == [dict(zip(spec.row, ['modes', 8, 7, '8/8', False]))]
    assert saved['results'] == dict(value=1.5, missing=None, curve=[0, 1, 2], extra=[1, 2])
    assert saved['command'] == 'python -m benchmarks.demo_bench --quick --out=o'
    assert saved == rep.data
    environment = saved['environment' if layout == 'toy' else 'versions']
    assert environment['torch'] == torch.__version__ and 'commit' in environment
    if layout == 'image':
        assert saved['commands'] == ["python 'x y.py'"] and saved['threads'] == 1
    out = capsys.readouterr().out
    assert 'paper vs ours' in out and 'NOT MET' in out and 'wall time' in out


@pytest.mark.slow
def test_report_never_judges_a_smoke_run(tmp_path):
    rep = _report(tmp_path, 'toy', smoke=True)
    rep.compare('modes', 8, 8, '8/8', True)
    assert rep.data['comparison'][0]['met'] is None


@pytest.mark.slow
def test_report_records_runs_and_figures(tmp_path):
    rep = _report(tmp_path, 'toy')
    job = runner.TrainJob('gan-seed0', [], command='python train.py', run_dir='/r', wall_sec=1.234)
    rep.add_runs([job])
    assert rep.figure(rep.path('a.png')) == rep.path('a.png')
    rep.figure('/elsewhere/b.png')
    assert rep.data['runs'] == [dict(name='gan-seed0', command='python train.py', run_dir='/r', wall_sec=1.23)]
    assert rep.data['figures'] == ['a.png', '/elsewhere/b.png']


@pytest.mark.slow
def test_report_refuses_an_out_it_cannot_create(tmp_path):
    (tmp_path / 'taken').write_text('a file, not a folder')
    args = argparse.Namespace(out=str(tmp_path / 'taken'), smoke=True, quick=False, threads=1)
    with pytest.raises(SystemExit, match='--out=.*taken: cannot create'):
        report.Report('demo', 'a demo', args, [0], script='demo.py', argv=[], layout='toy')


def test_use_threads_sets_and_restores(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setenv('MKL_NUM_THREADS', '7')
    before = torch.get_num_threads()
    with report.use_threads(1):
        assert torch.get_num_threads() == 1
        assert os.environ['OMP_NUM_THREADS'] == '1' and os.environ['MKL_NUM_THREADS'] == '1'
    assert torch.get_num_threads() == before
    assert 'OMP_NUM_THREADS' not in os.environ and os.environ['MKL_NUM_THREADS'] == '7'


def test_parser_options_and_their_errors(capsys):
    parser = report.make_parser('Title line.\n\nMore text.', 'demo', runs=True)
    args = parser.parse_args(['--seeds', '2,0', '--parallel', '2'])
    assert args.seeds == [2, 0] and args.parallel == 2 and args.out == os.path.join('results', 'demo')
    assert report.protocol(args, dict(full=dict(kimg=1, seeds=[5]))) == (dict(kimg=1), [2, 0])
    for bad in (['--seeds', 'a,b'], ['--parallel', '0'], ['--threads', '-1']):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
        assert repr(bad[1]) in capsys.readouterr().err    # the message names the bad value


def test_name_list_keeps_the_allowed_order():
    parse = report.name_list(['dcgan', 'stylegan2'])
    assert parse('stylegan2, dcgan') == ['dcgan', 'stylegan2']
    with pytest.raises(argparse.ArgumentTypeError, match='choose from dcgan,stylegan2'):
        parse('biggan')


def test_mean_std_and_fmt():
    assert report.mean_std([1, None, 3]) == dict(mean=2.0, std=1.0, values=[1.0, 3.0])
    assert report.mean_std([None]) == dict(mean=None, std=None, values=[])
    assert (report.fmt(None), report.fmt(np.int64(3)), report.fmt(0.12345), report.fmt(123456.0)) == \
        ('n/a', '3', '0.123', '1.23e+05')

#----------------------------------------------------------------------------
# runner and runs


def test_train_args_of_both_domains():
    toy = runner.toy_train_args('d.npy', 3, nimg=400, ticks=4, extra=['--loss=rf'])
    assert toy == ['--cfg=toy', '--data=d.npy', '--device=cpu', '--metrics=none', '--workers=1', '--seed=3',
                   '--snap=1000000', '--kimg-per-tick=0.1', '--nimg=400', '--loss=rf']
    image = runner.image_train_args('d.zip', 1, cfg='dcgan', loss='clr', kimg=2, tick=0.5, snap=4, extra=['--cbase=512'])
    assert image[-3:] == ['--loss=clr', '--aug=noaug', '--cbase=512'] and '--kimg=2' in image and '--snap=4' in image
    with pytest.raises(ValueError, match='exactly one'):
        runner.train_args('d.zip', 0, cfg='dcgan', kimg=1, nimg=5)


def test_train_command_is_printable_from_the_repository_root(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    job = runner.TrainJob('x', [f'--data={os.path.join(REPO_ROOT, "d.npy")}', '--seed=0'])
    argv, shown = runner.train_command(job, os.path.join(REPO_ROOT, 'results', 'x'))
    assert argv[1:3] == ['train.py', f'--outdir={os.path.join(REPO_ROOT, "results", "x")}']
    assert shown == 'OMP_NUM_THREADS=1 python train.py --outdir=results/x --data=d.npy --seed=0'
    assert runner.child_env()['PYTHONPATH'].split(os.pathsep)[0] == REPO_ROOT


def test_reuse_needs_the_same_command(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    job = runner.TrainJob('gan-seed0', ['--seed=0'])
    outdir = tmp_path / 'runs' / 'gan-seed0'
    (outdir / '00003-run').mkdir(parents=True)
    (outdir / '00003-run' / 'training_options.json').write_text('{}')
    command = runner.train_command(job, str(outdir))[1]
    (outdir / 'job.json').write_text(json.dumps(dict(command=command, run_dir='00003-run', wall_sec=2.5, cpu_sec=2.0)))
    assert runner.reuse_finished(job, str(tmp_path))
    assert job.run_dir == str(outdir / '00003-run') and job.wall_sec == 2.5 and job.cpu_sec == 2.0
    assert not runner.reuse_finished(runner.TrainJob('gan-seed0', ['--seed=1']), str(tmp_path))
    assert runner.run_folders(str(outdir)) == {3: str(outdir / '00003-run')}


@pytest.mark.slow
def test_a_failed_run_names_its_command_and_log(tmp_path):
    job = runner.TrainJob('broken', runner.toy_train_args(str(tmp_path / 'missing.npy'), 0, nimg=64))
    with report.use_threads(1), pytest.raises(RuntimeError) as caught:
        runner.run_jobs([job], str(tmp_path), parallel=2)
    message = str(caught.value)
    assert 'train.py failed for broken' in message and job.command in message
    assert 'missing.npy' in message.split('last lines of', 1)[1]    # train.py's own error, from the log
    assert not os.path.exists(tmp_path / 'runs' / 'broken' / runner.JOB_RECORD)


def test_snapshots_in_writing_order_and_loading(tmp_path):
    for name in ('network-snapshot-000010.pkl', 'network-snapshot-000000_001.pkl', 'network-snapshot-000000.pkl'):
        with open(tmp_path / name, 'wb') as f:
            torch.save(None, f)
    assert [os.path.basename(p) for _k, p in runs.snapshots(str(tmp_path))] == [
        'network-snapshot-000000.pkl', 'network-snapshot-000000_001.pkl', 'network-snapshot-000010.pkl']
    path = tmp_path / 'snap.pkl'
    with open(path, 'wb') as f:
        import pickle  # pylint: disable=import-outside-toplevel
        pickle.dump(dict(G=torch.nn.Linear(2, 2).train(), note='x'), f)
    loaded = runs.load_snapshot(str(path))
    assert not loaded['G'].training and not any(p.requires_grad for p in loaded['G'].parameters())
    with pytest.raises(KeyError, match='G_ema'):
        runs.load_snapshot(str(path), ['G', 'G_ema'])
    with pytest.raises(FileNotFoundError):
        runs.final_snapshot_path(str(tmp_path / 'nothing'))


def test_stats_series_and_timing(tmp_path):
    records = [{'Progress/kimg': {'mean': k}, 'Timing/sec_per_tick': {'mean': s}, 'Loss/x': {'mean': k * 2}}
               for k, s in [(0.064, 9.0), (0.5, 4.0), (1.0, 1.0), (1.5, 2.0)]]
    del records[1]['Loss/x']
    assert runs.training_sec_per_kimg(records, skip_ticks=2) == pytest.approx(3.0)   # 3 s over 1 kimg
    assert runs.training_sec_per_kimg(records[:2], skip_ticks=2) is None
    kimg, values = runs.series(records, 'Loss/x')
    assert np.isnan(values[1]) and np.allclose(values[[0, 2, 3]], kimg[[0, 2, 3]] * 2)
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'stats.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    curves = runs.loss_curves(str(run_dir), ['Loss/x', 'Loss/absent'])
    assert list(curves) == ['Loss/x'] and curves['Loss/x'][0] == [0.064, 1.0, 1.5]   # the tick without it left out

#----------------------------------------------------------------------------
# figures and running by path


def test_save_grid_tiles_on_white(tmp_path):
    pixels = np.zeros([5, 4, 4], dtype=np.uint8)
    path = figures.save_grid(pixels, str(tmp_path / 'grid.png'), cols=3, scale=2, pad=1)
    with PIL.Image.open(path) as img:
        arr = np.asarray(img.convert('RGB'))
    assert arr.shape == (2 * (2 * 5 + 1), 2 * (3 * 5 + 1), 3)
    assert (arr[0] == 255).all() and (arr[2:10, 2:10] == 0).all()
    assert (arr[12:20, 22:30] == 255).all()     # the sixth cell is empty


def test_running_by_path_becomes_the_module(monkeypatch):
    monkeypatch.setenv('PYTHONPATH', '/somewhere')
    argv, env = _by_path.module_command(os.path.join(REPO_ROOT, 'benchmarks', 'q5_rf_ring.py'), ['--quick'])
    assert argv[1:] == ['-m', 'benchmarks.q5_rf_ring', '--quick']
    assert env['PYTHONPATH'].split(os.pathsep) == [REPO_ROOT, '/somewhere']
