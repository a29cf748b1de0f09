"""The file tools: read, write, edit, glob, grep. Blocking; the toolset runs them in a thread."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from pathlib import Path

import regex

from tui.core.errors import PathEscapeError, ToolError
from tui.core.permissions.globs import glob_regex
from tui.core.small_files import read_regular
from tui.core.tools.output import OUTPUT_LIMIT, cap_text
from tui.core.tools.workspace import Workspace

MAX_READ_BYTES = 10 * 1024 * 1024
MAX_MATCHES = 500
MAX_WALK = 200_000  # files one glob or grep looks at
MAX_PATTERN = 4096
SEARCH_BUDGET_S = 10.0  # wall-clock for one glob or grep, patterns included


def _read_text(ws: Workspace, file_path: str, errors: str = "replace") -> str:
    """A text file's content. Opened beneath the workspace without following a link or
    blocking (a FIFO would); only a regular file of at most MAX_READ_BYTES is read."""
    try:
        fd = ws.open(file_path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ToolError(f"{file_path}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{file_path}: is a directory") from None
    try:
        data = read_regular(fd, MAX_READ_BYTES, file_path)
    except IsADirectoryError:
        raise ToolError(f"{file_path}: is a directory") from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise ToolError(
                f"{file_path}: not a regular file (a FIFO, socket or device); not read"
            ) from None
        if exc.errno == errno.EFBIG:
            raise ToolError(f"{file_path}: over the {MAX_READ_BYTES}-byte read limit") from None
        raise ToolError(f"{file_path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if b"\x00" in data[:8192]:
        raise ToolError(f"{file_path}: binary file")
    return data.decode("utf-8", errors)


def read(ws: Workspace, file_path: str, view_range: list[int] | None = None) -> str:
    lines = _read_text(ws, file_path).splitlines()
    start, end = 1, len(lines)
    if view_range is not None:
        if len(view_range) != 2 or not all(isinstance(n, int) for n in view_range):
            raise ToolError("view_range must be [start, end] (1-based; end -1 means to the end)")
        start, end = view_range[0], (len(lines) if view_range[1] == -1 else view_range[1])
        if start < 1 or end < start - 1:
            raise ToolError(f"view_range {view_range} is out of order")
    numbered = [f"{n:6}\t{lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1)]
    return cap_text("\n".join(numbered)) if numbered else "(empty)"


def _open_for_write(ws: Workspace, file_path: str) -> int:
    """Open a regular file beneath the workspace for writing (making its directories),
    never blocking on a FIFO and never following a link swapped in after the check."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK
    try:
        fd = ws.open(file_path, flags, 0o644, make_parents=True)
    except IsADirectoryError:
        raise ToolError(f"{file_path}: is a directory") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads: O_NONBLOCK kept us from waiting
            raise ToolError(f"{file_path}: not a regular file; not written") from None
        raise ToolError(f"{file_path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolError(f"{file_path}: not a regular file; not written")
    os.set_blocking(fd, True)
    return fd


def _encode(text: str, label: str) -> bytes:
    # Undecodable bytes read in (as surrogates) go back out as the same bytes.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ToolError(f"{label}: the text holds characters that cannot be written") from None


def write(ws: Workspace, file_path: str, content: str) -> str:
    if file_path.endswith("/"):
        raise ToolError(f"{file_path}: names a directory, not a file")
    data = _encode(content, file_path)
    fd = _open_for_write(ws, file_path)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return f"wrote {len(data)} bytes to {ws.relative(ws.resolve(file_path))}"


def edit(
    ws: Workspace, file_path: str, old_string: str, new_string: str, replace_all: bool = False
) -> str:
    path = ws.resolve(file_path)
    # surrogateescape: bytes that are not UTF-8 survive the edit unchanged.
    text = _read_text(ws, file_path, "surrogateescape")
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
    data = _encode(updated, file_path)
    fd = _open_for_write(ws, file_path)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return f"replaced {count if replace_all else 1} occurrence(s) in {ws.relative(path)}"


def _walk(ws: Workspace, base: Path, deadline: float) -> list[Path]:
    """Regular files under ``base`` (links not followed, and directories walked by fds so
    one swapped for a link mid-walk is not entered); at most MAX_WALK of them, and only
    until ``deadline``."""
    found = []
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(base, follow_symlinks=False):
        if time.monotonic() > deadline:
            raise ToolError(f"the tree is too large to search within {SEARCH_BUDGET_S:g}s")
        dirnames[:] = sorted(d for d in dirnames if d not in (".git",))
        for name in sorted(filenames):
            with contextlib.suppress(OSError, PathEscapeError):
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
                candidate = Path(dirpath) / name
                # A link counts when it leads to a file inside the workspace.
                if stat.S_ISREG(mode) or (
                    stat.S_ISLNK(mode) and ws.resolve(str(candidate)).is_file()
                ):
                    found.append(candidate)
                    if len(found) >= MAX_WALK:
                        return found
    return found


def _budget_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise regex_timeout()
    return left


def regex_timeout() -> ToolError:
    return ToolError(
        f"the pattern ran over {SEARCH_BUDGET_S:g}s (it may backtrack catastrophically);"
        " give a simpler one"
    )


TOGETHER_S = 2.0  # files modified this close together count as written at once


def newest_first(paths: list[Path]) -> list[Path]:
    """Newest first; files written together (a checkout, a copied workspace: within
    ``TOGETHER_S`` of the newest of them) by name, so their order never hangs on which
    side of a clock tick each landed."""
    stamped = sorted(((p.lstat().st_mtime, str(p), p) for p in paths), reverse=True)
    out: list[Path] = []
    burst: list[tuple[str, Path]] = []
    newest = 0.0
    for mtime, name, path in stamped:
        if burst and newest - mtime > TOGETHER_S:
            out += [p for _, p in sorted(burst)]
            burst = []
        if not burst:
            newest = mtime
        burst.append((name, path))
    return out + [p for _, p in sorted(burst)]


def glob(ws: Workspace, pattern: str, path: str | None = None) -> str:
    deadline = time.monotonic() + SEARCH_BUDGET_S
    base = ws.resolve(path or ".")
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise PathEscapeError(f"{pattern}: glob patterns must be relative to the workspace")
    if len(pattern) > MAX_PATTERN:
        raise ToolError(f"the pattern is over {MAX_PATTERN} characters")
    compiled = glob_regex(pattern)
    matches = []
    try:
        for file in _walk(ws, base, deadline):
            rel = file.relative_to(base).as_posix()
            if compiled.fullmatch(rel, timeout=_budget_left(deadline)):
                matches.append(file)
    except TimeoutError:
        raise regex_timeout() from None
    matches = newest_first(matches)
    lines = [str(m.relative_to(ws.root)) for m in matches[:MAX_MATCHES]]
    if len(matches) > MAX_MATCHES:
        lines.append(f"[... {len(matches) - MAX_MATCHES} more matches not shown ...]")
    return "\n".join(lines) if lines else "no files match"


def grep(ws: Workspace, pattern: str, path: str | None = None) -> str:
    deadline = time.monotonic() + SEARCH_BUDGET_S
    if len(pattern) > MAX_PATTERN:
        raise ToolError(f"the pattern is over {MAX_PATTERN} characters")
    try:
        compiled = regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None
    base = ws.resolve(path or ".")
    files = [base] if base.is_file() else _walk(ws, base, deadline)
    lines: list[str] = []
    size = 0
    try:
        for file in files:
            _budget_left(deadline)  # reading files counts too, not only matching
            rel = str(file.relative_to(ws.root)) if file != ws.root else "."
            try:
                text = _read_text(ws, rel)
            except ToolError:
                continue  # binary or unreadable files are skipped, as grep -I does
            for number, line in enumerate(text.splitlines(), 1):
                if compiled.search(line, timeout=_budget_left(deadline)):
                    entry = f"{rel}:{number}:{line}"
                    lines.append(entry)
                    size += len(entry)
                    if len(lines) >= MAX_MATCHES or size > OUTPUT_LIMIT:
                        lines.append("[... more matches not shown ...]")
                        return "\n".join(lines)
    except TimeoutError:
        raise regex_timeout() from None
    return "\n".join(lines) if lines else "no matches"
