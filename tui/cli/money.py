"""CLI commands about money: ``corral budget`` and ``corral estimate``."""

from __future__ import annotations

import argparse
from decimal import Decimal

from tui.cli.follow import follow
from tui.cli.options import open_client
from tui.core.errors import UsageError
from tui.core.money.amounts import parse_money
from tui.core.money.budget import DAILY
from tui.core.money.estimate import format_estimate
from tui.core.money.pricing import format_usd
from tui.core.session import events as ev
from tui.core.session.spec_reader import load_spec
from tui.core.store.datadir import resolve_data_dir
from tui.core.store.settings import load_settings, save_setting


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("budget", help="set or raise a session's caps, or the daily cap")
    p.add_argument("session", nargs="?", help="the session (omit with --daily)")
    p.add_argument("--max-cost", help="USD list cost cap, e.g. 2.50 ('none' lifts it)")
    p.add_argument("--max-hours", help="active hours cap ('none' lifts it)")
    p.add_argument("--daily", help="USD cap across all sessions per UTC day ('none' lifts it)")

    p = sub.add_parser("estimate", help="cost and time a spec is likely to take, before a run")
    p.add_argument("spec")


def _money(value: str | None, key: str) -> Decimal | None:
    if value is None or value.lower() == "none":
        return None
    return parse_money(value, "--" + key.replace("_", "-"), key)


async def cmd_budget(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    if args.daily is not None:
        cap = _money(args.daily, "daily")
        save_setting(data_dir, DAILY, None if cap is None else str(cap))
        print(f"daily cap: {format_usd(cap) if cap is not None else 'none'}")
    if args.session is None:
        if args.daily is None:
            daily = load_settings(data_dir).get(DAILY)
            print(f"daily cap: {format_usd(Decimal(daily)) if daily else 'none'}")
        return 0
    if args.max_cost is None and args.max_hours is None:
        raise UsageError("give --max-cost and/or --max-hours ('none' lifts a cap)")
    async with open_client(args) as client:
        record = await client.session(args.session)
        current = await client.budget(record.id)
        cost = current.max_list_cost if args.max_cost is None else _money(args.max_cost, "max_cost")
        hours = (
            current.max_active_hours
            if args.max_hours is None
            else _money(args.max_hours, "max_hours")
        )
        before = await client.state(record.id)
        with await client.subscribe() as feed:
            went_on = await client.set_budget(record.id, cost, hours)
            print(
                f"{record.id}: max_list_cost {format_usd(cost) if cost else 'none'},"
                f" max_active_hours {hours or 'none'}"
            )
            if not went_on:
                return 0
            print("the new budget allows more: resuming")
            (state,) = await follow(
                client, feed, [record.id], auto_approve_after=None, since_seq=before.last_seq
            )
    return 0 if state.stop_type == ev.END_TURN else 1


async def cmd_estimate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    async with open_client(args) as client:
        print(format_estimate(await client.estimate(spec)))
    return 0


COMMANDS = {"budget": cmd_budget, "estimate": cmd_estimate}
