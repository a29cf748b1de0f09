"""Identifiers.

Ids sort by creation time (a millisecond clock followed by randomness), so an
index on them stays append-friendly and a listing by id reads in time order.
"""

from __future__ import annotations

import os
import time


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


def checkpoint_id() -> str:
    return new_id("chkp")
