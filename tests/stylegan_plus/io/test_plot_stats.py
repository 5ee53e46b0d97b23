"""plot_stats and charts: panel choice, smoothing, the PNGs, the plugin-term summary, the CLI.

matplotlib is needed for the drawing tests (the `test` extra installs it); reading, grouping and
smoothing are checked without it, and no module imports it before a plot is drawn.
"""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from stylegan_plus.cli import plot_stats as plot_stats_cli
from stylegan_plus.io import charts, plot_stats
import tests

REPO = str(tests.REPO)
OLD_AND_NEW = ((250, 0, 250), (0, 200, 200))     # colours of the older and the newest snapshot grid


def _stat(mean, num=4):
    return {'num': num, 'mean': mean, 'std': 0.1}


def write_run(folder, ticks=12, plugin=True, grid_kimg=(0, 8)):
    """A run folder with stats.jsonl (G/D losses, optional CLR terms, augment, speed) and snapshot grids."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(ticks):
        line = {'Loss/scores/fake': _stat(-0.5), 'Loss/G/loss': _stat(0.7 + 0.05 * np.sin(i)),
                'Loss/D/loss': _stat(float('nan') if i == 3 else 1.3), 'Loss/r1_penalty': _stat(0.01),
                'Progress/kimg': _stat(0.8 * i, 1), 'Progress/augment': _stat(0.01 * i, 1),
                'Timing/sec_per_kimg': _stat(2.0, 1), 'timestamp': 1.0 + i}
        if plugin:
            line.update({'Loss/clr/latent': _stat(1.0 - 0.02 * i), 'Loss/clr/rec': _stat(0.7 / (1 + i))})
        lines.append(line)
    (folder / 'stats.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
    for kimg, color in zip(grid_kimg, OLD_AND_NEW):
        PIL.Image.new('RGB', (64, 64), color).save(folder / f'fakes{kimg:06d}.png')
    return folder


def test_panels_group_losses_plugin_terms_and_progress(tmp_path):
    records = plot_stats.read_stats(str(write_run(tmp_path / 'run') / 'stats.jsonl'))
    names = plot_stats.stat_names(records)
    assert 'timestamp' not in names
    assert plot_stats.plugin_terms(names) == {'clr': ['Loss/clr/latent', 'Loss/clr/rec']}
    assert plot_stats.default_panels(names) == ['Loss/G/loss', 'Loss/D/loss', 'Loss/clr/latent', 'Loss/clr/rec',
                                                'Progress/augment', 'Timing/sec_per_kimg']
    assert plot_stats.default_panels(names, with_progress=False)[-1] == 'Loss/clr/rec'
    # Benchmarks read curves through loss_series; its default stays "names containing /loss".
    kimg, series = plot_stats.loss_series(records)
    assert list(series) == ['Loss/G/loss', 'Loss/D/loss'] and np.isnan(series['Loss/D/loss'][3])
    assert kimg[2] == pytest.approx(1.6)


def test_smooth_is_a_nan_aware_centred_mean():
    y = np.array([0.0, 3.0, np.nan, 3.0, 6.0, 9.0])
    assert np.allclose(charts.smooth(y, window=3), [1.5, 1.5, 3.0, 4.5, 6.0, 7.5])
    assert np.array_equal(charts.smooth(y[:3], window=3), y[:3], equal_nan=True)   # too short: unchanged
    assert np.allclose(charts.smooth(np.arange(20.0), window=1), np.arange(20.0))
    assert np.isnan(charts.smooth(np.full(5, np.nan), window=3)).all()
    # The default window grows with the series: a tenth of its length, odd, at least 3.
    noisy = np.tile([0.0, 1.0], 50)
    assert np.ptp(charts.smooth(noisy)[5:-5]) < 0.1 < np.ptp(noisy)


def test_term_changes_first_and_last_tick(tmp_path):
    records = plot_stats.read_stats(str(write_run(tmp_path / 'run') / 'stats.jsonl'))
    changes = {c[0]: c[1:] for c in plot_stats.term_changes(records)}
    assert set(changes) == {'Loss/clr/latent', 'Loss/clr/rec'}
    first, first_kimg, last, last_kimg = changes['Loss/clr/rec']
    assert (first, first_kimg) == (pytest.approx(0.7), 0.0) and last == pytest.approx(0.7 / 12)
    assert last_kimg == pytest.approx(8.8)
    text = plot_stats.describe_change(('Loss/clr/rec', first, first_kimg, last, last_kimg))
    assert text.startswith('Loss/clr/rec: 0.7 (at 0.0 kimg) -> 0.05833 (at 8.8 kimg)') and text.endswith('-92 %')


def test_losses_and_progress_pngs(tmp_path):
    pytest.importorskip('matplotlib')
    run = write_run(tmp_path / 'run')
    plotted = plot_stats.plot_losses(str(run / 'stats.jsonl'), str(run / 'losses.png'))
    assert len(plotted) == 6
    with PIL.Image.open(run / 'losses.png') as img:
        assert img.format == 'PNG' and img.width > img.height > 300
        pixels = np.asarray(img.convert('RGB')).astype(int)
    # The CLR panels are green, G blue: both colours must be on the page.
    assert (np.abs(pixels - [44, 160, 44]).sum(-1) < 40).sum() > 50
    assert (np.abs(pixels - [31, 119, 180]).sum(-1) < 40).sum() > 50
    assert plot_stats.newest_grid(str(run)).endswith('fakes000008.png')
    plot_stats.plot_progress(str(run), str(run / 'progress.png'))
    with PIL.Image.open(run / 'progress.png') as img:
        pixels = np.asarray(img.convert('RGB')).astype(int)
    # The newest grid is drawn, not the older one.
    assert (np.abs(pixels - OLD_AND_NEW[1]).sum(-1) == 0).sum() > 1000
    assert (np.abs(pixels - OLD_AND_NEW[0]).sum(-1) < 30).sum() == 0
    assert not [name for name in os.listdir(run) if name.endswith('.tmp')]


def test_plot_losses_rejects_unknown_stats(tmp_path):
    run = write_run(tmp_path / 'run')
    with pytest.raises(ValueError, match=r"no statistic named 'Loss/clr/nope'.*Loss/clr/rec"):
        plot_stats.plot_losses(str(run / 'stats.jsonl'), str(run / 'x.png'), names=['Loss/clr/nope'])
    (run / 'stats.jsonl').write_text('')
    with pytest.raises(ValueError, match='holds no ticks yet'):
        plot_stats.plot_losses(str(run / 'stats.jsonl'), str(run / 'x.png'))


def test_cli_writes_both_pngs_and_summarises(tmp_path):
    pytest.importorskip('matplotlib')
    run = write_run(tmp_path / 'run')
    result = CliRunner().invoke(plot_stats_cli.main, [str(run), '--summary'])
    assert result.exit_code == 0, result.output
    assert (run / 'losses.png').is_file() and (run / 'progress.png').is_file()
    assert 'Plugin terms, first tick -> last tick:' in result.output
    assert '  Loss/clr/latent: 1 (at 0.0 kimg) -> 0.78 (at 8.8 kimg), -22 %' in result.output


def test_cli_user_errors_are_clean(tmp_path, monkeypatch):
    run = write_run(tmp_path / 'run')
    result = CliRunner().invoke(plot_stats_cli.main, [str(run), '--stat=Loss/G/los'])
    assert result.exit_code == 1 and "no statistic named 'Loss/G/los'" in result.output
    assert isinstance(result.exception, SystemExit)
    result = CliRunner().invoke(plot_stats_cli.main, [str(tmp_path)])
    assert result.exit_code == 2 and 'has no stats.jsonl' in result.output

    def missing():
        raise charts.PlotUnavailable('matplotlib is needed for plots: pip install matplotlib')
    monkeypatch.setattr(charts, 'pyplot', missing)
    result = CliRunner().invoke(plot_stats_cli.main, [str(run), '--summary'])
    assert result.exit_code == 1 and 'pip install matplotlib' in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.slow
def test_no_module_imports_matplotlib_before_plotting():
    code = ('import sys; import stylegan_plus.io.plot_stats, stylegan_plus.io.charts, stylegan_plus.cli.plot_stats, '
            'metrics.digits_check, stylegan_plus.training.loop, stylegan_plus.training.progress; '
            'assert "matplotlib" not in sys.modules, "imported matplotlib"')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=120)
