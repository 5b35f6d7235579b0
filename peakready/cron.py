"""AWS cron expressions (``cron(Minutes Hours Day-of-month Month Day-of-week Year)``).

The stack's ``backup.full_schedule`` / ``backup.incremental_schedule`` drive both the
AWS Backup plan and the lab's pgBackRest cadence, so the lab reads the same AWS form.
Supported: ``*``, ``?``, numbers, ``a-b`` ranges, ``,`` lists, ``/`` steps, month names
``JAN`` to ``DEC``, weekday names ``SUN`` to ``SAT`` (AWS numbers weekdays 1 to 7 from
Sunday)
and ``L`` (last day of the month) in the day-of-month field. All times are UTC, as in
AWS Backup.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from peakready.errors import ConfigError

_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS = {name.upper(): i for name, i in _MONTHS.items()}
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _WEEKDAYS),
    ("year", 1970, 2199, {}),
)
_EXPECTED = (
    "expected cron(Minutes Hours Day-of-month Month Day-of-week Year), e.g. cron(0 3 ? * SUN *)"
)


@dataclass(frozen=True)
class Cron:
    """A parsed AWS cron expression; :meth:`next_after` gives the next firing time."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None: "?" (any)
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int] | None  # AWS numbering, 1 = Sunday; None: "?"
    years: frozenset[int]

    @classmethod
    def parse(cls, text: str, source: str = "cron") -> Cron:
        """Parse ``cron(…)``; a malformed expression raises ConfigError naming ``source``."""
        match = re.fullmatch(r"\s*cron\((.*)\)\s*", text)
        if not match:
            raise ConfigError(f"{source}: got {text!r}, {_EXPECTED}")
        parts = match.group(1).split()
        if len(parts) != 6:
            raise ConfigError(f"{source}: got {len(parts)} fields in {text!r}, {_EXPECTED}")
        sets: list[frozenset[int] | None] = []
        last_day = False
        for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
            if part == "?" and name in ("day-of-month", "day-of-week"):
                sets.append(None)
                continue
            if part == "L" and name == "day-of-month":
                last_day = True
                sets.append(frozenset())
                continue
            sets.append(_field(part, name, low, high, names, source))
        if (sets[2] is None) == (sets[4] is None):
            raise ConfigError(
                f"{source}: {text!r}: exactly one of day-of-month and day-of-week must be '?'"
            )
        minutes, hours, days, months, weekdays, years = sets
        assert minutes is not None and hours is not None and months is not None
        assert years is not None
        return cls(text, minutes, hours, days, last_day, months, weekdays, years)

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        if self.weekdays is not None:
            return (day.isoweekday() % 7) + 1 in self.weekdays
        if self.last_day:
            return day.day == calendar.monthrange(day.year, day.month)[1]
        return self.days is not None and day.day in self.days

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing time strictly after ``moment`` (aware; naive means UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(366 * 8):  # bounded: eight years of days covers any leap-day rule
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        fire = day.replace(hour=hour, minute=minute)
                        if fire > moment:
                            return fire
            day += timedelta(days=1)
        return None

    def previous_before(self, moment: datetime) -> datetime | None:
        """The last firing time at or before ``moment`` (within eight years)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(366 * 8):
            if self._day_matches(day):
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        fire = day.replace(hour=hour, minute=minute)
                        if fire <= moment:
                            return fire
            day -= timedelta(days=1)
        return None


def _field(
    part: str, name: str, low: int, high: int, names: dict[str, int], source: str
) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        step = 1
        if "/" in item:
            item, _, step_text = item.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise ConfigError(
                    f"{source}: {name} field {part!r}: step must be a positive number"
                )
            step = int(step_text)
        if item in ("*", ""):
            start, stop = low, high
        elif "-" in item:
            first, _, last = item.partition("-")
            start, stop = (
                _value(first, name, low, high, names, source),
                _value(last, name, low, high, names, source),
            )
        else:
            start = _value(item, name, low, high, names, source)
            stop = high if step > 1 else start
        if start > stop:
            raise ConfigError(f"{source}: {name} field {part!r}: range {item} runs backwards")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int], source: str) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit() or not low <= int(text) <= high:
        allowed = f"{low}-{high}" + (f" or {'/'.join(names)}" if names else "")
        raise ConfigError(f"{source}: {name} field: got {text!r}, expected {allowed}")
    return int(text)
