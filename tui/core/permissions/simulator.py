"""Try a policy before using it: replay recorded tool uses through it, derive the
tightest policy a session's work needed, and propose the rule an approval could become.
"""

from __future__ import annotations

import posixpath
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tui.core.permissions.policy import PATH_TOOLS, Policy, Rule, ToolPolicy, normalise, tool_path
from tui.core.permissions.shell_split import Unparseable, split_command
from tui.core.session import events as ev
from tui.core.session.describe import tool_subject
from tui.core.session.spec import TOOL_NAMES

# Programs whose second word is a subcommand worth keeping in a proposed rule.
SUBCOMMANDS = {
    "git",
    "npm",
    "pip",
    "pip3",
    "cargo",
    "go",
    "docker",
    "uv",
    "poetry",
    "make",
    "kubectl",
    "yarn",
    "pnpm",
    "apt",
    "apt-get",
    "brew",
    "python3",
    "python",
}


@dataclass(frozen=True)
class SimRow:
    session_id: str
    seq: int
    tool: str
    subject: str
    recorded: str  # what was decided when it ran
    simulated: str  # what this policy decides
    rule: str | None

    @property
    def changed(self) -> bool:
        return self.recorded != self.simulated


def simulate(
    policy: Policy, sessions: dict[str, tuple[list[ev.Event], Path | None]]
) -> list[SimRow]:
    """Every recorded tool use of ``sessions`` judged by ``policy``.

    Paths are resolved against the session's workspace as it is now when it still
    exists; otherwise lexically.
    """
    rows = []
    for sid, (events, workspace) in sessions.items():
        root = workspace if workspace is not None and workspace.is_dir() else None
        for event in events:
            if event.type != ev.AGENT_TOOL_USE:
                continue
            name, tool_input = event.payload["name"], event.payload.get("input", {})
            decision = policy.evaluate(name, tool_input, root)
            rows.append(
                SimRow(
                    sid,
                    event.seq,
                    name,
                    tool_subject(name, tool_input),
                    event.payload.get("evaluated_permission", "?"),
                    decision.permission,
                    decision.rule,
                )
            )
    return rows


def summary(rows: list[SimRow]) -> Counter[str]:
    return Counter(r.simulated for r in rows)


def suggest(events: list[ev.Event], default: str = "always_ask") -> Policy:
    """The tightest policy that still allows every tool use the session made: each
    command and each path exactly, everything else left to ``default``."""
    tools = {name: ToolPolicy(False, default, []) for name in TOOL_NAMES}
    for event in events:
        if event.type != ev.AGENT_TOOL_USE:
            continue
        name, tool_input = event.payload["name"], event.payload.get("input", {})
        if name not in tools:
            continue
        tool = tools[name]
        tool.enabled = True
        for rule in _exact_rules(name, tool_input):
            if rule not in tool.rules:
                tool.rules.append(rule)
    return Policy(tools)


def _exact_rules(name: str, tool_input: dict) -> list[Rule]:
    if name == "bash":
        try:
            parts = split_command(str(tool_input.get("command", "")))
        except Unparseable:
            return []  # left to the default: a line that cannot be split is asked anyway
        return [Rule("allow", "=" + part.text) for part in parts if part.argv]
    if name in PATH_TOOLS:
        try:
            rel = normalise(tool_path(name, tool_input), None)
        except Exception:
            return []
        return [Rule("allow", _glob_escape(rel) if rel != "." else "**")]
    return []


def _glob_escape(text: str) -> str:
    # An exact path rule must not widen: brackets make wildcards literal.
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def propose_rule(name: str, tool_input: dict) -> Rule | None:
    """The rule "always allow this" would add: a command prefix, or a directory glob."""
    if name == "bash":
        try:
            parts = split_command(str(tool_input.get("command", "")))
        except Unparseable:
            return None  # cannot be split, so it could not be allowed by a rule either
        if len(parts) != 1:
            return None  # a compound line: allow its parts one by one instead
        argv = parts[0].argv
        program = posixpath.basename(argv[0])
        words = [program]
        if program in SUBCOMMANDS and len(argv) > 1 and not argv[1].startswith("-"):
            words.append(argv[1])
        return Rule("allow", shlex.join(words))
    if name in PATH_TOOLS:
        try:
            rel = normalise(tool_path(name, tool_input), None)
        except Exception:
            return None
        directory = posixpath.dirname(rel)
        return Rule("allow", f"{directory}/**" if directory else _glob_escape(rel))
    return None
