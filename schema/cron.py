"""Five-field cron expressions as schedules use them: parsed here, run by Temporal Schedules.

Only what both this parser and Temporal's agree on is accepted: `minute hour day-of-month month
day-of-week`, each field `*`, a number, a range `a-b`, a list `a,b`, and a step `*/n` or `a-b/n`. No
names (`MON`, `JAN`), no `?`, `L`, `W` or `#`, no `@hourly` macros, and not both day-of-month and
day-of-week restricted at once (cron ORs them, which few authors expect). Times are UTC.

`min_interval_minutes` is what an operator limit is checked against: the shortest gap between two
consecutive fire times. Within one day the fire times are `hours x minutes`; across midnight the gap
is the wrap-around of that set. A schedule that fires on fewer days only has longer gaps, so the
value is exact for daily schedules and a safe lower bound otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CRON_CHARS = 128
_FIELD_CHARS = re.compile(r"^[0-9*/,\-]+$")
# (name, lowest, highest); day-of-week 0-6 with 0 = Sunday (7 is refused: Temporal and cron differ).
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
)
MINUTES_PER_DAY = 24 * 60


class CronError(ValueError):
    """The expression is not a schedule cron; the message names the field and what is wrong."""


@dataclass(frozen=True, slots=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_restricted: bool

    def min_interval_minutes(self) -> int:
        times = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        gaps.append(MINUTES_PER_DAY - times[-1] + times[0])  # the last run of a day to the next day's first
        return min(gaps)


def _number(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise CronError(f"{name} field: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} field: {value} is outside {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name} field: empty list entry")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            step = _number(step_text, name, 1, high - low + 1)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, name, low, high), _number(last, name, low, high)
            if start > end:
                raise CronError(f"{name} field: range {base} runs backwards")
        elif step_text:
            # `5/15` reads differently in different cron dialects: ask for `5-59/15`.
            raise CronError(
                f"{name} field: {part!r} steps from a single value; "
                f"write a range, e.g. {base}-{high}/{step_text}"
            )
        else:
            start = end = _number(base, name, low, high)
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> Cron:
    """Parse a five-field cron expression; raises CronError naming what is wrong."""
    if len(expression) > MAX_CRON_CHARS:
        raise CronError(f"is longer than {MAX_CRON_CHARS} characters")
    fields = expression.split()
    if len(fields) != len(_FIELDS) or " ".join(fields) != expression.strip():
        raise CronError(
            "must have five fields separated by spaces: minute hour day-of-month month day-of-week"
        )
    parsed: list[frozenset[int]] = []
    for text, (name, low, high) in zip(fields, _FIELDS, strict=True):
        if not _FIELD_CHARS.match(text):
            raise CronError(f"{name} field: {text!r} may use only digits and * / , -")
        parsed.append(_field(text, name, low, high))
    if fields[2] != "*" and fields[4] != "*":
        raise CronError(
            "restricts both day-of-month and day-of-week (cron would run on either); restrict one"
        )
    return Cron(
        expression=expression,
        minutes=parsed[0],
        hours=parsed[1],
        days_restricted=any(f != "*" for f in fields[2:]),
    )
