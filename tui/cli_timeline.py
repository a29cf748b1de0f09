"""CLI commands for save points: checkpoint, checkpoints, rewind, fork, diff, gc,
export and import. Registered by ``tui.cli``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable
from pathlib import Path

import humanize

from tui.core import events as ev
from tui.core.archive import export_session, import_session
from tui.core.checkpoint_diff import compare
from tui.core.checkpoints import Checkpointer, CheckpointRecord
from tui.core.datadir import blobs_dir, resolve_data_dir, workspaces_dir
from tui.core.describe import describe
from tui.core.errors import UsageError
from tui.core.gc import apply_gc, plan_gc
from tui.core.pricing import format_usd
from tui.core.printable import printable, printable_line
from tui.core.sandboxes.docker import orphan_containers, remove_containers
from tui.core.snapshot import Change
from tui.core.store import Store
from tui.core.supervisor import Supervisor
from tui.core.timeline import build_timeline


def add_commands(sub: argparse._SubParsersAction, runner_options: object) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("checkpoint", help="save the session's workspace and position now")
    p.add_argument("session")
    p.add_argument("-m", "--label", default="", help="a note to find it by")

    p = sub.add_parser("checkpoints", help="a session's timeline of checkpoints and branches")
    p.add_argument("session")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("rewind", help="restore a checkpoint's workspace and branch from it")
    p.add_argument("session")
    p.add_argument("checkpoint", help="checkpoint id, id prefix, or #N from `corral checkpoints`")
    p.add_argument("--dry-run", action="store_true", help="only show what would change")

    p = sub.add_parser("fork", help="a new session from a checkpoint; the original is untouched")
    p.add_argument("session")
    p.add_argument("checkpoint")

    p = sub.add_parser("diff", help="files, transcript and cost between two checkpoints")
    p.add_argument("session")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--stat", action="store_true", help="only the list of changed files")

    p = sub.add_parser("gc", help="remove stored file contents no checkpoint needs")
    p.add_argument("--dry-run", action="store_true", help="show what would be freed")

    p = sub.add_parser("export", help="write a session (log, checkpoints, files) to one file")
    p.add_argument("session")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("import", help="add an exported session to this data dir")
    p.add_argument("file")


COMMANDS = ("checkpoint", "checkpoints", "rewind", "fork", "diff", "gc", "export", "import")


def dispatch(args: argparse.Namespace) -> Awaitable[int]:
    return {
        "checkpoint": cmd_checkpoint,
        "checkpoints": cmd_checkpoints,
        "rewind": cmd_rewind,
        "fork": cmd_fork,
        "diff": cmd_diff,
        "gc": cmd_gc,
        "export": cmd_export,
        "import": cmd_import,
    }[args.command](args)


async def _with_store(args: argparse.Namespace, body) -> int:  # type: ignore[no-untyped-def]
    from tui.cli import with_store

    return await with_store(resolve_data_dir(args.data_dir), body)


async def _live(store: Store) -> int | None:
    return await store.live_lease_pid()


async def _with_supervisor(args: argparse.Namespace, body) -> int:  # type: ignore[no-untyped-def]
    """Run ``body`` on a supervisor of our own; refuse when another corral runs here."""
    from tui.cli import with_supervisor

    args.max_concurrent, args.speed = 8, 1.0
    return await with_supervisor(args, body)


def checkpoint_line(index: int, cp: CheckpointRecord, branch: int, current: bool) -> str:
    label = f"  {printable_line(cp.label)}" if cp.label else ""
    skipped = f"  ({cp.skipped} not captured)" if cp.skipped else ""
    mark = "*" if current else " "
    return (
        f"{mark}#{index:<3} {cp.id}  {cp.created_at:%H:%M:%S}  branch {branch}  seq {cp.seq:<4}"
        f" turn {cp.turn:<3} {cp.kind:<6} {cp.changed:>4} changed  {cp.files:>5} files"
        f"  {format_usd(cp.model_cost, 4):>9}{label}{skipped}"
    )


def change_lines(changes: list[Change]) -> list[str]:
    sign = {"added": "+", "removed": "-", "changed": "~"}
    return [
        f"  {sign[c.kind]} {printable_line(c.path)}{'/' if (c.after or c.before)[0] == 'd' else ''}"
        for c in changes
    ]


async def cmd_checkpoint(args: argparse.Namespace) -> int:
    async def via_inbox(store: Store) -> int | None:
        from tui.cli import send_to_live

        record = await store.get_session(args.session)
        if not await send_to_live(store, record.id, "checkpoint", {"label": args.label}):
            return None
        print(f"the running corral checkpointed {record.id}")
        return 0

    sent = await _with_store(args, via_inbox)
    if sent is not None:
        return sent

    async def body(supervisor: Supervisor) -> int:
        cp = await supervisor.checkpoint(args.session, args.label)
        print(
            f"checkpoint {cp.id} at seq {cp.seq}: {cp.files} files, {cp.changed} changed,"
            f" {humanize.naturalsize(cp.stored_bytes)} stored"
        )
        return 0

    return await _with_supervisor(args, body)


async def cmd_checkpoints(args: argparse.Namespace) -> int:
    async def body(store: Store) -> int:
        record = await store.get_session(args.session)
        timeline = build_timeline(await store.events(record.id), await store.checkpoints(record.id))
        if args.json:
            out = [
                r.checkpoint.to_json()
                | {"number": r.number, "branch": r.branch, "current": r.current}
                for r in timeline.rows
            ]
            print(json.dumps(out, indent=2))
            return 0
        print(f"{record.id}  {printable_line(record.title)}")
        for r in timeline.rows:
            print(checkpoint_line(r.number, r.checkpoint, r.branch, r.current))
            for note in r.checkpoint.notes:
                print(f"        not captured: {printable_line(note)}")
        for b in timeline.branches[1:]:
            state = "abandoned" if b.abandoned else "current"
            print(
                f"  branch {b.number}: from seq {b.from_seq},"
                f" events {b.first_seq}-{b.last_seq} ({state})"
            )
        if len(timeline.branches) > 1:
            print(
                f"  dead-end spend (abandoned branches): {format_usd(timeline.dead_end_spend, 4)}"
            )
        print("  * on the current branch")
        return 0

    return await _with_store(args, body)


async def cmd_rewind(args: argparse.Namespace) -> int:
    async def via_inbox(store: Store) -> int | None:
        record = await store.get_session(args.session)
        cp = await store.get_checkpoint(record.id, args.checkpoint)
        if args.dry_run:
            return None
        from tui.cli import send_to_live

        if not await send_to_live(store, record.id, "rewind", {"checkpoint": cp.id}):
            return None
        print(f"the running corral rewound {record.id} to {cp.id}; it waits, paused")
        return 0

    sent = await _with_store(args, via_inbox)
    if sent is not None:
        return sent

    async def body(supervisor: Supervisor) -> int:
        record, cp, pending = await supervisor.rewind_preview(args.session, args.checkpoint)
        if args.dry_run:
            print(
                f"rewinding {record.id} to {cp.id} (seq {cp.seq})"
                f" would change {len(pending)} paths:"
            )
            print("\n".join(change_lines(pending)) or "  (the workspace already matches)")
            return 0
        cp, changes = await supervisor.rewind(record.id, cp.id)
        print(f"rewound {record.id} to {cp.id} (seq {cp.seq}); {len(changes)} paths restored:")
        print("\n".join(change_lines(changes)) or "  (the workspace already matched)")
        print(
            f"the session is paused on a new branch: corral resume {record.id}"
            f"  (or: corral send {record.id} TEXT)"
        )
        return 0

    return await _with_supervisor(args, body)


async def cmd_fork(args: argparse.Namespace) -> int:
    async def body(supervisor: Supervisor) -> int:
        sid = await supervisor.fork(args.session, args.checkpoint)
        print(f"forked {sid}; it waits for you: corral resume {sid}  (or: corral send {sid} TEXT)")
        return 0

    return await _with_supervisor(args, body)


async def cmd_diff(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)

    async def body(store: Store) -> int:
        checkpointer = Checkpointer(blobs_dir(data_dir))
        record = await store.get_session(args.session)
        a = await store.get_checkpoint(record.id, args.a)
        b = await store.get_checkpoint(record.id, args.b)
        events = await store.events(record.id)
        result = compare(checkpointer, events, a, b)
        print(f"{record.id}: {a.id} (seq {a.seq}) → {b.id} (seq {b.seq})")
        print(f"files: {len(result.changes)} changed")
        print("\n".join(change_lines(result.changes)))
        print(f"cost between them: {format_usd(result.cost, 4)} over {len(result.events)} events")
        if args.stat:
            return 0
        print("\ntranscript:")
        for e in result.events:
            if e.type not in (ev.SPAN_MODEL_REQUEST_START,):
                print(f"  #{e.seq:<4} {describe(e, 100)}")
        print()
        for change in result.changes:
            if (change.after or change.before)[0] != "d":
                sys.stdout.write(printable(result.unified(checkpointer, change.path)))
        return 0

    return await _with_store(args, body)


async def cmd_gc(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)

    async def body(store: Store) -> int:
        pid = await _live(store)
        if pid is not None:
            raise UsageError(f"a corral (pid {pid}) is running on {data_dir}; stop it before gc")
        checkpointer = Checkpointer(blobs_dir(data_dir))
        with checkpointer.blobs.lease(exclusive=True):
            return await _gc(store, checkpointer)

    async def _gc(store: Store, checkpointer: Checkpointer) -> int:
        plan = await plan_gc(store, checkpointer)
        size = humanize.naturalsize(plan.free_bytes)
        print(f"{plan.referenced} blobs in use; {len(plan.unreferenced)} unreferenced ({size})")
        live = {
            r.id for r in await store.list_sessions() if r.state and r.state.status != "terminated"
        }
        orphans = await asyncio.to_thread(orphan_containers, data_dir, live)
        if orphans:
            print(f"{len(orphans)} containers of terminated or missing sessions")
        if args.dry_run:
            for digest, blob_size in plan.unreferenced[:50]:
                print(f"  would remove {digest[:16]}…  {humanize.naturalsize(blob_size)}")
            for cid, sid in orphans:
                print(f"  would remove container {cid[:12]} (session {sid or '?'})")
            return 0
        await apply_gc(checkpointer, plan)
        await asyncio.to_thread(remove_containers, [cid for cid, _ in orphans])
        print(f"removed {len(plan.unreferenced)} blobs, freed {size}; {len(orphans)} containers")
        return 0

    return await _with_store(args, body)


async def cmd_export(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)

    async def body(store: Store) -> int:
        summary = await export_session(
            store, Checkpointer(blobs_dir(data_dir)), args.session, Path(args.output)
        )
        print(
            f"exported to {summary.path}: {summary.events} events, {summary.checkpoints}"
            f" checkpoints, {summary.blobs} blobs, {humanize.naturalsize(summary.bytes)}"
        )
        for name, places in sorted(summary.redacted.items()):
            print(f"redacted the value of ${name} ({places} places)")
        return 0

    return await _with_store(args, body)


async def cmd_import(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)

    async def body(store: Store) -> int:
        source = Path(args.file)
        if not source.is_file():  # a FIFO or a device would block or never end
            raise UsageError(f"{source}: not a regular file")
        summary = await import_session(
            store, Checkpointer(blobs_dir(data_dir)), source, workspaces_dir(data_dir)
        )
        sid = summary.session_id
        print(
            f"imported {sid}: {summary.events} events, {summary.checkpoints} checkpoints."
            " It is paused and will not run until you accept it. It would be allowed:"
        )
        for line in summary.warnings:
            print(f"  - {printable_line(line)}")
        print(f"review it: corral show {sid}   accept and run it: corral resume {sid}")
        return 0

    return await _with_store(args, body)
