"""The sandbox interface: a persistent shell over the session's workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BashResult:
    output: str
    exit_code: int | None  # None when the command was killed (timeout) or the shell died
    timed_out: bool = False
    note: str = ""  # what the sandbox had to do, e.g. "shell restarted"


class Sandbox(Protocol):
    backend: str  # "local" or "docker"
    isolation: str  # human words for what confines the commands
    notice: str  # why this backend and not the one the spec hoped for ("" if none)
    workspace: Path

    async def start(self) -> None: ...

    async def bash(self, command: str, timeout_s: float) -> BashResult: ...

    async def restart(self) -> None: ...

    async def close(self) -> None: ...
