"""CLI commands about money: ``corral budget`` and ``corral estimate``. Registered by
``tui.cli``."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from decimal import Decimal

from tui.core import events as ev
from tui.core.budget import DAILY, Budget, budget_of
from tui.core.datadir import resolve_data_dir
from tui.core.errors import UsageError
from tui.core.estimate import estimate_spec, format_estimate
from tui.core.pricing import format_usd
from tui.core.settings import load_settings, save_setting
from tui.core.spec import load_spec, parse_money, spec_from_json
from tui.core.store import Store
from tui.core.supervisor import Supervisor

COMMANDS = ("budget", "estimate")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("budget", help="set or raise a session's caps, or the daily cap")
    p.add_argument("session", nargs="?", help="the session (omit with --daily)")
    p.add_argument("--max-cost", help="USD list cost cap, e.g. 2.50 ('none' lifts it)")
    p.add_argument("--max-hours", help="active hours cap ('none' lifts it)")
    p.add_argument("--daily", help="USD cap across all sessions per UTC day ('none' lifts it)")

    p = sub.add_parser("estimate", help="cost and time a spec is likely to take, before a run")
    p.add_argument("spec")


def dispatch(args: argparse.Namespace) -> Awaitable[int]:
    return {"budget": cmd_budget, "estimate": cmd_estimate}[args.command](args)


def _money(value: str | None, key: str) -> Decimal | None:
    if value is None or value.lower() == "none":
        return None
    return parse_money(value, "--" + key.replace("_", "-"), key)


async def cmd_budget(args: argparse.Namespace) -> int:
    from tui.cli import follow, with_store, with_supervisor

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

    async def via_inbox(store: Store) -> tuple[str, Budget, bool]:
        record = await store.get_session(args.session)
        current = budget_of(spec_from_json(record.spec), await store.events(record.id))
        new = Budget(
            current.max_list_cost if args.max_cost is None else _money(args.max_cost, "max_cost"),
            current.max_active_hours
            if args.max_hours is None
            else _money(args.max_hours, "max_hours"),
        )
        from tui.cli import send_to_live

        live = await send_to_live(store, record.id, "budget", _payload(new))
        return record.id, new, live

    sid, new, sent = await with_store(data_dir, via_inbox)  # type: ignore[arg-type]
    print(
        f"{sid}: max_list_cost {format_usd(new.max_list_cost) if new.max_list_cost else 'none'},"
        f" max_active_hours {new.max_active_hours or 'none'}"
        + ("  (applied by the running corral)" if sent else "")
    )
    if sent:
        return 0

    async def apply(supervisor: Supervisor) -> int:
        before = await supervisor.store.state(sid)
        with supervisor.bus.subscribe() as sub:
            await supervisor.set_budget(sid, new.max_list_cost, new.max_active_hours)
            if before.stop_type != ev.BUDGET_REACHED or not supervisor.is_live(sid):
                return 0
            print("the new budget allows more: resuming")
            (state,) = await follow(
                supervisor, sub, [sid], auto_approve_after=None, since_seq=before.last_seq
            )
        return 0 if state.stop_type == ev.END_TURN else 1

    args.max_concurrent, args.speed = 8, 1.0
    return await with_supervisor(args, apply)


def _payload(budget: Budget) -> dict[str, str | None]:
    return {
        "max_list_cost": None if budget.max_list_cost is None else str(budget.max_list_cost),
        "max_active_hours": None
        if budget.max_active_hours is None
        else str(budget.max_active_hours),
    }


async def cmd_estimate(args: argparse.Namespace) -> int:
    from tui.cli import with_store

    spec = load_spec(args.spec)

    async def body(store: Store) -> int:
        print(format_estimate(await estimate_spec(store, spec)))
        return 0

    return await with_store(resolve_data_dir(args.data_dir), body)
