"""LiveProgress: the tqdm bar on a terminal, plain `progress:` lines elsewhere, the latest loss
terms without disturbing the tick statistics, and nothing at all on ranks other than 0. Also the
TensorBoard layout that groups the plugin terms per plugin."""

import io
import sys

import pytest

import dnnlib
from stylegan_plus.training import progress
from torch_utils import training_stats


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    training_stats.reset()
    fake = Clock()
    monkeypatch.setattr(progress.time, 'time', fake)
    yield fake
    training_stats.reset()


def report_losses(g, rec):
    training_stats.report('Loss/clr/rec', [rec])
    training_stats.report('Loss/scores/fake', [5.0])    # not a loss: never shown
    training_stats.report('Loss/G/loss', [g])           # shown first all the same
    training_stats.report('Loss/D/reg', [1e-4])         # a regulariser: not shown


def test_plain_lines_every_30_s_with_eta_and_terms(clock):
    tick_stats = training_stats.Collector(regex='.*')
    out = io.StringIO()
    live = progress.LiveProgress(total_kimg=10, start_nimg=0, stream=out)
    assert live.bar is None
    report_losses(0.5, 0.25)
    clock.now += 29
    live.update(1000)
    assert out.getvalue() == ''                 # under 30 s: silent
    clock.now += 11                             # 40 s for 2 kimg: 20 s/kimg, 8 kimg to go
    live.update(2000)
    assert out.getvalue() == 'progress: kimg 2.0/10 (20 %), 20.00 sec/kimg, ETA 2m 40s; G 0.5 clr/rec 0.25\n'
    # The tick line restarts the clock: the next plain line waits another 30 s.
    live.tick()
    report_losses(0.7, 0.75)
    clock.now += 29
    live.update(3000)
    assert out.getvalue().count('\n') == 1
    clock.now += 2
    live.update(3500)
    assert out.getvalue().splitlines()[-1].endswith('; G 0.7 clr/rec 0.75')
    # The tick collector still sees every value reported since it started.
    tick_stats.update()
    assert tick_stats.num('Loss/G/loss') == 2 and tick_stats.mean('Loss/clr/rec') == pytest.approx(0.5)


def test_bar_on_a_terminal(clock):
    out = Terminal()
    live = progress.LiveProgress(total_kimg=12, start_nimg=4000, stream=out)
    assert live.bar is not None and live.bar.n == pytest.approx(4.0)
    report_losses(0.5, 0.25)
    clock.now += 2
    live.update(6000)
    text = out.getvalue()
    assert '6.0/12 kimg' in text and 's/kimg, G 0.5 clr/rec 0.25]' in text
    live.tick()
    assert out.getvalue().endswith('\r')        # the bar leaves its line for the tick line
    live.close()
    assert live.bar is None


def test_other_ranks_and_multi_process_runs(clock):
    out = Terminal()
    live = progress.LiveProgress(total_kimg=5, start_nimg=0, enabled=False, stream=out)
    clock.now += 100
    live.update(4000)
    live.tick()
    live.close()
    assert out.getvalue() == '' and live.collector is None and live.bar is None
    # Without terms (several processes), no collector is made and the line has no terms.
    out = io.StringIO()
    live = progress.LiveProgress(total_kimg=5, start_nimg=0, terms=False, stream=out)
    report_losses(0.5, 0.25)
    clock.now += 31
    live.update(1000)
    assert live.collector is None and out.getvalue().rstrip('\n').endswith('ETA 2m 04s')


def test_tensorboard_layout_groups_plugin_terms(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def __init__(self, log_dir):
            del log_dir

        def add_custom_scalars(self, layout):
            calls.append(('layout', layout))

        def add_scalar(self, name, value, global_step, walltime):
            calls.append((name, value, global_step))

        def flush(self):
            pass

        def close(self):
            pass

    fake = type(sys)('torch.utils.tensorboard')
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', fake)
    logs = progress.RunLogs(str(tmp_path), enabled=True)
    stats = dnnlib.EasyDict({name: dnnlib.EasyDict(num=1, mean=0.5, std=0.0)
                             for name in ('Loss/G/loss', 'Loss/scores/fake', 'Loss/clr/latent', 'Loss/clr/rec')})
    logs.write(stats, {}, cur_nimg=1000, start_time=0)
    logs.write(stats, {}, cur_nimg=2000, start_time=0)
    logs.close()
    layouts = [call[1] for call in calls if call[0] == 'layout']
    assert layouts == [{'Plugin clr': {'latent': ['Multiline', ['Loss/clr/latent']],
                                       'rec': ['Multiline', ['Loss/clr/rec']]}}]
    # The scalars keep their stats.jsonl names.
    assert ('Loss/clr/rec', 0.5, 2) in calls and ('Loss/G/loss', 0.5, 1) in calls


def test_tensorboard_events_hold_the_layout(tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
    logs = progress.RunLogs(str(tmp_path), enabled=True)
    logs.write(dnnlib.EasyDict({'Loss/clr/rec': dnnlib.EasyDict(num=1, mean=0.25, std=0.0)}), {}, cur_nimg=4000,
               start_time=0)
    logs.close()
    events = event_accumulator.EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.value for e in events.Scalars('Loss/clr/rec')] == [0.25]
    assert 'custom_scalars__config__' in events.Tags()['tensors']
