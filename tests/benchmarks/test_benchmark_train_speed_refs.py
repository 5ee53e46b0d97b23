"""P2 (`benchmarks/train_speed.py`): the baseline measured twice and the same-schedule reference run.

Pure bookkeeping on hand-made rows (no training): which reference runs a protocol adds, how the two
baseline measures combine, and that RFGAN's ratio to the same-schedule baseline is reported beside
(not instead of) the judged ratio to the one-step baseline.
"""

import types

import pytest

from benchmarks import train_speed


def _row(cpu, wall=None, mem=100.0):
    return dict(sec_per_kimg=wall if wall is not None else cpu, cpu_sec_per_kimg=cpu, peak_mem_mb=mem)


class _Recorder:
    def __init__(self):
        self.rows = []

    def compare(self, label, paper, ours, goal, met=None):
        self.rows.append(types.SimpleNamespace(label=label, paper=paper, ours=ours, goal=goal, met=met))


def test_merge_baseline_means_and_keeps_both():
    merged = train_speed.merge_baseline(_row(10.0, 20.0, mem=300.0), _row(12.0, 30.0, mem=250.0))
    assert merged['cpu_sec_per_kimg'] == pytest.approx(11.0)
    assert merged['sec_per_kimg'] == pytest.approx(25.0)
    assert merged['peak_mem_mb'] == 300.0
    assert merged['repeats']['cpu_sec_per_kimg'] == [10.0, 12.0]


def test_merge_baseline_without_cpu_measure():
    first, again = _row(None, 20.0), _row(None, 22.0)
    assert train_speed.merge_baseline(first, again)['cpu_sec_per_kimg'] is None


def test_references_follow_protocol_and_losses():
    full = train_speed.PROTOCOLS['full']
    assert train_speed.family_references(full, 'dcgan') == ['stylegan2-g2']
    assert train_speed.family_references(full, 'stylegan2') == ['stylegan2-matched']
    without_rf = train_speed.restrict_protocol(full, losses=['dist'])
    assert train_speed.family_references(without_rf, 'dcgan') == []
    assert train_speed.family_references(without_rf, 'stylegan2') == []
    assert train_speed.family_references(train_speed.PROTOCOLS['smoke'], 'dcgan') == []


def test_same_schedule_ratio_is_information_only():
    rows = {'stylegan2': _row(10.0), 'rf': _row(19.0), 'stylegan2-g2': _row(14.0), 'dist': _row(29.0)}
    rec = _Recorder()
    ratios = train_speed.compare_family(rec, 'dcgan', rows)
    assert set(ratios) == {'rf', 'dist'}            # no verdict for the baseline or the reference run
    assert ratios['rf']['time_ratio'] == pytest.approx(1.9)
    assert ratios['rf']['same_schedule_ratio'] == pytest.approx(19.0 / 14.0)
    judged = {row.label: row.met for row in rec.rows}
    assert judged['dcgan: rf time per kimg over the baseline'] is False     # 1.9x > 1.5x stays "not met"
    assert judged['dcgan: dist time per kimg over the baseline'] is True    # 2.9x <= 3x
    info = [row for row in rec.rows if 'on its schedule' in row.label]
    assert len(info) == 1 and info[0].met is None and '1.36x' in info[0].ours


def test_clr_on_stylegan2_is_judged_against_the_matched_baseline():
    quick = train_speed.restrict_protocol(train_speed.PROTOCOLS['quick'], losses=['clr'])
    assert train_speed.family_references(quick, 'stylegan2') == ['stylegan2-matched']
    assert train_speed.SUBSTITUTES['stylegan2']['clr'].endswith('matched_latent.CLR')
    rows = {'stylegan2': _row(10.0), 'clr': _row(9.0), 'stylegan2-matched': _row(7.5)}
    rec = _Recorder()
    ratios = train_speed.compare_family(rec, 'stylegan2', rows)
    assert set(ratios) == {'clr'} and ratios['clr']['time_ratio'] == pytest.approx(1.2)
    assert [row.label for row in rec.rows] == ['stylegan2: clr time per kimg over the baseline (stylegan2-matched)']


def _write_results(folder, family, ratios):
    import json
    folder.mkdir()
    runs = {family: {'stylegan2': _row(10.0)}}
    data = dict(command='python -m benchmarks.train_speed --quick', load_average_start=[1, 1, 1],
                load_average_end=[2, 2, 2], results=dict(runs=runs, ratios={family: ratios}))
    (folder / 'results.json').write_text(json.dumps(data))
    return str(folder)


@pytest.mark.slow  # train_speed.main records the git commit (a subprocess)
def test_merge_combines_subset_runs(tmp_path, capsys):
    first = _write_results(tmp_path / 'a', 'dcgan', {'rf': dict(time_ratio=1.8, same_schedule_ratio=1.3)})
    second = _write_results(tmp_path / 'b', 'dcgan', {'dist': dict(time_ratio=2.9)})
    merged = train_speed.main([f'--merge={first},{second}', f'--out={tmp_path / "m"}'])
    assert set(merged['ratios']['dcgan']) == {'rf', 'dist'} and len(merged['baselines']['dcgan']) == 2
    assert (tmp_path / 'm' / 'overhead_dcgan.png').stat().st_size > 1000
    assert (tmp_path / 'm' / 'merged.json').is_file()
    out = capsys.readouterr().out
    assert '1.80x (goal 1.5x), 1.30x on the same schedule' in out and 'dist        2.90x (goal 3.0x)' in out


@pytest.mark.slow  # train_speed.main records the git commit (a subprocess)
def test_merge_refuses_a_folder_without_results(tmp_path):
    with pytest.raises(SystemExit) as err:
        train_speed.main([f'--merge={tmp_path}', f'--out={tmp_path / "m"}'])
    assert str(tmp_path) in str(err.value) and 'results.json' in str(err.value)
