"""CLI commands that start, show and steer sessions: demo, run, ls, show, send, approve,
deny, pause, resume, interrupt, cancel."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tui.cli.follow import follow
from tui.cli.options import bounded, open_client, runner_options
from tui.cli.output import (
    SUMMARY_HEADER,
    print_import_review,
    print_table,
    session_json,
    short,
    summary_rows,
)
from tui.client.protocol import CorralClient
from tui.core.checkpoints.archive import import_pending
from tui.core.clock import utc_now
from tui.core.errors import CorralError, UsageError
from tui.core.money.estimate import forecast
from tui.core.money.pricing import format_usd
from tui.core.money.spend import cache_saving
from tui.core.printable import printable_line
from tui.core.sandboxes.engine import image_present
from tui.core.sandboxes.registry import missing_image_notice
from tui.core.session import events as ev
from tui.core.session.describe import describe
from tui.core.session.records import SANDBOX_NOTICE, SessionRecord
from tui.core.session.spec import DEFAULT_MODEL, SessionSpec, ad_hoc_spec, spec_from_json
from tui.core.session.spec_reader import load_spec
from tui.core.session.state import RUNNING, TERMINATED, SessionState
from tui.data import sessions_dir

DEMO_APPROVAL_PAUSE_S = 3.0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="run the bundled offline demo sessions")
    demo.add_argument(
        "--backend",
        choices=["auto", "local", "docker"],
        help="run the demos in this sandbox backend (docker: `corral env build` first)",
    )
    runner_options(demo)
    stop_on_exit(demo)
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
        "--backend",
        choices=["auto", "local", "docker"],
        help="sandbox backend (for specs: in place of theirs)",
    )
    runner_options(run)
    stop_on_exit(run)

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
        ("resume", "resume a session (accepting an import); with none, every one a crash left"),
        ("interrupt", "stop the current step"),
        ("cancel", "terminate the session"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("session", nargs="?" if name == "resume" else None)
        runner_options(p)


def stop_on_exit(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stop-on-exit",
        action="store_true",
        help="--headless: Ctrl-C interrupts the sessions too (else they go on in the server)",
    )


def demo_spec_list(backend: str | None = None) -> list[SessionSpec]:
    paths = sorted(sessions_dir().glob("demo-*.toml"))
    if not paths:
        raise UsageError(f"no demo specs found in {sessions_dir()}")
    specs = [load_spec(p) for p in paths]  # all checked before any starts
    return [s.with_backend(backend) for s in specs] if backend else specs


def build_run_specs(args: argparse.Namespace) -> list[SessionSpec]:
    """Every spec named (all checked before any starts), or the one ad-hoc prompt."""
    if args.spec and args.prompt:
        raise UsageError("give spec files or --prompt, not both")
    if args.spec:
        specs = [load_spec(path) for path in args.spec]
        specs = [spec.with_model(args.model) if args.model else spec for spec in specs]
        return [spec.with_backend(args.backend) if args.backend else spec for spec in specs]
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


async def start_and_follow(
    client: CorralClient,
    specs: list[SessionSpec],
    *,
    auto_approve_after: float | None,
    stop_on_exit: bool = False,
) -> int:
    """Start ``specs`` side by side, print their events until all stop, then a summary.
    Ctrl-C leaves them running in the server, unless ``stop_on_exit`` (then they are
    interrupted: idle and resumable)."""
    ids: list[str] = []
    notices: set[str] = set()
    try:
        with await client.subscribe() as feed:
            for spec in specs:
                ids.append(await client.create(spec))
                print(f"session {ids[-1]} started: {printable_line(spec.title)}", flush=True)
                record = await client.session(ids[-1])
                for note in record.metadata.get("workspace_copy_skipped", []):
                    print(f"  workspace copy skipped {printable_line(str(note))}", flush=True)
                notice = str(record.metadata.get(SANDBOX_NOTICE, ""))
                if notice and notice not in notices:  # once, not once per session
                    notices.add(notice)
                    print(f"  on local: {printable_line(notice)}", flush=True)
            states = await follow(client, feed, ids, auto_approve_after=auto_approve_after)
    except asyncio.CancelledError:  # Ctrl-C
        if stop_on_exit:
            for sid in ids:
                with contextlib.suppress(CorralError):  # it stopped on its own meanwhile
                    await client.control(sid, "interrupt")
            print(
                f"corral: interrupted {len(ids)} session(s); `corral resume SESSION` goes on",
                file=sys.stderr,
            )
            raise SystemExit(130) from None
        raise
    print()
    print_table(summary_rows([await client.session(s) for s in ids], utc_now()), SUMMARY_HEADER)
    return 0 if all(s.stop_type == ev.END_TURN for s in states) else 1


async def cmd_demo(args: argparse.Namespace) -> int:
    specs = demo_spec_list(args.backend)
    async with open_client(args) as client:
        return await start_and_follow(
            client, specs, auto_approve_after=args.approve_after, stop_on_exit=args.stop_on_exit
        )


async def cmd_run(args: argparse.Namespace) -> int:
    specs = build_run_specs(args)
    async with open_client(args) as client:
        return await start_and_follow(
            client, specs, auto_approve_after=None, stop_on_exit=args.stop_on_exit
        )


async def cmd_ls(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        records = await client.sessions()
    now = utc_now()
    if args.json:
        print(json.dumps([session_json(r, now) for r in records], indent=2))
    elif not records:
        print("no sessions yet: try `corral demo --headless`")
    else:
        print_table(summary_rows(records, now), SUMMARY_HEADER)
        print_sandbox_notices(records)
    return 0


def print_sandbox_notices(records: list[SessionRecord]) -> None:
    """Once under the table: sessions that run on local because an image is missing,
    while it still is (built since, the advice is moot)."""
    waiting: dict[str, list[str]] = {}
    for record in records:
        notice = record.metadata.get(SANDBOX_NOTICE)
        if notice and not (record.state and record.state.status == TERMINATED):
            image = spec_from_json(record.spec).environment.image
            waiting.setdefault(image, []).append(short(record.id))
    for image, ids in waiting.items():
        if not image_present(image):
            notice = missing_image_notice(image)
            print(f"{printable_line(notice)} ({len(ids)} sessions run on local: {', '.join(ids)})")


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        record = await client.session(args.session)
        events = await client.events(record.id)
        budget = await client.budget(record.id)
        typical = (await client.estimate(spec_from_json(record.spec))).turns_typical
    now = utc_now()
    info = session_json(record, now)
    if args.json:
        if args.events:
            info["events"] = [e.to_dict() for e in events]
        # ASCII JSON: control characters and odd bytes stay escaped on a terminal.
        print(json.dumps(info, indent=2))
        return 0
    print(f"{record.id}  {printable_line(record.title)}")
    print(f"  status     {info['status']} {info['stop_reason'] or ''}".rstrip())
    print(f"  model      {printable_line(record.model)}")
    print(f"  sandbox    {printable_line(record.sandbox)}: {printable_line(record.isolation)}")
    print(f"  workspace  {printable_line(record.workspace)}")
    if import_pending(record):
        print_import_review(record, events)
    usage = info["usage"]
    cost = Decimal(usage["list_cost"]) if usage["list_cost"] else None
    print(
        f"  usage      in {usage['input_tokens']} out {usage['output_tokens']} cache r/w"
        f" {usage['cache_read_input_tokens']}/{usage['cache_creation_input_tokens']}"
        f"  cost {format_usd(cost, 6)}"
    )
    state = record.state or SessionState(record.id, record.created_at)
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
        if f.projected_total is not None and state.status != TERMINATED:
            line += f", projected at completion {format_usd(f.projected_total, 4)}"
        if f.hours_to_budget is not None and state.status == RUNNING:
            line += f", {float(f.hours_to_budget * 60):.0f} active min to the cost cap"
        print(line)
    for tool_use_id in info["pending_approvals"]:
        print(f"  waiting    corral approve {record.id} {tool_use_id}")
    if args.events:
        for e in events:
            print(f"  #{e.seq:<4} {e.id}  {e.type:<26} {describe(e, 90)}")
    return 0


async def cmd_resume_all(args: argparse.Namespace) -> int:
    """Follow every session the server took over from a dead corral to its next stop
    (the server resumed them from their checkpoints when it started)."""
    async with open_client(args) as client:
        with await client.subscribe() as feed:
            ids = await client.attach(resume_recovered=True)
            if not ids:
                print("nothing to recover: no session was left running")
                return 0
            since = {sid: client.recovered_after.get(sid, 0) for sid in ids}
            states = await follow(client, feed, ids, auto_approve_after=None, since_seq=since)
    return 0 if all(s.stop_type == ev.END_TURN for s in states) else 1


Action = Callable[[CorralClient, str], Awaitable[Any]]


async def steer(args: argparse.Namespace, what: str, action: Action, *, follows: bool) -> int:
    """Do ``action`` to a session and, if it ``follows``, print its events to its next
    stop (Ctrl-C stops watching; the session goes on)."""
    async with open_client(args) as client:
        record = await client.session(args.session)
        before = (await client.state(record.id)).last_seq
        with await client.subscribe() as feed:
            await action(client, record.id)
            if not follows:
                print(f"{what}: {record.id}")
                return 0
            (state,) = await follow(
                client, feed, [record.id], auto_approve_after=None, since_seq=before
            )
    return 0 if state.stop_type in (ev.END_TURN, None) else 1


def cmd_approve(args: argparse.Namespace) -> Awaitable[int]:
    return steer(
        args, "approved", lambda c, sid: c.confirm(sid, args.tool_use_id, True), follows=True
    )


def cmd_deny(args: argparse.Namespace) -> Awaitable[int]:
    def deny(client: CorralClient, sid: str) -> Awaitable[None]:
        return client.confirm(sid, args.tool_use_id, False, args.message)

    return steer(args, "denied", deny, follows=True)


def cmd_send(args: argparse.Namespace) -> Awaitable[int]:
    return steer(args, "sent", lambda c, sid: c.send(sid, args.text), follows=True)


def cmd_control(args: argparse.Namespace) -> Awaitable[int]:
    if args.command == "resume" and args.session is None:
        return cmd_resume_all(args)
    kind = args.command
    # Resuming by name is the user's decision: it also accepts an imported session.
    accept = kind == "resume"
    return steer(
        args,
        kind,
        lambda c, sid: c.control(sid, kind, accept=accept),
        follows=kind == "resume",
    )


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "ls": cmd_ls,
    "show": cmd_show,
    "approve": cmd_approve,
    "deny": cmd_deny,
    "send": cmd_send,
    "pause": cmd_control,
    "resume": cmd_control,
    "interrupt": cmd_control,
    "cancel": cmd_control,
}
