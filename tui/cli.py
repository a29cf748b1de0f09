"""The ``corral`` command line. Errors become one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import humanize

from tui import cli_money, cli_policy, cli_timeline
from tui.core import events as ev
from tui.core.archive import IMPORTED, import_pending, review
from tui.core.budget import budget_of
from tui.core.bus import Subscription
from tui.core.datadir import db_path, resolve_data_dir
from tui.core.describe import describe
from tui.core.errors import CorralError, UsageError
from tui.core.estimate import estimate_spec, forecast
from tui.core.history import cache_saving
from tui.core.ids import utc_now
from tui.core.permissions import policy_of
from tui.core.pricing import default_pricing, format_usd, hosted_cost
from tui.core.printable import printable_line
from tui.core.profiles import profile_toml
from tui.core.spec import DEFAULT_MODEL, SessionSpec, ad_hoc_spec, load_spec, spec_from_json
from tui.core.state import SessionState
from tui.core.store import SessionRecord, Store
from tui.core.supervisor import Supervisor, finished_after

DEMO_APPROVAL_PAUSE_S = 3.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def bundled_sessions_dir() -> Path:
    return REPO_ROOT / "sessions"


def demo_specs() -> list[Path]:
    return sorted(bundled_sessions_dir().glob("demo-*.toml"))


# -- output helpers ---------------------------------------------------------------------


def short(session_id: str) -> str:
    # Ids start with their creation time, so the random tail is what tells them apart.
    return session_id[:5] + "…" + session_id[-8:]


def event_line(event: ev.Event, titles: dict[str, str]) -> str:
    title = titles.get(event.session_id, short(event.session_id))
    return f"{event.processed_at:%H:%M:%S} {title[:22]:<22} #{event.seq:<3} {describe(event)}"


def session_json(record: SessionRecord, now: datetime) -> dict[str, Any]:
    """A session shaped like the SDK's ``BetaManagedAgentsSession`` where it has the field."""
    state = record.state or SessionState(record.id, record.created_at)
    pricing = default_pricing()
    cost = state.list_cost(pricing, now)
    u = state.usage
    spec = record.spec
    budget = spec.get("max_list_cost")
    return {
        "id": record.id,
        "type": "session",
        "title": record.title,
        "status": state.status,
        "stop_reason": state.stop_type,
        "created_at": record.created_at.isoformat(),
        "updated_at": (state.updated_at or record.created_at).isoformat(),
        "agent": {
            "name": spec["agent"].get("name", "agent"),
            "model": {"id": record.model},
            "system": spec["agent"].get("system", ""),
            "tools": spec["agent"].get("tools", {}),
        },
        "sandbox": {"backend": record.sandbox, "isolation": record.isolation},
        "workspace": record.workspace,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "list_cost": None if cost is None else str(cost),
            "hosted_equivalent_cost": str(hosted) if (hosted := hosted_cost(state, now)) else None,
            "model_requests": u.requests,
        },
        "stats": {
            "active_seconds": float(round(state.active_at(now), 3)),
            "duration_seconds": float(round(state.duration_at(now), 3)),
        },
        "budget": {"type": "limit", "max_list_cost": budget} if budget else None,
        "pending_approvals": sorted(state.pending_approvals),
        "metadata": record.metadata,
    }


def print_table(rows: list[list[str]], header: list[str]) -> None:
    rows = [[printable_line(str(c)) for c in row] for row in rows]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def summary_rows(records: list[SessionRecord], now: datetime) -> list[list[str]]:
    rows = []
    for r in records:
        s = r.state or SessionState(r.id, r.created_at)
        cost = s.list_cost(default_pricing(), now)
        rows.append(
            [
                short(r.id),
                r.title[:34],
                s.status,
                s.stop_type or "",
                r.sandbox,
                str(s.usage.requests),
                humanize.intcomma(s.usage.total_tokens),
                format_usd(cost),
                format_usd(hosted_cost(s, now)),
                humanize.naturaldelta(float(s.active_at(now))),
            ]
        )
    return rows


SUMMARY_HEADER = [
    "id",
    "title",
    "status",
    "stop",
    "sandbox",
    "reqs",
    "tokens",
    "cost",
    "hosted",
    "active",
]


def print_import_review(record: SessionRecord, events: list[ev.Event]) -> None:
    """What an imported, not yet accepted session would be allowed to do."""
    info = record.metadata.get(IMPORTED, {})
    spec = spec_from_json(record.spec)
    print(f"  imported   from {printable_line(str(info.get('from', '?')))}; NOT ACCEPTED yet")
    for line in review(spec, policy_of(spec, events)):
        print(f"    - {printable_line(line)}")
    print("  policy     (the spec's, with every edit in its log applied)")
    for line in profile_toml(policy_of(spec, events)).splitlines():
        if line.strip() and not line.startswith("#"):
            print(f"    {printable_line(line)}")
    print(f"  accept it and let it run: corral resume {record.id}")


# -- commands ---------------------------------------------------------------------------


async def with_store(data_dir: Path, body: Callable[[Store], Awaitable[int]]) -> int:
    store = await Store.open(db_path(data_dir))
    try:
        return await body(store)
    finally:
        await store.close()


async def with_supervisor(
    args: argparse.Namespace, body: Callable[[Supervisor], Awaitable[int]]
) -> int:
    data_dir = resolve_data_dir(args.data_dir)

    async def run(store: Store) -> int:
        supervisor = Supervisor(
            store, data_dir, max_concurrent=args.max_concurrent, script_speed=args.speed
        )
        await supervisor.start()
        for sid in supervisor.recovered:
            print(
                f"recovered {sid}: it was running when corral stopped; its workspace is back"
                " at its last checkpoint",
                file=sys.stderr,
            )
        try:
            return await body(supervisor)
        finally:
            await supervisor.close()

    return await with_store(data_dir, run)


async def follow(
    supervisor: Supervisor,
    sub: Subscription,
    session_ids: list[str],
    *,
    auto_approve_after: float | None,
    since_seq: int | dict[str, int] = 0,
) -> list[SessionState]:
    """Print each event as it becomes durable until every session is finished.

    Only a stop later than ``since_seq`` (one for all, or per session) counts, so a
    command sent to an idle session waits for the stop it causes, not the one it found.
    """

    def finished(state: SessionState) -> bool:
        since = since_seq if isinstance(since_seq, int) else since_seq.get(state.session_id, 0)
        return finished_after(since)(state)

    titles = {}
    for sid in session_ids:
        titles[sid] = printable_line((await supervisor.store.get_session(sid)).title)
    waiting_hint: set[str] = set()
    approvals: list[asyncio.Task[None]] = []

    async def approve_later(sid: str, tool_use_id: str) -> None:
        await asyncio.sleep(auto_approve_after or 0)
        print(f"{'':9}{titles[sid][:22]:<22}      demo: approving {tool_use_id}")
        await supervisor.confirm(sid, tool_use_id, True)

    async def all_finished() -> bool:
        states = [await supervisor.store.state(sid) for sid in session_ids]
        return all(finished(s) for s in states)

    while not await all_finished():
        item = await sub.get()
        if not isinstance(item, ev.Event) or item.session_id not in titles:
            continue
        print(event_line(item, titles), flush=True)
        if (
            item.type == ev.STATUS_IDLE
            and item.payload["stop_reason"]["type"] == ev.REQUIRES_ACTION
        ):
            for tool_use_id in item.payload["stop_reason"].get("event_ids", []):
                if auto_approve_after is not None:
                    print(
                        f"{'':9}{titles[item.session_id][:22]:<22}      demo: approval needed;"
                        f" approving in {auto_approve_after:g}s",
                        flush=True,
                    )
                    approvals.append(
                        asyncio.create_task(approve_later(item.session_id, tool_use_id))
                    )
                elif tool_use_id not in waiting_hint:
                    waiting_hint.add(tool_use_id)
                    print(
                        f"waiting for approval: corral approve {item.session_id} {tool_use_id}"
                        f"   (or: corral deny {item.session_id} {tool_use_id} --message WHY)",
                        flush=True,
                    )
    for task in approvals:
        await task
    return [await supervisor.store.state(sid) for sid in session_ids]


def run_app(args: argparse.Namespace, specs: list | None = None) -> int:
    """The terminal app on the store (imported here: only the app needs Textual)."""
    from tui.ui.app import CorralApp

    app = CorralApp(
        resolve_data_dir(args.data_dir),
        start_specs=specs,
        script_speed=getattr(args, "speed", 1.0),
        max_concurrent=getattr(args, "max_concurrent", 8),
    )
    app.run()
    return app.return_code or 0


def demo_spec_list() -> list:
    paths = demo_specs()
    if not paths:
        raise UsageError(f"no demo specs found in {bundled_sessions_dir()}")
    return [load_spec(p) for p in paths]  # all checked before any starts


async def cmd_demo(args: argparse.Namespace) -> int:
    specs = demo_spec_list()

    async def body(supervisor: Supervisor) -> int:
        with supervisor.bus.subscribe() as sub:
            ids = [await supervisor.create_session(spec) for spec in specs]
            print(f"demo: {len(ids)} sessions started in {supervisor.data_dir}", flush=True)
            states = await follow(supervisor, sub, ids, auto_approve_after=args.approve_after)
        records = [await supervisor.store.get_session(sid) for sid in ids]
        print()
        print_table(summary_rows(records, utc_now()), SUMMARY_HEADER)
        ok = all(s.stop_type == ev.END_TURN for s in states)
        return 0 if ok else 1

    return await with_supervisor(args, body)


def build_run_specs(args: argparse.Namespace) -> list[SessionSpec]:
    """Every spec named (all checked before any starts), or the one ad-hoc prompt."""
    if args.spec and args.prompt:
        raise UsageError("give spec files or --prompt, not both")
    if args.spec:
        specs = [load_spec(path) for path in args.spec]
        return [spec.with_model(args.model) if args.model else spec for spec in specs]
    if args.prompt:
        workspace = Path(args.workspace).resolve() if args.workspace else None
        if workspace is not None and not workspace.is_dir():
            raise UsageError(f"--workspace {args.workspace}: not a directory")
        spec = ad_hoc_spec(
            args.prompt,
            model=args.model or DEFAULT_MODEL,
            workspace=workspace,
            allow_all=args.allow_all,
            backend=args.backend or "auto",
        )
        return [spec]
    raise UsageError("give a spec file (corral run SPEC.toml) or --prompt TEXT")


async def cmd_run(args: argparse.Namespace) -> int:
    specs = build_run_specs(args)

    async def body(supervisor: Supervisor) -> int:
        with supervisor.bus.subscribe() as sub:
            ids = []
            for spec in specs:
                ids.append(await supervisor.create_session(spec))
                print(f"session {ids[-1]} started", flush=True)
                for note in supervisor.copy_notes.get(ids[-1], []):
                    print(f"  workspace copy skipped {printable_line(note)}", flush=True)
            states = await follow(supervisor, sub, ids, auto_approve_after=None)
        records = [await supervisor.store.get_session(sid) for sid in ids]
        print()
        print_table(summary_rows(records, utc_now()), SUMMARY_HEADER)
        return 0 if all(s.stop_type == ev.END_TURN for s in states) else 1

    return await with_supervisor(args, body)


async def cmd_ls(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        records = await store.list_sessions()
        now = utc_now()
        if args.json:
            print(json.dumps([session_json(r, now) for r in records], indent=2))
        elif not records:
            print("no sessions yet: try `corral demo --headless`")
        else:
            print_table(summary_rows(records, now), SUMMARY_HEADER)
        return 0

    return await with_store(resolve_data_dir(args.data_dir), body)


async def cmd_show(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        record = await store.get_session(args.session)
        events = await store.events(record.id)
        now = utc_now()
        if args.json:
            data = session_json(record, now)
            if args.events:
                data["events"] = [e.to_dict() for e in events]
            # ASCII JSON: control characters and odd bytes stay escaped on a terminal.
            print(json.dumps(data, indent=2))
            return 0
        info = session_json(record, now)
        print(f"{record.id}  {printable_line(record.title)}")
        print(f"  status     {info['status']} {info['stop_reason'] or ''}".rstrip())
        print(f"  model      {printable_line(record.model)}")
        print(f"  sandbox    {printable_line(record.sandbox)}: {printable_line(record.isolation)}")
        print(f"  workspace  {printable_line(record.workspace)}")
        if import_pending(record):
            print_import_review(record, events)
        usage = info["usage"]
        print(
            f"  usage      in {usage['input_tokens']} out {usage['output_tokens']} cache r/w"
            f" {usage['cache_read_input_tokens']}/{usage['cache_creation_input_tokens']}"
            f"  cost {format_usd(Decimal(usage['list_cost']) if usage['list_cost'] else None, 6)}"
        )
        state = record.state or SessionState(record.id, record.created_at)
        budget = budget_of(spec_from_json(record.spec), events)
        typical = (await estimate_spec(store, spec_from_json(record.spec))).turns_typical
        f = forecast(state, budget, typical, now)
        print(
            f"  hosted     {format_usd(f.hosted_equivalent, 4)} for the same tokens plus"
            " $0.08 per active session-hour"
        )
        print(f"  caching    saved {format_usd(cache_saving(events), 4)} against plain input")
        caps = [
            f"max_list_cost {format_usd(budget.max_list_cost)}" if budget.max_list_cost else "",
            f"max_active_hours {budget.max_active_hours}" if budget.max_active_hours else "",
        ]
        print(f"  budget     {', '.join(c for c in caps if c) or 'none'}")
        if f.burn_per_hour is not None:
            line = f"  forecast   burn {format_usd(f.burn_per_hour, 2)}/active hour"
            if f.projected_total is not None and state.status != "terminated":
                line += f", projected at completion {format_usd(f.projected_total, 4)}"
            if f.hours_to_budget is not None and state.status == "running":
                line += f", {float(f.hours_to_budget * 60):.0f} active min to the cost cap"
            print(line)
        for tool_use_id in info["pending_approvals"]:
            print(f"  waiting    corral approve {record.id} {tool_use_id}")
        if args.events:
            for e in events:
                print(f"  #{e.seq:<4} {e.id}  {e.type:<26} {describe(e, 90)}")
        return 0

    return await with_store(resolve_data_dir(args.data_dir), body)


async def cmd_resume_all(args: argparse.Namespace) -> int:
    """Recover every session a dead corral left running, and see each to its next stop."""

    async def body(supervisor: Supervisor) -> int:
        ids = list(supervisor.recovered)
        if not ids:
            print("nothing to recover: no session was left running")
            return 0
        # Recovery left each idle; wait for the stop that comes after resuming, not that one.
        since = {sid: (await supervisor.store.state(sid)).last_seq for sid in ids}
        with supervisor.bus.subscribe() as sub:
            for sid in ids:
                await supervisor.resume(sid)
            states = await follow(supervisor, sub, ids, auto_approve_after=None, since_seq=since)
        return 0 if all(s.stop_type == ev.END_TURN for s in states) else 1

    return await with_supervisor(args, body)


INBOX_ANSWER_S = 15.0


async def send_to_live(store: Store, session_id: str, kind: str, payload: dict[str, Any]) -> bool:
    """Hand a command to the corral that runs sessions here, if one is live, and wait for
    its answer: True once it took effect; False when no corral is live; its error (an
    approval that lost a race, say) raised as a CorralError. Never just "sent"."""
    if await store.live_lease_pid() is None:
        return False
    command_id = await store.inbox_put(session_id, kind, payload)
    deadline = time.monotonic() + INBOX_ANSWER_S
    # Another process answers through the store: polling it is the only way to hear.
    while (outcome := await store.inbox_outcome(command_id)) is None:
        if time.monotonic() > deadline:
            raise CorralError(
                f"the running corral has not answered {kind} within {INBOX_ANSWER_S:g}s;"
                " it may still apply it"
            )
        await asyncio.sleep(0.05)
    if outcome != "ok":
        raise CorralError(outcome.removeprefix("error: "))
    return True


async def cmd_command(args: argparse.Namespace, kind: str, payload: dict[str, Any]) -> int:
    """Send a command to the live corral if one runs here; else run the session ourselves."""
    data_dir = resolve_data_dir(args.data_dir)

    async def via_inbox(store: Store) -> int | None:
        record = await store.get_session(args.session)
        if not await send_to_live(store, record.id, kind, payload):
            return None
        print(f"{kind}: done by the running corral for {record.id}")
        return 0

    sent = await with_store(data_dir, via_inbox)  # type: ignore[arg-type]
    if sent is not None:
        return sent

    async def body(supervisor: Supervisor) -> int:
        record = await supervisor.store.get_session(args.session)
        before = (await supervisor.store.state(record.id)).last_seq
        with supervisor.bus.subscribe() as sub:
            await supervisor.apply_command(record.id, kind, payload)
            if kind in ("pause", "interrupt", "cancel"):
                return 0
            (state,) = await follow(
                supervisor, sub, [record.id], auto_approve_after=None, since_seq=before
            )
        return 0 if state.stop_type in (ev.END_TURN, None) else 1

    return await with_supervisor(args, body)


# -- parser -----------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the exit code 2), like every other
    error of ours; ``--help`` still prints the full usage."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {printable_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` from ``low`` to ``high`` (nan, inf, 0 workers
    and the like are refused at the door)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low <= value <= high):  # also false for nan
            raise argparse.ArgumentTypeError(f"{text!r} must be from {low:g} to {high:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="corral",
        description="Run long-lived AI agent sessions on your own machine.",
    )
    parser.add_argument(
        "--data-dir", help="where the store lives (default: $CORRAL_HOME or the user data dir)"
    )
    sub = parser.add_subparsers(dest="command")

    def runner_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--headless", action="store_true", help="no terminal app: print events as lines"
        )
        p.add_argument(
            "--max-concurrent",
            type=bounded(int, 1, 1024),
            default=8,
            help="sessions working at once",
        )
        p.add_argument(
            "--speed",
            type=bounded(float, 0, 100),
            default=1.0,
            help="scale scripted models' latency (0 = no waiting)",
        )

    demo = sub.add_parser("demo", help="run the bundled offline demo sessions")
    runner_options(demo)
    demo.add_argument(
        "--approve-after",
        type=bounded(float, 0, 3600),
        default=DEMO_APPROVAL_PAUSE_S,
        help="seconds the demo waits before approving a tool use",
    )

    run = sub.add_parser("run", help="start sessions from specs, or one from a prompt")
    run.add_argument("spec", nargs="*", help="session specs (TOML), run side by side")
    run.add_argument("--prompt", help="ad-hoc: the task for the agent")
    run.add_argument("--workspace", help="ad-hoc: the directory to work in (used in place)")
    run.add_argument("--model", help="model id: scripted:PATH or a claude-… id")
    run.add_argument(
        "--allow-all", action="store_true", help="ad-hoc: run every tool without asking"
    )
    run.add_argument(
        "--backend", choices=["auto", "local", "docker"], help="ad-hoc: sandbox backend"
    )
    runner_options(run)

    ls = sub.add_parser("ls", help="list sessions")
    ls.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="show one session")
    show.add_argument("session")
    show.add_argument("--events", action="store_true", help="list its events")
    show.add_argument("--json", action="store_true")

    for name, help_text in (
        ("approve", "allow a tool use waiting for approval"),
        ("deny", "deny it"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("session")
        p.add_argument("tool_use_id")
        if name == "deny":
            p.add_argument("--message", help="tell the agent why")
        runner_options(p)

    send = sub.add_parser("send", help="send a user message (resumes an idle session)")
    send.add_argument("session")
    send.add_argument("text")
    runner_options(send)

    for name, help_text in (
        ("pause", "pause at the next step"),
        ("resume", "resume a session; with none, every one a crash left running"),
        ("interrupt", "stop the current step"),
        ("cancel", "terminate the session"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("session", nargs="?" if name == "resume" else None)
        runner_options(p)
    cli_timeline.add_commands(sub, runner_options)
    cli_money.add_commands(sub)
    cli_policy.add_commands(sub)
    return parser


def dispatch(args: argparse.Namespace) -> Awaitable[int]:
    match args.command:
        case "demo":
            return cmd_demo(args)
        case "run":
            return cmd_run(args)
        case "ls":
            return cmd_ls(args)
        case "show":
            return cmd_show(args)
        case "approve":
            return cmd_command(
                args, "confirm", {"tool_use_id": args.tool_use_id, "result": "allow"}
            )
        case "deny":
            return cmd_command(
                args,
                "confirm",
                {"tool_use_id": args.tool_use_id, "result": "deny", "message": args.message},
            )
        case "send":
            return cmd_command(args, "message", {"text": args.text})
        case "resume" if args.session is None:
            return cmd_resume_all(args)
        case "resume":
            # Resuming by name is the user's decision: it also accepts an imported session.
            return cmd_command(args, "resume", {"accept": True})
        case "pause" | "interrupt" | "cancel":
            return cmd_command(args, args.command, {})
        case name if name in cli_timeline.COMMANDS:
            return cli_timeline.dispatch(args)
        case name if name in cli_money.COMMANDS:
            return cli_money.dispatch(args)
        case "policy":
            return cli_policy.dispatch(args)
    raise UsageError(f"unknown command {args.command!r}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            return run_app(args)
        if args.command == "demo" and not args.headless:
            return run_app(args, demo_spec_list())
        if args.command == "run" and not args.headless:
            return run_app(args, build_run_specs(args))
        return asyncio.run(dispatch(args))
    except CorralError as exc:
        print(f"corral: {printable_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except sqlite3.Error as exc:
        print(
            f"corral: the store could not be read or written: {printable_line(str(exc))}",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # The disk, permissions, a path that is a file: the system's words, one line.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"corral: {printable_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("corral: stopped; running sessions were left idle and resumable", file=sys.stderr)
        return 130
