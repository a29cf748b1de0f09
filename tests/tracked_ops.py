"""Random workspace changes as shell commands (POSIX sh: bash and busybox both run them),
chosen from what the workspace holds now, and the check that a checkpoint equals a full
scan of the tree."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.scan import StatCache, scan

# Names as bytes: spaces, a newline inside, bytes that are not UTF-8, a leading dash.
NAMES = [b"a", b"b.txt", b"with space", b"new\nline", b"bad\xff\xfe", b"-dash", b"d", b"e"]


def sh_path(path: bytes) -> str:
    """A shell word that expands to ``path`` exactly (printf octal escapes, no quoting
    games; ``$(...)`` would eat a trailing newline, which no name here ends with)."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/"
    escaped = "".join(chr(c) if c in safe else f"\\{c:03o}" for c in path)
    return f"\"$(printf '{escaped}')\""


def _entries(root: Path) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(directories incl. the root as b"", regular files, other non-directories), as
    paths relative to ``root``; links are never followed."""
    dirs, files, others = [b""], [], []
    stack = [b""]
    base = os.fsencode(root)
    while stack:
        rel = stack.pop()
        try:
            names = sorted(os.listdir(os.path.join(base, rel) if rel else base))
        except OSError:
            continue
        for name in names:
            path = os.path.join(rel, name) if rel else name
            st = os.lstat(os.path.join(base, path))
            if stat.S_ISDIR(st.st_mode):
                dirs.append(path)
                stack.append(path)
            elif stat.S_ISREG(st.st_mode):
                files.append(path)
            else:
                others.append(path)
    return dirs, files, others


def random_command(rng: random.Random, root: Path) -> str:
    """One change (sometimes a few) to the tree under ``root``, as a command run there."""
    dirs, files, others = _entries(root)

    def new_path() -> bytes:
        parent = rng.choice(dirs)
        name = rng.choice(NAMES) + str(rng.randrange(100)).encode()
        return os.path.join(parent, name) if parent else name

    def some(paths: list[bytes]) -> bytes:
        return rng.choice(paths) if paths else new_path()

    inner = [d for d in dirs if d]
    text = "".join(rng.choice("xyz\n") for _ in range(rng.randrange(1, 40)))
    ops = [
        lambda: f"printf '%s' '{text}' > {sh_path(new_path())}",
        lambda: f"echo more >> {sh_path(some(files))}",
        lambda: f"printf 'same size' > {sh_path(some(files))}",
        lambda: f"mv {sh_path(some(files + others))} {sh_path(new_path())}",
        lambda: f"rm -f {sh_path(some(files + others))}",
        lambda: f"ln -sfn {sh_path(some(files + inner))} {sh_path(some(others))}",
        lambda: f"ln -s nowhere {sh_path(new_path())}",
        lambda: f"chmod {rng.choice(['600', '644', '755', '4755', '000'])} {sh_path(some(files))}",
        lambda: f"chmod {rng.choice(['700', '755', '555', '1777'])} {sh_path(some(inner))}",
        lambda: f"mkdir -p {sh_path(new_path())}/deep/er && echo y > {sh_path(new_path())}",
        lambda: _fill_new_dir(new_path()),
        lambda: _move_dir(rng, inner, dirs),
        lambda: f"rm -rf {sh_path(some(inner))}",
        lambda: f"ln {sh_path(some(files))} {sh_path(new_path())}",  # a hard link
        lambda: f"mkfifo {sh_path(new_path())}",
        lambda: f'f={sh_path(some(files))}; rm -f "$f" && mkdir "$f" && echo in > "$f/x"',
        lambda: f'd={sh_path(some(inner))}; mv "$d" "$d.old" && ln -s "$(basename "$d").old" "$d"',
        lambda: _replace_dir(rng, inner),
        lambda: (
            f'd={sh_path(some(inner))}; rm -rf "$d" && mkdir -p "$d/sub" && echo x > "$d/sub/f"'
        ),
        lambda: f"touch {sh_path(some(files))}",
        lambda: f": > {sh_path(some(files))}",
    ]
    return "(" + rng.choice(ops)() + ") 2>/dev/null; true"


def _fill_new_dir(path: bytes) -> str:
    # Made and filled at once: what lands in it before its watch exists must be seen.
    p = sh_path(path)
    return f"mkdir {p} && for i in 1 2 3; do mkdir {p}/s$i; echo $i > {p}/s$i/f; done"


def _move_dir(rng: random.Random, inner: list[bytes], dirs: list[bytes]) -> str:
    if not inner:
        return "mkdir -p moved/from"
    source = rng.choice(inner)
    targets = [d for d in dirs if d != source and not d.startswith(source + b"/")]
    parent = rng.choice(targets)
    name = b"moved" + str(rng.randrange(100)).encode()
    target = os.path.join(parent, name) if parent else name
    return f"mv {sh_path(source)} {sh_path(target)} && echo after > {sh_path(target)}/later"


def _replace_dir(rng: random.Random, inner: list[bytes]) -> str:
    """Another directory moved onto the path of one that was there: same path, new tree."""
    pairs = [
        (a, b)
        for a in inner
        for b in inner
        if a != b and not a.startswith(b + b"/") and not b.startswith(a + b"/")
    ]
    if not pairs:
        return "mkdir -p one/x two/y"
    gone, moved = rng.choice(pairs)
    return f"rm -rf {sh_path(gone)} && mv {sh_path(moved)} {sh_path(gone)}"


def assert_equals_full_scan(cp: Checkpointer, workspace: Path, record: CheckpointRecord) -> None:
    """The checkpoint's manifest and counts are what a full scan of the tree finds now."""
    full, stats = scan(workspace, StatCache())
    stored = cp.load(record.manifest)
    if stored != full:
        wrong = sorted(set(stored.items()) ^ set(full.items()))
        raise AssertionError(f"{record.scan} checkpoint differs from a full scan: {wrong[:10]}")
    assert (record.files, record.bytes) == (stats.files, stats.bytes)
    assert (record.skipped, list(record.notes)) == (stats.skipped, stats.notes)
