"""Clocks: the system clock for production, a manual clock for tests and demos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ordercore.values import check_aware

__all__ = ["ManualClock", "SystemClock"]


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; ``tick`` (default zero) is added after every reading."""

    def __init__(self, start: datetime, tick: timedelta = timedelta(0)) -> None:
        self._now = check_aware(start, "start")
        self._tick = tick

    def now(self) -> datetime:
        current = self._now
        self._now = current + self._tick
        return current

    def advance(self, delta: timedelta) -> datetime:
        self._now = self._now + delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = check_aware(moment, "moment")
