"""Time as a dependency: the system clock in production, a clock tests can set."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

# The programme's calendar: a check "expiring on 1 May" expires at midnight in China, not in UTC.
PROGRAMME_TIMEZONE = ZoneInfo("Asia/Shanghai")


def local_date(moment: datetime) -> date:
    """The calendar day `moment` falls on where the programme runs."""
    return moment.astimezone(PROGRAMME_TIMEZONE).date()


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SettableClock:
    """A clock that stands still until told to move (tests, replays of a campaign)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, by: timedelta) -> None:
        self._now += by
