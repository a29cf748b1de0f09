"""``corral policy``: show, apply, simulate and suggest permission policies."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path

from tui.cli.options import open_client
from tui.core.errors import UsageError
from tui.core.permissions.profiles import (
    find_profile,
    load_profile,
    profile_dirs,
    profile_toml,
    save_profile,
)
from tui.core.permissions.simulator import simulate, suggest, summary
from tui.core.printable import printable_line
from tui.core.store.datadir import resolve_data_dir
from tui.data import policies_dir


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    policy = sub.add_parser("policy", help="show, apply, simulate or suggest permission policies")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    p = actions.add_parser("show", help="a session's policy now, as a profile file")
    p.add_argument("session")
    p = actions.add_parser("apply", help="give a session a profile from its next tool use on")
    p.add_argument("session")
    p.add_argument("profile", help="a profile name (policies/NAME.toml) or a .toml path")
    p = actions.add_parser(
        "simulate", help="what a profile would have allowed, asked or denied in past sessions"
    )
    p.add_argument("profile")
    p.add_argument("--session", action="append", default=[], help="only these (repeatable)")
    p.add_argument("--all", action="store_true", help="list every tool use, not only changes")
    p = actions.add_parser("suggest", help="the tightest policy that allows what a session did")
    p.add_argument("session")
    p.add_argument("--save", metavar="NAME", help="save it as a profile in the data dir")


def _dirs(args: argparse.Namespace) -> list[Path]:
    return profile_dirs(resolve_data_dir(args.data_dir), policies_dir())


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        print(profile_toml(await client.policy(args.session)), end="")
    return 0


async def cmd_apply(args: argparse.Namespace) -> int:
    path = find_profile(args.profile, _dirs(args))
    async with open_client(args) as client:
        record = await client.session(args.session)
        policy = load_profile(path, await client.policy(record.id))
        print(f"{record.id}: {await client.set_policy(record.id, policy)}")
    return 0


async def cmd_simulate(args: argparse.Namespace) -> int:
    path = find_profile(args.profile, _dirs(args))
    policy = load_profile(path)
    async with open_client(args) as client:
        records = [await client.session(s) for s in args.session] or await client.sessions()
        if not records:
            raise UsageError("no sessions to simulate against")
        sessions = {r.id: (await client.events(r.id), Path(r.workspace)) for r in records}
    rows = simulate(policy, sessions)
    shown = rows if args.all else [r for r in rows if r.changed]
    for row in shown:
        print(
            f"{row.session_id[-8:]} #{row.seq:<4} {row.tool:<5} {row.recorded:>5} → "
            f"{row.simulated:<5} {printable_line(row.subject[:60])}"
            + (f"   [{printable_line(row.rule)}]" if row.rule else "")
        )
    counts = summary(rows)
    print(
        f"{len(rows)} tool uses in {len(records)} sessions under {path.stem}: "
        f"{counts['allow']} allowed, {counts['ask']} asked, {counts['deny']} denied;"
        f" {sum(r.changed for r in rows)} decided differently than when they ran"
    )
    return 0


async def cmd_suggest(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        record = await client.session(args.session)
        policy = suggest(await client.events(record.id))
    note = f"the tightest policy for {record.title}"
    if args.save:
        saved = save_profile(policy, resolve_data_dir(args.data_dir) / "policies", args.save, note)
        print(f"saved {saved}")
    else:
        print(profile_toml(policy, note), end="")
    return 0


SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "show": cmd_show,
    "apply": cmd_apply,
    "simulate": cmd_simulate,
    "suggest": cmd_suggest,
}


def cmd_policy(args: argparse.Namespace) -> Awaitable[int]:
    return SUBCOMMANDS[args.policy_command](args)


COMMANDS = {"policy": cmd_policy}
