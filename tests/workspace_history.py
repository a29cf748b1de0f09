"""A session that really runs and reshapes its workspace turn by turn, with the whole tree
recorded right after each of its checkpoints: what the rewind and export tests compare
against.

Every ``bash`` call is ``always_ask``, so the session stops before each one runs. At such
a stop nothing has happened since the latest checkpoint, so the tree on disk *is* that
checkpoint's tree; that is when it is recorded, never reconstructed from a manifest.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tui.core.engine.supervisor import Supervisor
from tui.core.session import events as ev
from tui.core.session.state import SessionState, is_settled

from .conftest import make_spec

Tree = dict[str, tuple[object, ...]]

# Long enough, with newlines, quotes, a backslash and non-ASCII, that any truncation or
# re-encoding of message text on its way through an export shows.
LONG_TEXT = (
    "Editing a.txt and run.sh — naïve café ✓ 日本語\n"
    'second line with "quotes", a tab\there and a backslash \\ kept\n'
) + ("the rest of a long explanation; " * 12)

# One bash call a turn: contents, deletions, file and directory modes (setuid, setgid and
# sticky among them, which corral drops), a file swapped for a link to a directory and
# back, a directory swapped for a file and back, links that change target or dangle.
TURNS: list[dict[str, object]] = [
    {
        "text": LONG_TEXT,
        "thinking": "Start with the contents and the modes.",
        "tool_uses": [
            (
                "bash",
                {
                    "command": "printf 'alpha\\nbeta\\n' > a.txt && chmod 600 a.txt"
                    " && printf '#!/bin/sh\\necho v2\\n' > run.sh && chmod 644 run.sh"
                    " && chmod 700 docs && chmod 4750 private.txt"
                },
            )
        ],
    },
    {
        "text": "Delete, swap a file for a link, make empty directories.",
        "tool_uses": [
            (
                "bash",
                {
                    "command": "rm private.txt && rm a.txt && ln -s docs a.txt"
                    " && mkdir -p empty/deeper && chmod 750 empty"
                    " && printf 'new\\n' > docs/new.txt && chmod 640 docs/new.txt"
                },
            )
        ],
    },
    {
        "text": "A directory becomes a file; run.sh moves; odd bits on directories.",
        "tool_uses": [
            (
                "bash",
                {
                    "command": "rm -r data && printf 'now a file\\n' > data && chmod 604 data"
                    " && mkdir tools && mv run.sh tools/run.sh && chmod 755 tools/run.sh"
                    " && ln -s ../nowhere tools/dangling && chmod 2755 tools"
                    " && chmod 1777 empty/deeper && chmod 555 docs"
                },
            )
        ],
    },
    {
        "text": "And back: the file becomes a directory, the link a file again.",
        "tool_uses": [
            (
                "bash",
                {
                    "command": "rm data && mkdir data && printf 'back\\n' > data/blob.bin"
                    " && rm a.txt && printf 'alpha again\\n' > a.txt && chmod 444 a.txt"
                    " && rm tools/dangling && ln -s run.sh tools/dangling"
                    " && printf '#!/bin/sh\\necho v3\\n' > tools/run.sh && chmod 700 tools/run.sh"
                },
            )
        ],
    },
    {"text": "Done: every change is checkpointed."},
]

MANUAL_LABEL = "by hand, between turns"


def seed(tmp_path: Path) -> Path:
    """The workspace the session starts from: several modes, binary bytes, nesting."""
    source = tmp_path / "seed"
    (source / "docs").mkdir(parents=True)
    (source / "data").mkdir()
    files: dict[str, tuple[bytes, int]] = {
        "a.txt": (b"alpha\n", 0o644),
        "run.sh": (b"#!/bin/sh\necho run\n", 0o755),
        "private.txt": (b"mine\n", 0o600),
        "docs/readme.md": (b"# docs\n", 0o644),
        "data/blob.bin": (bytes(range(256)), 0o640),
    }
    for rel, (content, mode) in files.items():
        (source / rel).write_bytes(content)
        os.chmod(source / rel, mode)
    os.chmod(source / "docs", 0o755)
    os.chmod(source / "data", 0o750)
    return source


def masked_tree(root: Path, *, raw: bool = False) -> Tree:
    """Every path under ``root``: kind, mode as corral keeps it, content or link target.

    Written out here rather than borrowed from corral, so the test states the rule it
    holds corral to: files keep their permission bits only (setuid, setgid, sticky
    dropped); directories too, and always owner rwx. ``raw`` reports ``mode & 0o7777``
    unmasked instead: for a tree corral wrote from nothing, which must already be so.
    """
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                mode = st.st_mode & 0o7777 if raw else (st.st_mode & 0o777) | 0o700
                out[rel] = ("dir", oct(mode))
            elif stat.S_ISREG(st.st_mode):
                mode = st.st_mode & 0o7777 if raw else st.st_mode & 0o777
                out[rel] = ("file", oct(mode), full.read_bytes())
            else:
                raise AssertionError(f"{rel}: not a file, directory or link")
    return out


@dataclass
class RecordedRun:
    session_id: str
    workspace: Path
    seed: Path
    trees: dict[str, Tree]  # checkpoint id -> the tree on disk right after it


def _stopped_after(seq: int):  # type: ignore[no-untyped-def]
    return lambda state: is_settled(state) and state.status_seq > seq


async def run_recorded(supervisor: Supervisor, tmp_path: Path) -> RecordedRun:
    """Run ``TURNS`` approving each bash call, recording the tree at every checkpoint."""
    spec = make_spec(
        tmp_path,
        TURNS,
        workspace=seed(tmp_path),
        tools={"bash": {"permission_policy": "always_ask"}},
        title="reshapes its workspace",
    )
    sid = await supervisor.create_session(spec)
    workspace = Path((await supervisor.store.get_session(sid)).workspace)
    trees: dict[str, Tree] = {}
    seq = 0
    while True:
        state: SessionState = await asyncio.wait_for(
            supervisor.wait_for(sid, _stopped_after(seq)), 60
        )
        new = [c for c in await supervisor.store.checkpoints(sid) if c.id not in trees]
        # One checkpoint since the last stop (the start, or the approved call's): had
        # there been two, the first one's tree would be gone already.
        assert len(new) == 1, [c.kind for c in new]
        trees[new[0].id] = masked_tree(workspace)
        if state.stop_type != ev.REQUIRES_ACTION:
            assert state.stop_type == ev.END_TURN
            break
        if len(trees) == 3:
            # A manual checkpoint too, while parked: a label and another kind to carry.
            manual = await supervisor.checkpoint(sid, MANUAL_LABEL)
            trees[manual.id] = masked_tree(workspace)
        (tool_use_id,) = state.pending_approvals
        seq = state.last_seq
        await supervisor.confirm(sid, tool_use_id, allow=True)
    return RecordedRun(sid, workspace, tmp_path / "seed", trees)
