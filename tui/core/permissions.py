"""Decides whether a tool call runs, asks first, or is refused. Enforced here, never by the model.

This is the per-tool policy of the spec (``enabled`` and ``permission_policy``).
Rules on paths, commands and hosts refine it in a later issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tui.core.spec import AgentSpec

Permission = Literal["allow", "ask", "deny"]


@dataclass(frozen=True)
class Decision:
    permission: Permission
    evaluation: str | None  # the policy that decided: always_allow / always_ask; None if refused
    reason: str


class PermissionEngine:
    def __init__(self, agent: AgentSpec) -> None:
        self.agent = agent

    def evaluate(self, name: str, tool_input: dict[str, Any]) -> Decision:
        config = self.agent.tool(name)
        if config is None:
            return Decision("deny", None, f"unknown tool {name!r}")
        if not config.enabled:
            return Decision("deny", None, f"tool {name!r} is not enabled for this agent")
        if config.permission_policy == "always_ask":
            return Decision("ask", "always_ask", f"{name}: permission_policy always_ask")
        return Decision("allow", "always_allow", f"{name}: permission_policy always_allow")

    def enabled_tools(self) -> list[str]:
        return [name for name, config in self.agent.tools.items() if config.enabled]
