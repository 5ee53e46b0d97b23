"""`--lr-schedule`: a learning-rate schedule applied by the loop to every optimizer of a run.

Spellings: `none` (constant, the official loop) or `step:FACTOR:EVERY`, which multiplies every
optimizer's learning rate by FACTOR once every EVERY iterations (Dist-GAN's 2-D code decays by
0.9 every 10 000 of its global steps, 7 to an iteration: `step:0.9:1429`). The factor in force at iteration `batch_idx` is
`FACTOR ** (batch_idx // EVERY)`, a function of the iteration count alone, so a resumed run
continues on exactly the rates of the uninterrupted one without any saved state: the loop keeps
each parameter group's configured rate and sets `configured * factor` before the phases run.
"""

import dataclasses
import math


class ScheduleError(ValueError):
    """A `--lr-schedule` spelling that cannot be used; the message names it and what is accepted."""


ACCEPTED = 'none, or step:FACTOR:EVERY (FACTOR > 0, EVERY a whole number of iterations >= 1; e.g. step:0.9:10000)'


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """lr = configured lr * factor ** (iteration // every)."""
    factor: float
    every: int

    def factor_at(self, batch_idx):
        """The multiplier of the configured rates at iteration `batch_idx` (0-based): a float > 0."""
        return self.factor ** (int(batch_idx) // self.every)

    def spelling(self):
        """The canonical `step:FACTOR:EVERY` text (what training_options.json records)."""
        return f'step:{self.factor:g}:{self.every}'


def parse_schedule(text):
    """The schedule of a `--lr-schedule` value: a StepSchedule, or None for `none`/None.

    Raises ScheduleError naming the value and the accepted spellings.
    """
    if text is None:
        return None
    spelled = str(text).strip()
    if spelled.lower() == 'none':
        return None
    parts = spelled.split(':')
    if len(parts) != 3 or parts[0].lower() != 'step':
        raise ScheduleError(f'--lr-schedule={text}: not a schedule; accepted: {ACCEPTED}')
    try:
        factor = float(parts[1])
    except ValueError:
        raise ScheduleError(f'--lr-schedule={text}: FACTOR {parts[1]!r} is not a number; accepted: {ACCEPTED}') from None
    if not (math.isfinite(factor) and factor > 0):
        raise ScheduleError(f'--lr-schedule={text}: FACTOR {parts[1]} must be a finite number > 0; '
                            f'accepted: {ACCEPTED}')
    try:
        every = int(parts[2])
    except ValueError:
        raise ScheduleError(f'--lr-schedule={text}: EVERY {parts[2]!r} is not a whole number; '
                            f'accepted: {ACCEPTED}') from None
    if every < 1:
        raise ScheduleError(f'--lr-schedule={text}: EVERY {parts[2]} must be at least 1; accepted: {ACCEPTED}')
    return StepSchedule(factor=factor, every=every)


def canonical_spelling(text):
    """The text training_options.json records for a `--lr-schedule` value, or None when it is constant."""
    schedule = parse_schedule(text)
    return None if schedule is None or schedule.factor == 1 else schedule.spelling()


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
