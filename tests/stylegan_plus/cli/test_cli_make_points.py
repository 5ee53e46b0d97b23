"""`python -m stylegan_plus.cli.make_points`: the toy point sets as files `train.py --cfg=toy` reads."""

import numpy as np
from click.testing import CliRunner

from stylegan_plus.cli import make_points
from stylegan_plus.data import toy_data
from stylegan_plus.data.datasets.point_cloud import PointCloudDataset


def test_writes_the_named_set_exactly_at_dest(tmp_path):
    dest = tmp_path / 'sets' / 'grid.npy'
    result = CliRunner().invoke(make_points.main, [f'--dest={dest}', '--kind=grid25', '--std=0.05',
                                                   '--points-per-mode=40', '--seed=3'])
    assert result.exit_code == 0, result.output
    assert 'Wrote 1000 points (grid25, 25 modes, std 0.05)' in result.output
    assert sorted(p.name for p in dest.parent.iterdir()) == ['grid.npy']      # no temporary, nothing appended
    np.testing.assert_array_equal(np.load(dest), toy_data.make_toy_points('grid25', 0.05, 40, seed=3)[0])
    assert len(PointCloudDataset(path=str(dest))) == 1000                   # what --cfg=toy reads


def test_bad_values_are_named(tmp_path):
    runner = CliRunner()
    for args, message in [([f'--dest={tmp_path}/ring'], "does not end in .npy"),
                          ([f'--dest={tmp_path}/r.npy', '--std=0'], "'--std': 0.0 is not in the range x>0"),
                          ([f'--dest={tmp_path}/r.npy', '--kind=ring9'], "'ring9' is not one of 'ring8', 'grid25'"),
                          ([f'--dest={tmp_path}/r.npy', '--points-per-mode=0'], '--points-per-mode')]:
        result = runner.invoke(make_points.main, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not list(tmp_path.iterdir())
