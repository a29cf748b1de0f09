"""The file tools: read, write, edit, glob, grep. Blocking; the toolset runs them in a thread."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from tui.core.errors import PathEscapeError, ToolError
from tui.core.globs import glob_regex
from tui.core.tools.output import OUTPUT_LIMIT, cap_text
from tui.core.tools.workspace import Workspace

MAX_READ_BYTES = 10 * 1024 * 1024
MAX_MATCHES = 500


def _read_text(path: Path, label: str) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ToolError(f"{label}: no such file") from None
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{label}: is a directory")
    if info.st_size > MAX_READ_BYTES:
        raise ToolError(
            f"{label}: {info.st_size} bytes is over the {MAX_READ_BYTES}-byte read limit"
        )
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{label}: binary file")
    return data.decode("utf-8", "replace")


def read(ws: Workspace, file_path: str, view_range: list[int] | None = None) -> str:
    path = ws.resolve(file_path)
    lines = _read_text(path, file_path).splitlines()
    start, end = 1, len(lines)
    if view_range is not None:
        if len(view_range) != 2 or not all(isinstance(n, int) for n in view_range):
            raise ToolError("view_range must be [start, end] (1-based; end -1 means to the end)")
        start, end = view_range[0], (len(lines) if view_range[1] == -1 else view_range[1])
        if start < 1 or end < start - 1:
            raise ToolError(f"view_range {view_range} is out of order")
    numbered = [f"{n:6}\t{lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1)]
    return cap_text("\n".join(numbered)) if numbered else "(empty)"


def _open_for_write(path: Path) -> int:
    # O_NOFOLLOW: a symlink swapped in after the check is refused, not followed.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise PathEscapeError(f"{path}: is a symlink") from None
        raise ToolError(f"{path}: {exc.strerror}") from None


def write(ws: Workspace, file_path: str, content: str) -> str:
    path = ws.resolve(file_path)
    if path.is_dir():
        raise ToolError(f"{file_path}: is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    ws.resolve(str(path.parent))  # the parents just made are still inside
    data = content.encode("utf-8")
    fd = _open_for_write(path)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return f"wrote {len(data)} bytes to {ws.relative(path)}"


def edit(
    ws: Workspace, file_path: str, old_string: str, new_string: str, replace_all: bool = False
) -> str:
    path = ws.resolve(file_path)
    text = _read_text(path, file_path)
    if old_string == "":
        raise ToolError("old_string must not be empty")
    if old_string == new_string:
        raise ToolError("old_string and new_string are the same")
    count = text.count(old_string)
    if count == 0:
        raise ToolError(f"{file_path}: old_string not found")
    if count > 1 and not replace_all:
        raise ToolError(
            f"{file_path}: old_string occurs {count} times; give more context or set replace_all"
        )
    updated = (
        text.replace(old_string, new_string)
        if replace_all
        else text.replace(old_string, new_string, 1)
    )
    fd = _open_for_write(path)
    with os.fdopen(fd, "wb") as f:
        f.write(updated.encode("utf-8"))
    return f"replaced {count if replace_all else 1} occurrence(s) in {ws.relative(path)}"


def _walk(ws: Workspace, base: Path) -> list[Path]:
    """Regular files under ``base``, not following links that lead out of the workspace."""
    found = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git",))
        for name in sorted(filenames):
            candidate = Path(dirpath) / name
            try:
                real = ws.resolve(str(candidate))
            except PathEscapeError:
                continue
            if real.is_file():
                found.append(candidate)
    return found


def glob(ws: Workspace, pattern: str, path: str | None = None) -> str:
    base = ws.resolve(path or ".")
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise PathEscapeError(f"{pattern}: glob patterns must be relative to the workspace")
    regex = glob_regex(pattern)
    matches = []
    for file in _walk(ws, base):
        rel = file.relative_to(base).as_posix()
        if regex.fullmatch(rel):
            matches.append(file)
    # Newest first to the second, then by name: files written together (a checkout, a
    # copied workspace) list in a stable order.
    matches.sort(key=lambda p: (-int(p.lstat().st_mtime), str(p)))
    lines = [str(m.relative_to(ws.root)) for m in matches[:MAX_MATCHES]]
    if len(matches) > MAX_MATCHES:
        lines.append(f"[... {len(matches) - MAX_MATCHES} more matches not shown ...]")
    return "\n".join(lines) if lines else "no files match"


def grep(ws: Workspace, pattern: str, path: str | None = None) -> str:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None
    base = ws.resolve(path or ".")
    files = [base] if base.is_file() else _walk(ws, base)
    lines: list[str] = []
    size = 0
    for file in files:
        try:
            text = _read_text(ws.resolve(str(file)), str(file))
        except ToolError:
            continue  # binary or unreadable files are skipped, as grep -I does
        rel = str(file.relative_to(ws.root)) if file != ws.root else "."
        for number, line in enumerate(text.splitlines(), 1):
            if regex.search(line):
                entry = f"{rel}:{number}:{line}"
                lines.append(entry)
                size += len(entry)
                if len(lines) >= MAX_MATCHES or size > OUTPUT_LIMIT:
                    lines.append("[... more matches not shown ...]")
                    return "\n".join(lines)
    return "\n".join(lines) if lines else "no matches"
