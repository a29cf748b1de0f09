"""``corral policy``: show, apply, simulate and suggest permission policies. Registered
by ``tui.cli``."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from pathlib import Path

from tui.core.datadir import resolve_data_dir
from tui.core.errors import UsageError
from tui.core.permissions import policy_of
from tui.core.profiles import find_profile, load_profile, profile_dirs, profile_toml, save_profile
from tui.core.simulator import simulate, suggest, summary
from tui.core.spec import spec_from_json
from tui.core.store import Store

BUNDLED = Path(__file__).resolve().parent.parent / "policies"


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


def dispatch(args: argparse.Namespace) -> Awaitable[int]:
    return {
        "show": cmd_show,
        "apply": cmd_apply,
        "simulate": cmd_simulate,
        "suggest": cmd_suggest,
    }[args.policy_command](args)


def _dirs(args: argparse.Namespace) -> list[Path]:
    return profile_dirs(resolve_data_dir(args.data_dir), BUNDLED)


async def _store(args: argparse.Namespace, body) -> int:  # type: ignore[no-untyped-def]
    from tui.cli import with_store

    return await with_store(resolve_data_dir(args.data_dir), body)


async def cmd_show(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        record = await store.get_session(args.session)
        policy = policy_of(spec_from_json(record.spec), await store.events(record.id))
        print(profile_toml(policy), end="")
        return 0

    return await _store(args, body)


async def cmd_apply(args: argparse.Namespace) -> int:
    from tui.cli import with_supervisor

    path = find_profile(args.profile, _dirs(args))

    async def via_inbox(store: Store) -> int | None:
        record = await store.get_session(args.session)
        base = policy_of(spec_from_json(record.spec), await store.events(record.id))
        policy = load_profile(path, base)
        from tui.cli import send_to_live

        if not await send_to_live(store, record.id, "policy", {"policy": policy.to_data()}):
            return None
        print(f"{record.id}: {path.stem} applied by the running corral")
        return 0

    sent = await _store(args, via_inbox)
    if sent is not None:
        return sent

    async def body(supervisor) -> int:  # type: ignore[no-untyped-def]
        record = await supervisor.store.get_session(args.session)
        policy = load_profile(path, await supervisor.policy(record.id))
        print(f"{record.id}: {await supervisor.set_policy(record.id, policy)}")
        return 0

    args.max_concurrent, args.speed = 8, 1.0
    return await with_supervisor(args, body)


async def cmd_simulate(args: argparse.Namespace) -> int:
    path = find_profile(args.profile, _dirs(args))

    async def body(store: Store) -> int:
        records = [await store.get_session(s) for s in args.session] or await store.list_sessions()
        if not records:
            raise UsageError("no sessions to simulate against")
        policy = load_profile(path)
        sessions = {r.id: (await store.events(r.id), Path(r.workspace)) for r in records}
        rows = simulate(policy, sessions)
        shown = rows if args.all else [r for r in rows if r.changed]
        for row in shown:
            print(
                f"{row.session_id[-8:]} #{row.seq:<4} {row.tool:<5} {row.recorded:>5} → "
                f"{row.simulated:<5} {row.subject[:60]}" + (f"   [{row.rule}]" if row.rule else "")
            )
        counts = summary(rows)
        print(
            f"{len(rows)} tool uses in {len(records)} sessions under {path.stem}: "
            f"{counts['allow']} allowed, {counts['ask']} asked, {counts['deny']} denied;"
            f" {sum(r.changed for r in rows)} decided differently than when they ran"
        )
        return 0

    return await _store(args, body)


async def cmd_suggest(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        record = await store.get_session(args.session)
        policy = suggest(await store.events(record.id))
        text = profile_toml(policy, f"the tightest policy for {record.title}")
        if args.save:
            saved = save_profile(
                policy,
                resolve_data_dir(args.data_dir) / "policies",
                args.save,
                f"the tightest policy for {record.title}",
            )
            print(f"saved {saved}")
        else:
            print(text, end="")
        return 0

    return await _store(args, body)
