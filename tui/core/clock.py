"""The clock every event and record is stamped with: timezone-aware UTC, replaceable so
snapshot tests can freeze it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def _system_now() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_now


def utc_now() -> datetime:
    """The time every event and record is stamped with (timezone-aware UTC)."""
    return _clock()


def utc_day_start() -> datetime:
    """Midnight UTC of the current day: where the daily cap's count starts."""
    return utc_now().replace(hour=0, minute=0, second=0, microsecond=0)


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Replace the clock (snapshot tests freeze it); None restores the system clock."""
    global _clock
    _clock = clock or _system_now


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
