"""Watching sessions the server runs: ``corral attach SESSION`` follows one to its next
stop, ``corral logs SESSION [-f]`` prints its log (and keeps printing, like
``docker logs -f``). Ctrl-C leaves either; the session goes on."""

from __future__ import annotations

import argparse

from tui.cli.follow import follow
from tui.cli.options import bounded, open_client
from tui.cli.output import event_line
from tui.core.printable import printable_line
from tui.core.session import events as ev
from tui.core.session.state import TERMINATED, WORKING

CONTEXT_LINES = 10


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("attach", help="follow a running session until it next stops")
    p.add_argument("session")
    p = sub.add_parser("logs", help="a session's log; -f keeps printing new events")
    p.add_argument("session")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing (Ctrl-C leaves)")
    p.add_argument(
        "-n", "--tail", type=bounded(int, 1, 10**9), help="only the last N events (default: all)"
    )


async def cmd_attach(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        record = await client.session(args.session)
        title = printable_line(record.title)
        with await client.subscribe(record.id) as feed:
            state = await client.state(record.id)
            start = max(0, state.last_seq - CONTEXT_LINES)
            for event in await client.events(record.id, after_seq=start):
                print(event_line(event, {record.id: title}), flush=True)
            if state.status not in WORKING:
                label = state.stop_type or state.status
                print(f"{record.id} is {state.status} ({label}): `corral send` gives it more work")
                return 0
            (state,) = await follow(
                client, feed, [record.id], auto_approve_after=None, since_seq=state.last_seq
            )
    return 0 if state.stop_type in (ev.END_TURN, None) else 1


async def cmd_logs(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        record = await client.session(args.session)
        titles = {record.id: printable_line(record.title)}
        with await client.subscribe(record.id) as feed:
            last = (await client.state(record.id)).last_seq
            start = 0 if args.tail is None else max(0, last - args.tail)
            seen = start
            for event in await client.events(record.id, after_seq=start):
                print(event_line(event, titles), flush=True)
                seen = event.seq
            if not args.follow:
                return 0
            async for item in feed:
                if isinstance(item, ev.Event) and item.seq > seen:
                    seen = item.seq
                    print(event_line(item, titles), flush=True)
                    if item.type == ev.STATUS_TERMINATED:
                        return 0
            state = await client.state(record.id)
    return 0 if state.status == TERMINATED else 1


COMMANDS = {"attach": cmd_attach, "logs": cmd_logs}
