"""Runs one tool call: checks its input against the toolset's shape, then does it.

File tools act on the workspace directory directly (the sandbox mounts the same
directory, so both see one tree); ``bash`` goes to the session's sandbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tui.core.errors import SandboxError, SandboxLost, ToolError
from tui.core.sandboxes.base import Sandbox
from tui.core.tools import files
from tui.core.tools.workspace import Workspace

DEFAULT_BASH_TIMEOUT_MS = 120_000
FILE_TOOL_TIMEOUT_S = 30.0
MAX_BASH_TIMEOUT_MS = 600_000

# name -> (required keys with types, optional keys with types)
_SHAPES: dict[
    str, tuple[dict[str, type | tuple[type, ...]], dict[str, type | tuple[type, ...]]]
] = {
    "bash": ({}, {"command": str, "restart": bool, "timeout_ms": int}),
    "read": ({"file_path": str}, {"view_range": list}),
    "write": ({"file_path": str, "content": str}, {}),
    "edit": ({"file_path": str, "old_string": str, "new_string": str}, {"replace_all": bool}),
    "glob": ({"pattern": str}, {"path": str}),
    "grep": ({"pattern": str}, {"path": str}),
}

_DESCRIPTIONS = {
    "bash": "Run a shell command in the session's persistent bash (cwd and env persist).",
    "read": "Read a text file with line numbers; view_range [start, end] selects lines.",
    "write": "Write a whole file, creating parent directories.",
    "edit": (
        "Replace old_string with new_string; old_string must match exactly once unless replace_all."
    ),
    "glob": "List files matching a doublestar glob, newest first.",
    "grep": "Search file contents with a regular expression.",
}

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", list: "array"}


def tool_schemas(names: list[str]) -> list[dict[str, Any]]:
    """Messages-API tool definitions for the enabled tools."""
    schemas = []
    for name in names:
        required, optional = _SHAPES[name]
        props = {
            key: {"type": _JSON_TYPES[kind]}  # type: ignore[index]
            for key, kind in {**required, **optional}.items()
        }
        if "view_range" in props:
            props["view_range"]["items"] = {"type": "integer"}
        schemas.append(
            {
                "name": name,
                "description": _DESCRIPTIONS[name],
                "input_schema": {"type": "object", "properties": props, "required": list(required)},
            }
        )
    return schemas


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    is_error: bool


def check_input(name: str, tool_input: dict[str, Any]) -> None:
    required, optional = _SHAPES[name]
    for key in required:
        if key not in tool_input:
            raise ToolError(f"{name}: missing required input `{key}`")
    for key, value in tool_input.items():
        kind = required.get(key) or optional.get(key)
        if kind is None:
            raise ToolError(f"{name}: unknown input `{key}`")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ToolError(f"{name}: `{key}` must be {_JSON_TYPES[kind]}")  # type: ignore[index]


class Toolset:
    def __init__(self, workspace: Workspace, sandbox: Sandbox) -> None:
        self.workspace = workspace
        self.sandbox = sandbox

    async def run(self, name: str, tool_input: dict[str, Any]) -> ToolOutcome:
        try:
            if name not in _SHAPES:
                raise ToolError(f"unknown tool {name!r}")
            check_input(name, tool_input)
            if name == "bash":
                return await self._bash(tool_input)
            # A file tool on a slow or hung mount must not hang the session: after the
            # timeout it gets an error result (the thread is left to finish on its own).
            text = await asyncio.wait_for(
                asyncio.to_thread(self._file_tool, name, tool_input), FILE_TOOL_TIMEOUT_S
            )
            return ToolOutcome(text, False)
        except TimeoutError:
            return ToolOutcome(
                f"error: {name} did not finish within {FILE_TOOL_TIMEOUT_S:g}s; abandoned", True
            )
        except SandboxLost:
            raise  # not the tool's fault: the runner gets a new container and says so
        except (ToolError, SandboxError) as exc:
            return ToolOutcome(f"error: {exc}", True)
        except OSError as exc:
            return ToolOutcome(f"error: {exc.strerror or exc}", True)

    def _file_tool(self, name: str, i: dict[str, Any]) -> str:
        ws = self.workspace
        match name:
            case "read":
                return files.read(ws, i["file_path"], i.get("view_range"))
            case "write":
                return files.write(ws, i["file_path"], i["content"])
            case "edit":
                return files.edit(
                    ws, i["file_path"], i["old_string"], i["new_string"], bool(i.get("replace_all"))
                )
            case "glob":
                return files.glob(ws, i["pattern"], i.get("path"))
            case "grep":
                return files.grep(ws, i["pattern"], i.get("path"))
        raise ToolError(f"unknown tool {name!r}")

    async def _bash(self, i: dict[str, Any]) -> ToolOutcome:
        if i.get("restart"):
            await self.sandbox.restart()
            if not i.get("command"):
                return ToolOutcome("shell restarted", False)
        command = i.get("command")
        if not command:
            raise ToolError("bash: give `command` (or `restart: true`)")
        timeout_ms = i.get("timeout_ms", DEFAULT_BASH_TIMEOUT_MS)
        if not 1 <= timeout_ms <= MAX_BASH_TIMEOUT_MS:
            raise ToolError(f"bash: timeout_ms must be between 1 and {MAX_BASH_TIMEOUT_MS}")
        result = await self.sandbox.bash(command, timeout_ms / 1000)
        text = result.output
        if result.note:
            text = f"{text}\n[{result.note}]" if text else f"[{result.note}]"
        if result.exit_code not in (0, None):
            text = (
                f"{text}\n[exit code {result.exit_code}]"
                if text
                else f"[exit code {result.exit_code}]"
            )
        return ToolOutcome(text or "(no output)", result.exit_code != 0)
