"""Identifiers and timestamps.

Ids sort by creation time (a millisecond clock followed by randomness), so an
index on them stays append-friendly and a listing by id reads in time order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime


def new_id(prefix: str) -> str:
    """A unique id such as ``sevt_0190f1c2a3b4e1f2...``: 48 bits of milliseconds, 72 random.

    Hex keeps it cheap (this runs for every event) and sortable in ASCII order.
    """
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{millis:012x}{os.urandom(9).hex()}"


def session_id() -> str:
    return new_id("sesn")


def event_id() -> str:
    return new_id("sevt")


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


def checkpoint_id() -> str:
    return new_id("chkp")
