"""`--lr-schedule`: a learning-rate schedule applied by the loop to every optimizer of a run.

Spellings: `none` (constant, the official loop); `step:FACTOR:EVERY`, which multiplies every
optimizer's learning rate by FACTOR once every EVERY iterations (Dist-GAN's 2-D code decays by
0.9 every 10 000 of its global steps, 7 to an iteration: `step:0.9:1429`); and `linear:ITERS`,
which lowers every rate in a straight line from the configured value at iteration 0 to 0 at
iteration ITERS and keeps it at 0 after (AdvLatGAN's training scripts, after the
pytorch-gan-collections convention, decay to 0 over the run's length: give ITERS = the run's
iterations, total kimg * 1000 / batch). The factor in force at iteration `batch_idx` is a
function of the iteration count alone, so a resumed run continues on exactly the rates of the
uninterrupted one without any saved state: the loop keeps each parameter group's configured rate
and sets `configured * factor` before the phases run.
"""

import dataclasses
import math


class ScheduleError(ValueError):
    """A `--lr-schedule` spelling that cannot be used; the message names it and what is accepted."""


ACCEPTED = ('none, step:FACTOR:EVERY (FACTOR > 0, EVERY a whole number of iterations >= 1; e.g. step:0.9:10000), '
            'or linear:ITERS (ITERS a whole number of iterations >= 1; e.g. linear:19532)')


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """lr = configured lr * factor ** (iteration // every)."""
    factor: float
    every: int

    def factor_at(self, batch_idx):
        """The multiplier of the configured rates at iteration `batch_idx` (0-based): a float > 0."""
        return self.factor ** (int(batch_idx) // self.every)

    def is_constant(self):
        """True when every factor is 1 (then nothing is recorded: the official constant rates)."""
        return self.factor == 1

    def spelling(self):
        """The canonical `step:FACTOR:EVERY` text (what training_options.json records)."""
        return f'step:{self.factor:g}:{self.every}'


@dataclasses.dataclass(frozen=True)
class LinearSchedule:
    """lr = configured lr * max(0, 1 - iteration / iters): from the configured rate down to 0 at `iters`."""
    iters: int

    def factor_at(self, batch_idx):
        """The multiplier of the configured rates at iteration `batch_idx` (0-based): a float in [0, 1]."""
        return max(0.0, 1.0 - int(batch_idx) / self.iters)

    def is_constant(self):
        """Never: the rates always fall."""
        return False

    def spelling(self):
        """The canonical `linear:ITERS` text (what training_options.json records)."""
        return f'linear:{self.iters}'


def _whole_number(text, part, name):
    """`part` of a --lr-schedule value as an int >= 1; ScheduleError naming it otherwise."""
    try:
        value = int(part)
    except ValueError:
        raise ScheduleError(f'--lr-schedule={text}: {name} {part!r} is not a whole number; '
                            f'accepted: {ACCEPTED}') from None
    if value < 1:
        raise ScheduleError(f'--lr-schedule={text}: {name} {part} must be at least 1; accepted: {ACCEPTED}')
    return value


def parse_schedule(text):
    """The schedule of a `--lr-schedule` value: a StepSchedule or LinearSchedule, or None for `none`/None.

    Raises ScheduleError naming the value and the accepted spellings.
    """
    if text is None:
        return None
    spelled = str(text).strip()
    if spelled.lower() == 'none':
        return None
    parts = spelled.split(':')
    if len(parts) == 2 and parts[0].lower() == 'linear':
        return LinearSchedule(iters=_whole_number(text, parts[1], 'ITERS'))
    if len(parts) != 3 or parts[0].lower() != 'step':
        raise ScheduleError(f'--lr-schedule={text}: not a schedule; accepted: {ACCEPTED}')
    try:
        factor = float(parts[1])
    except ValueError:
        raise ScheduleError(f'--lr-schedule={text}: FACTOR {parts[1]!r} is not a number; accepted: {ACCEPTED}') from None
    if not (math.isfinite(factor) and factor > 0):
        raise ScheduleError(f'--lr-schedule={text}: FACTOR {parts[1]} must be a finite number > 0; '
                            f'accepted: {ACCEPTED}')
    return StepSchedule(factor=factor, every=_whole_number(text, parts[2], 'EVERY'))


def canonical_spelling(text):
    """The text training_options.json records for a `--lr-schedule` value, or None when it is constant."""
    schedule = parse_schedule(text)
    return None if schedule is None or schedule.is_constant() else schedule.spelling()


def _param_groups(optimizer):
    # The loop may wrap an optimizer (gradient averaging over rounds/processes); the groups are inside.
    return getattr(optimizer, 'optimizer', optimizer).param_groups


def configured_rates(optimizers):
    """{optimizer key: [lr of each parameter group]} as built from the options (before any resume)."""
    return {key: [group['lr'] for group in _param_groups(opt)] for key, opt in optimizers.items()}


def apply_factor(optimizers, rates, factor):
    """Set every group's lr to its configured rate times `factor` (exact: one product, never compounded)."""
    for key, opt in optimizers.items():
        for group, rate in zip(_param_groups(opt), rates[key]):
            group['lr'] = rate * factor
