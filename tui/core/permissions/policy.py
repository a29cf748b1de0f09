"""Permission policies: per tool a default, refined by rules; enforced in the core.

A rule is ``allow``, ``ask`` or ``deny`` with a pattern:

- bash: a command pattern. Without wildcards it is a prefix of whole words
  (``git push`` matches ``git push origin main``); with ``*``/``?``/``[…]`` it is a glob
  over the whole command (``rm -rf *``); ``=pytest -q`` matches exactly that command.
  Every simple command of a compound line is judged on its own (see shell_split.py): a
  denied part denies the line even where another part cannot be read; otherwise a line
  that cannot be read is asked. A file a redirection writes (``> f``, ``>> f``) is
  judged by the write tool's deny and ask rules, and denied when the write tool's
  permission_policy is ``deny``.
- read, write, edit, glob, grep: a path glob relative to the workspace (``src/**``,
  ``.git/**``, ``*.md``). The path is resolved first (``..``, ``//``, ``/workspace/``,
  symlinks), and deny/ask rules also match case-insensitively, so ``.GIT/config``
  does not slip past ``.git/**``.

Precedence: **deny > ask > allow**, whatever the order of the rules. A part no rule
matches gets the tool's default (``always_allow`` → allow, ``always_ask`` → ask,
``deny`` → deny). A whole command gets the strictest of its parts' decisions.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tui.core.errors import CorralError, PathEscapeError
from tui.core.permissions.globs import glob_regex
from tui.core.permissions.shell_split import SUBST, Part, read_line
from tui.core.tools.workspace import Workspace

Permission = Literal["allow", "ask", "deny"]
DECISIONS: tuple[Permission, ...] = ("allow", "ask", "deny")
SEVERITY = {"allow": 0, "ask": 1, "deny": 2}
DEFAULTS = {"always_allow": "allow", "always_ask": "ask", "deny": "deny"}
PATH_TOOLS = ("read", "write", "edit", "glob", "grep")
COMMAND_TOOLS = ("bash",)


class RuleError(ValueError):
    """A rule that cannot be used, with the reason (shown as you type in the editor)."""


@dataclass(frozen=True)
class Rule:
    decision: Permission
    pattern: str

    def label(self, tool: str) -> str:
        return f"{tool}: {self.decision} {self.pattern!r}"

    def to_toml(self) -> dict[str, str]:
        return {self.decision: self.pattern}


@dataclass(frozen=True)
class Decision:
    permission: Permission
    evaluation: str | None  # what decided: a rule's label, or the tool's default policy
    reason: str
    rule: str | None = None  # the rule that decided, if one did


@dataclass
class ToolPolicy:
    enabled: bool = True
    default: str = "always_allow"  # always_allow | always_ask | deny
    rules: list[Rule] = field(default_factory=list)


def check_rule(tool: str, rule: Rule) -> None:
    """Raise RuleError when ``rule`` cannot work for ``tool``."""
    if rule.decision not in DECISIONS:
        raise RuleError(f"decision must be allow, ask or deny, not {rule.decision!r}")
    pattern = rule.pattern
    if not isinstance(pattern, str) or not pattern.strip():
        raise RuleError("the pattern is empty")
    if "\x00" in pattern or "\n" in pattern:
        raise RuleError("the pattern has a NUL or a newline")
    if _unbalanced_brackets(pattern):
        raise RuleError(f"{pattern!r}: an unclosed '['")
    if tool in PATH_TOOLS:
        if pattern.startswith("/"):
            raise RuleError(f"{pattern!r}: path rules are relative to the workspace")
        if ".." in pattern.split("/"):
            raise RuleError(f"{pattern!r}: a path rule cannot climb out with '..'")
    elif tool not in COMMAND_TOOLS:
        raise RuleError(f"tool {tool!r} takes no rules")


def _unbalanced_brackets(pattern: str) -> bool:
    depth = 0
    for c in pattern:
        if c == "[":
            depth += 1
        elif c == "]" and depth:
            depth -= 1
    return depth > 0


class Policy:
    """The tools' policies of one session (or a profile)."""

    def __init__(self, tools: dict[str, ToolPolicy], hosts: list[str] | None = None) -> None:
        self.tools = tools
        self.hosts = hosts or []  # network hosts the sandbox may reach (for `limited`)

    def evaluate(self, tool: str, tool_input: dict[str, Any], workspace: Path | None) -> Decision:
        config = self.tools.get(tool)
        if config is None:
            return Decision("deny", None, f"unknown tool {tool!r}")
        if not config.enabled:
            return Decision("deny", None, f"tool {tool!r} is not enabled for this agent")
        default: Permission = DEFAULTS.get(config.default, "ask")  # type: ignore[assignment]
        if tool in COMMAND_TOOLS:
            command = str(tool_input.get("command", ""))
            writes = self.tools.get("write")
            return _judge_command(tool, config, default, command, writes, workspace)
        if tool in PATH_TOOLS:
            return _judge_path(tool, config, default, tool_input, workspace)
        return Decision(default, config.default, f"{tool}: permission_policy {config.default}")

    def enabled_tools(self) -> list[str]:
        return [name for name, c in self.tools.items() if c.enabled]

    def to_data(self) -> dict[str, Any]:
        """JSON/TOML-shaped: what events and profiles store."""
        return {
            "tools": {
                name: {
                    "enabled": c.enabled,
                    "permission_policy": c.default,
                    "rules": [r.to_toml() for r in c.rules],
                }
                for name, c in self.tools.items()
            },
            "hosts": list(self.hosts),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Policy:
        tools: dict[str, ToolPolicy] = {}
        for name, raw in (data.get("tools") or {}).items():
            rules = [parse_rule(name, r) for r in raw.get("rules", [])]
            tools[name] = ToolPolicy(
                bool(raw.get("enabled", True)), raw.get("permission_policy", "always_allow"), rules
            )
        return cls(tools, list(data.get("hosts", [])))

    def copy(self) -> Policy:
        return Policy.from_data(self.to_data())


class PolicyDataError(CorralError):
    """Policy data (from an event or a bundle) that is not a policy."""


def check_policy_data(data: Any) -> None:
    """Raise PolicyDataError unless ``data`` is what ``Policy.to_data`` makes: known
    tools, their flags and defaults, rules that parse, hosts as strings."""
    if not isinstance(data, dict):
        raise PolicyDataError("must be an object")
    tools = data.get("tools") or {}
    hosts = data.get("hosts", [])
    if not isinstance(tools, dict):
        raise PolicyDataError("tools must be an object")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise PolicyDataError("hosts must be a list of strings")
    for name, raw in tools.items():
        if name not in (*PATH_TOOLS, *COMMAND_TOOLS) or not isinstance(raw, dict):
            raise PolicyDataError(f"unknown tool {name!r}")
        if not isinstance(raw.get("enabled", True), bool):
            raise PolicyDataError(f"{name}.enabled must be true or false")
        if raw.get("permission_policy", "always_allow") not in DEFAULTS:
            raise PolicyDataError(f"{name}.permission_policy is not one of {', '.join(DEFAULTS)}")
        rules = raw.get("rules", [])
        if not isinstance(rules, list):
            raise PolicyDataError(f"{name}.rules must be a list")
        for rule in rules:
            try:
                parse_rule(name, rule)
            except (RuleError, TypeError) as exc:
                raise PolicyDataError(f"{name}: {exc}") from None


def parse_rule(tool: str, raw: Any) -> Rule:
    """``{allow = "pattern"}`` (one key); RuleError says what is wrong."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RuleError("a rule is one of {allow = …}, {ask = …} or {deny = …}")
    ((decision, pattern),) = raw.items()
    rule = Rule(decision, pattern)
    check_rule(tool, rule)
    return rule


# -- commands ----------------------------------------------------------------------------


def command_matches(pattern: str, part: Part) -> bool:
    texts = {part.text, part.basename_text}
    if pattern.startswith("="):
        return pattern[1:] in texts
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(t, pattern) for t in texts)
    return any(t == pattern or t.startswith(pattern + " ") for t in texts)


def _judge_command(
    tool: str,
    config: ToolPolicy,
    default: Permission,
    command: str,
    writes: ToolPolicy | None,
    workspace: Path | None,
) -> Decision:
    line = read_line(command)
    decisions = [_judge_part(tool, config, default, part) for part in line.parts]
    targets = [("redirect to", t) for t in line.writes]
    targets += [(f"{name} writes", t) for name, t in line.changes]
    decisions += [
        decision
        for how, target in targets
        if (decision := _judge_write(tool, target, writes, workspace, how)) is not None
    ]
    # The strictest decision; among equals the first, so the reason names the first part.
    worst = max(decisions, key=lambda d: SEVERITY[d.permission], default=None)
    if line.unreadable and (worst is None or worst.permission != "deny"):
        # Whatever the rules say, what cannot be read is never allowed.
        permission = max(default, "ask", key=SEVERITY.__getitem__)
        reason = f"{tool}: cannot split the command ({line.unreadable[0]})"
        return Decision(permission, "unparseable", reason)  # type: ignore[arg-type]
    if worst is None:
        return Decision(default, config.default, f"{tool}: an empty command")
    return worst


def _judge_part(tool: str, config: ToolPolicy, default: Permission, part: Part) -> Decision:
    matched = [r for r in config.rules if command_matches(r.pattern, part)]
    if not matched:
        reason = f"{tool}: {part.text!r}: permission_policy {config.default}"
        return Decision(default, config.default, reason)
    rule = max(matched, key=lambda r: SEVERITY[r.decision])
    label = rule.label(tool)
    return Decision(rule.decision, label, f"{label} (part: {part.text!r})", label)


# Where output goes without making a file: never judged as a write.
NOT_FILES = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty")


def _judge_write(
    tool: str,
    target: str,
    writes: ToolPolicy | None,
    workspace: Path | None,
    how: str = "redirect to",
) -> Decision | None:
    """What the write tool's policy says of a redirection (or a command, writers.py)
    writing ``target``; None when it has nothing against it (its allow rules and default
    are the bash tool's business: bash writes files in ways no rule can see)."""
    if writes is None or target in NOT_FILES or target.startswith("/dev/fd/"):
        return None
    if writes.default == "deny":
        reason = f"{tool}: writes {target!r} and write: permission_policy deny"
        return Decision("deny", "write: permission_policy deny", reason)
    rules = [r for r in writes.rules if r.decision != "allow"]
    if not rules:
        return None
    if (
        "$" in target
        or SUBST in target
        or target.startswith("~")
        or any(c in target for c in "*?[")
    ):
        reason = f"{tool}: {how} {target!r}, which is only known when it runs"
        return Decision("ask", "unparseable", reason)
    try:
        rel = normalise(target, workspace)
    except PathEscapeError:
        return None  # outside the workspace: no path rule speaks of it
    matched = [r for r in rules if path_matches(r.pattern, rel, fold_case=True)]
    if not matched:
        return None
    rule = max(matched, key=lambda r: SEVERITY[r.decision])
    label = rule.label("write")
    return Decision(rule.decision, label, f"{label} ({how}: {rel})", label)


# -- paths -------------------------------------------------------------------------------


def tool_path(tool: str, tool_input: dict[str, Any]) -> str:
    if tool in ("glob", "grep"):
        return str(tool_input.get("path") or ".")
    return str(tool_input.get("file_path", ""))


def normalise(path: str, workspace: Path | None) -> str:
    """The workspace-relative real path, or raise PathEscapeError."""
    if workspace is not None:
        ws = Workspace(workspace)
        return ws.relative(ws.resolve(path))
    # No workspace to resolve against (the simulator on a moved session): lexical only.
    pure = posixpath.normpath(
        path.removeprefix("/workspace/") if path.startswith("/workspace/") else path
    )
    if pure.startswith("/") or pure == ".." or pure.startswith("../"):
        raise PathEscapeError(f"{path}: outside the workspace")
    return pure


def path_matches(pattern: str, rel: str, *, fold_case: bool) -> bool:
    regex = glob_regex(pattern, dir_itself=True, fold_case=fold_case)
    return bool(regex.fullmatch(rel)) or (rel == "." and pattern in ("**", "*"))


def _judge_path(
    tool: str,
    config: ToolPolicy,
    default: Permission,
    tool_input: dict[str, Any],
    workspace: Path | None,
) -> Decision:
    raw = tool_path(tool, tool_input)
    try:
        rel = normalise(raw, workspace)
    except PathEscapeError as exc:
        return Decision("deny", "path", f"{tool}: {exc}")
    matched = [
        r for r in config.rules if path_matches(r.pattern, rel, fold_case=r.decision != "allow")
    ]
    if not matched:
        return Decision(
            default, config.default, f"{tool}: {rel}: permission_policy {config.default}"
        )
    rule = max(matched, key=lambda r: SEVERITY[r.decision])
    label = rule.label(tool)
    return Decision(rule.decision, label, f"{label} (path: {rel})", label)
