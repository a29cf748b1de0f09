"""Options several commands share, argparse types that refuse nonsense at the door, and
the one way a command gets its client."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from tui.client.connect import connect
from tui.client.protocol import CorralClient
from tui.core.printable import printable_line
from tui.core.store.datadir import resolve_data_dir


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the exit code 2), like every other
    error of ours; ``--help`` still prints the full usage."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {printable_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` from ``low`` to ``high`` (nan, inf, 0 workers
    and the like are refused)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low <= value <= high):  # also false for nan
            raise argparse.ArgumentTypeError(f"{text!r} must be from {low:g} to {high:g}")
        return value

    return parse


def runner_options(p: argparse.ArgumentParser) -> None:
    """For commands that start sessions (and the server, if none runs)."""
    p.add_argument("--headless", action="store_true", help="no terminal app: print events as lines")
    engine_options(p)


def engine_options(p: argparse.ArgumentParser) -> None:
    """The engine's settings: the server's, when a command starts it."""
    p.add_argument(
        "--max-concurrent", type=bounded(int, 1, 1024), default=8, help="sessions working at once"
    )
    p.add_argument(
        "--speed",
        type=bounded(float, 0, 100),
        default=1.0,
        help="scale scripted models' latency (0 = no waiting)",
    )


@asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[CorralClient]:
    """The client for this command: the data dir's server (started if none runs, with
    this command's engine settings), or ``--server URL``'s."""
    client = await connect(
        resolve_data_dir(args.data_dir), server=args.server, serve_args=serve_args(args)
    )
    try:
        yield client
    finally:
        await client.close()


def serve_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The engine settings a command gives the server it starts."""
    return (
        "--max-concurrent",
        str(getattr(args, "max_concurrent", 8)),
        "--speed",
        repr(getattr(args, "speed", 1.0)),
    )
