"""File tools: paths never leave the workspace; edit needs a unique match; output is capped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tui.core.errors import PathEscapeError, ToolError
from tui.core.sandboxes.local import LocalSandbox
from tui.core.tools import files
from tui.core.tools.output import OUTPUT_LIMIT
from tui.core.tools.toolset import Toolset
from tui.core.tools.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("x = 1\ny = 2\nx = 3\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret\n")
    os.symlink(outside, root / "link_out")
    os.symlink(tmp_path, root / "dir_out")
    os.symlink("src/a.py", root / "link_in")
    return Workspace(root)


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "src/../../secret.txt",
        "/etc/passwd",
        "link_out",
        "dir_out/secret.txt",
        "/workspace/../etc/passwd",
    ],
)
def test_paths_outside_the_workspace_are_refused(ws: Workspace, path: str) -> None:
    with pytest.raises(PathEscapeError):
        files.read(ws, path)
    with pytest.raises(PathEscapeError):
        files.write(ws, path, "pwned")
    assert (ws.root.parent / "secret.txt").read_text() == "top secret\n"


def test_write_through_symlinked_dir_is_refused(ws: Workspace) -> None:
    with pytest.raises(PathEscapeError):
        files.write(ws, "dir_out/new.txt", "pwned")
    assert not (ws.root.parent / "new.txt").exists()


def test_paths_inside_are_fine(ws: Workspace) -> None:
    assert "x = 1" in files.read(ws, "link_in")
    assert "y = 2" in files.read(ws, "/workspace/src/a.py")
    assert "y = 2" in files.read(ws, str(ws.root / "src" / "a.py"))
    files.write(ws, "new/deep/file.txt", "hello")
    assert (ws.root / "new/deep/file.txt").read_text() == "hello"


def test_read_view_range(ws: Workspace) -> None:
    out = files.read(ws, "src/a.py", [2, -1])
    assert out.splitlines() == ["     2\ty = 2", "     3\tx = 3"]
    with pytest.raises(ToolError):
        files.read(ws, "src/a.py", [3, 1])


def test_edit_requires_a_unique_match(ws: Workspace) -> None:
    with pytest.raises(ToolError, match="occurs 2 times"):
        files.edit(ws, "src/a.py", "x = ", "z = ")
    assert (ws.root / "src/a.py").read_text() == "x = 1\ny = 2\nx = 3\n"
    with pytest.raises(ToolError, match="not found"):
        files.edit(ws, "src/a.py", "q = 9", "z")
    files.edit(ws, "src/a.py", "y = 2", "y = 20")
    assert (ws.root / "src/a.py").read_text() == "x = 1\ny = 20\nx = 3\n"
    files.edit(ws, "src/a.py", "x = ", "z = ", replace_all=True)
    assert (ws.root / "src/a.py").read_text() == "z = 1\ny = 20\nz = 3\n"


def test_glob_and_grep_stay_inside(ws: Workspace) -> None:
    listed = files.glob(ws, "**/*").splitlines()
    assert "src/a.py" in listed
    assert not any("secret" in line for line in listed)
    assert "top secret" not in files.grep(ws, "secret")
    # link_in points inside the workspace, so it is searched like any file.
    assert sorted(files.grep(ws, r"y = \d").splitlines()) == ["link_in:2:y = 2", "src/a.py:2:y = 2"]
    with pytest.raises(PathEscapeError):
        files.glob(ws, "../*")
    with pytest.raises(PathEscapeError):
        files.grep(ws, "x", "..")


async def test_toolset_reports_errors_as_results(ws: Workspace) -> None:
    sandbox = LocalSandbox(ws.root, bubblewrap=False)
    tools = Toolset(ws, sandbox)
    try:
        out = await tools.run("read", {"file_path": "../secret.txt"})
        assert out.is_error and "outside the workspace" in out.text
        out = await tools.run("edit", {"file_path": "src/a.py"})
        assert out.is_error and "missing required input `old_string`" in out.text
        out = await tools.run("read", {"file_path": 7})
        assert out.is_error and "must be string" in out.text
        out = await tools.run("launch", {})
        assert out.is_error and "unknown tool" in out.text
    finally:
        await sandbox.close()


async def test_long_output_is_capped_with_a_marker(ws: Workspace) -> None:
    (ws.root / "big.txt").write_text("line\n" * 50_000)
    sandbox = LocalSandbox(ws.root, bubblewrap=False)
    tools = Toolset(ws, sandbox)
    try:
        for out in (
            await tools.run("bash", {"command": "cat big.txt; echo THE-END"}),
            await tools.run("read", {"file_path": "big.txt"}),
        ):
            assert "truncated by corral" in out.text
            assert len(out.text.encode()) < OUTPUT_LIMIT + 200
        assert (
            (await tools.run("bash", {"command": "cat big.txt; echo THE-END"}))
            .text.rstrip()
            .endswith("THE-END")
        )
    finally:
        await sandbox.close()


def test_glob_lists_newest_first_and_files_written_together_by_name(ws: Workspace) -> None:
    root = ws.root
    for name, age in (("b.txt", 100.0), ("a.txt", 100.7), ("c.txt", 101.4), ("new.txt", 0.0)):
        path = root / name
        path.write_text(name)
        when = time.time() - age
        os.utime(path, (when, when))  # b/a/c straddle a second boundary, written together
    listed = files.glob(ws, "*.txt").splitlines()
    assert listed[:4] == ["new.txt", "a.txt", "b.txt", "c.txt"]
