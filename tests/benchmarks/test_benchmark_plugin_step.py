"""`benchmarks/plugin_step.py` (the P2 profiling aid): its cost bookkeeping, options and figure, without training.

The end-to-end path (train.py's options -> a loop.Trainer -> timed iterations) is exercised by a
slow test on the smallest DCGAN, so the script cannot rot when the loop changes.
"""

import os
import types

import PIL.Image
import pytest

from benchmarks import plugin_step


def _spec(name, repeat=1, interval=1):
    return types.SimpleNamespace(name=name, repeat=repeat, interval=interval)


def test_iteration_cost_weights_repeat_and_interval():
    clock = types.SimpleNamespace(samples={('k', 'Gboth'): [0.30, 0.20, 0.25], ('k', 'Dmain'): [0.5, 0.4],
                                           ('k', 'Dreg'): [1.6]})
    trainer = types.SimpleNamespace(phases=[_spec('Gboth', repeat=2), _spec('Dmain'), _spec('Dreg', interval=16)])
    total, per_phase = plugin_step.iteration_cost(clock, 'k', trainer)
    assert per_phase == {'Gboth': 0.20, 'Dmain': 0.4, 'Dreg': 1.6}        # min over repeats
    assert total == pytest.approx(2 * 0.20 + 0.4 + 1.6 / 16)


def test_parse_args_adds_baseline_and_refuses_unknown_names():
    args = plugin_step.parse_args(['--losses=rf,stylegan2-g2', '--families=dcgan'])
    assert args.losses == ['stylegan2', 'rf', 'stylegan2-g2'] and args.families == ['dcgan']
    for bad in (['--losses=nope'], ['--families=vgg'], ['--repeats=0']):
        with pytest.raises(SystemExit) as err:
            plugin_step.parse_args(bad)
        assert err.value.code == 2


def test_phase_figure_and_results_file(tmp_path):
    rows = {'stylegan2': dict(total_s=1.0, ratio=1.0, phases={'Gboth': 0.45, 'Dmain': 0.55}, weights={'Gboth': 1, 'Dmain': 1}),
            'rf': dict(total_s=1.9, ratio=1.9, phases={'Gboth': 0.6, 'Dmain': 0.7}, weights={'Gboth': 2, 'Dmain': 1})}
    args = types.SimpleNamespace(argv=['--families=dcgan'])
    paths = plugin_step.save_results(str(tmp_path), {'dcgan': rows}, args)
    assert [os.path.basename(p) for p in paths] == ['plugin_step.json', 'phases_dcgan.png']
    with PIL.Image.open(paths[1]) as image:
        assert image.size[0] > 300 and image.size[1] > 200


@pytest.mark.slow
def test_times_a_tiny_dcgan_end_to_end(tmp_path, capsys):
    from benchmarks.common import digits
    pixels, labels = digits.load(32)
    data = digits.write_dataset(str(tmp_path / 'digits32.zip'), pixels[:64], labels[:64])
    results = plugin_step.main(['--families=dcgan', '--losses=clr', '--repeats=1', '--warmup=0', f'--data={data}'])
    rows = results['dcgan']
    assert set(rows) == {'stylegan2', 'clr'} and rows['stylegan2']['ratio'] == pytest.approx(1.0)
    assert rows['clr']['total_s'] > 0 and {'Gboth', 'Dmain'} <= set(rows['clr']['phases'])
    assert 'CPU ms per average iteration' in capsys.readouterr().out
