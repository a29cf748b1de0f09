"""CLI commands for save points: checkpoint, checkpoints, rewind, fork, diff, gc, export
and import."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import humanize

from tui.cli.options import open_client
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.scan import Change
from tui.core.money.pricing import format_usd
from tui.core.printable import printable, printable_line
from tui.core.session import events as ev
from tui.core.session.describe import describe


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    p.add_argument(
        "--images",
        action="store_true",
        help="also remove derived Docker images (a spec's packages) no container uses",
    )

    p = sub.add_parser("export", help="write a session (log, checkpoints, files) to one file")
    p.add_argument("session")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("import", help="add an exported session to this data dir")
    p.add_argument("file")


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
    async with open_client(args) as client:
        cp = await client.checkpoint(args.session, args.label)
    print(
        f"checkpoint {cp.id} at seq {cp.seq}: {cp.files} files, {cp.changed} changed,"
        f" {humanize.naturalsize(cp.stored_bytes)} stored"
    )
    return 0


async def cmd_checkpoints(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        record = await client.session(args.session)
        timeline = await client.timeline(record.id)
    if args.json:
        out = [
            r.checkpoint.to_json() | {"number": r.number, "branch": r.branch, "current": r.current}
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
            f"  branch {b.number}: from seq {b.from_seq}, events {b.first_seq}-{b.last_seq}"
            f" ({state})"
        )
    if len(timeline.branches) > 1:
        print(f"  dead-end spend (abandoned branches): {format_usd(timeline.dead_end_spend, 4)}")
    print("  * on the current branch")
    return 0


async def cmd_rewind(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        if args.dry_run:
            preview = await client.rewind_preview(args.session, args.checkpoint)
            cp = preview.target
            print(
                f"rewinding {preview.session.id} to {cp.id} (seq {cp.seq})"
                f" would change {len(preview.changes)} paths:"
            )
            print("\n".join(change_lines(preview.changes)) or "  (the workspace already matches)")
            return 0
        record = await client.session(args.session)
        done = await client.rewind(record.id, args.checkpoint)
    cp = done.target
    print(f"rewound {record.id} to {cp.id} (seq {cp.seq}); {len(done.changes)} paths restored:")
    print("\n".join(change_lines(done.changes)) or "  (the workspace already matched)")
    print(
        f"the session is paused on a new branch: corral resume {record.id}"
        f"  (or: corral send {record.id} TEXT)"
    )
    return 0


async def cmd_fork(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        sid = await client.fork(args.session, args.checkpoint)
    print(f"forked {sid}; it waits for you: corral resume {sid}  (or: corral send {sid} TEXT)")
    return 0


async def cmd_diff(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        record = await client.session(args.session)
        result = await client.diff(record.id, args.a, args.b)
    a, b = result.a, result.b
    print(f"{record.id}: {a.id} (seq {a.seq}) → {b.id} (seq {b.seq})")
    print(f"files: {len(result.changes)} changed")
    print("\n".join(change_lines(result.changes)))
    print(f"cost between them: {format_usd(result.cost, 4)} over {len(result.events)} events")
    if args.stat:
        return 0
    print("\ntranscript:")
    for e in result.events:
        if e.type != ev.SPAN_MODEL_REQUEST_START:
            print(f"  #{e.seq:<4} {describe(e, 100)}")
    print()
    for text in result.texts.values():
        sys.stdout.write(printable(text))  # file contents are anyone's text
    return 0


async def cmd_gc(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        done = await client.gc(dry_run=args.dry_run)
    plan = done.plan
    size = humanize.naturalsize(plan.free_bytes)
    print(f"{plan.referenced} blobs in use; {len(plan.unreferenced)} unreferenced ({size})")
    if done.containers:
        print(f"{len(done.containers)} containers of terminated or missing sessions")
    if not done.applied:
        for digest, blob_size in plan.unreferenced[:50]:
            print(f"  would remove {digest[:16]}…  {humanize.naturalsize(blob_size)}")
        for cid, sid in done.containers:
            print(f"  would remove container {cid[:12]} (session {sid or '?'})")
    else:
        print(
            f"removed {len(plan.unreferenced)} blobs, freed {size};"
            f" {len(done.containers)} containers"
        )
    await _gc_images(remove=args.images, dry_run=not done.applied)
    return 0


async def _gc_images(*, remove: bool, dry_run: bool) -> None:
    """Derived images belong to the machine, not to the data dir's server: asked here."""
    from tui.core.errors import SandboxError
    from tui.core.sandboxes.images import remove_images, unused_derived

    try:
        unused = await asyncio.to_thread(unused_derived)
    except SandboxError:
        return  # no engine: no images to speak of
    if not unused:
        return
    size = humanize.naturalsize(sum(i.size for i in unused))
    if not remove:
        print(f"{len(unused)} derived images no container uses ({size}): --images removes them")
        return
    if dry_run:
        for image in unused:
            print(f"  would remove image {printable_line(image.tag)}")
        return
    removed = await asyncio.to_thread(remove_images, [i.tag for i in unused])
    print(f"removed {len(removed)} derived images ({size})")


async def cmd_export(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        summary = await client.export(args.session, Path(args.output))
    print(
        f"exported to {summary.path}: {summary.events} events, {summary.checkpoints}"
        f" checkpoints, {summary.blobs} blobs, {humanize.naturalsize(summary.bytes)}"
    )
    for name, places in sorted(summary.redacted.items()):
        print(f"redacted the value of ${name} ({places} places)")
    return 0


async def cmd_import(args: argparse.Namespace) -> int:
    async with open_client(args) as client:
        summary = await client.import_file(Path(args.file))
    sid = summary.session_id
    print(
        f"imported {sid}: {summary.events} events, {summary.checkpoints} checkpoints."
        " It is paused and will not run until you accept it. It would be allowed:"
    )
    for line in summary.warnings:
        print(f"  - {printable_line(line)}")
    print(f"review it: corral show {sid}   accept and run it: corral resume {sid}")
    return 0


COMMANDS = {
    "checkpoint": cmd_checkpoint,
    "checkpoints": cmd_checkpoints,
    "rewind": cmd_rewind,
    "fork": cmd_fork,
    "diff": cmd_diff,
    "gc": cmd_gc,
    "export": cmd_export,
    "import": cmd_import,
}
