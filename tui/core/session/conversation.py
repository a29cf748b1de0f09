"""Folds a session's events into the conversation a model sees next.

The result is Messages-API shaped (role + content blocks) so providers can pass
it on; the scripted provider only counts assistant turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tui.core.session import events as ev
from tui.core.session.branches import visible


@dataclass
class Conversation:
    messages: list[dict[str, Any]] = field(default_factory=list)
    # Tool uses with no result yet, in order: what a resumed runner must settle first.
    open_tool_uses: dict[str, ev.Event] = field(default_factory=dict)
    confirmations: dict[str, ev.Event] = field(default_factory=dict)

    @property
    def assistant_turns(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "assistant")

    @property
    def awaits_model(self) -> bool:
        """True when the last word is the user's (a message or tool results)."""
        return (
            bool(self.messages) and self.messages[-1]["role"] == "user" and not self.open_tool_uses
        )

    def _append(self, role: str, block: dict[str, Any]) -> None:
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].append(block)
        else:
            self.messages.append({"role": role, "content": [block]})

    def apply(self, event: ev.Event) -> None:
        p = event.payload
        match event.type:
            case ev.USER_MESSAGE:
                for block in p.get("content", []):
                    self._append("user", dict(block))
            case ev.SPAN_MODEL_REQUEST_START:
                # Each request's output is a fresh assistant message.
                pass
            case ev.AGENT_MESSAGE:
                for block in p.get("content", []):
                    self._append("assistant", dict(block))
            case ev.AGENT_TOOL_USE:
                self._append(
                    "assistant",
                    {"type": "tool_use", "id": event.id, "name": p["name"], "input": p["input"]},
                )
                self.open_tool_uses[event.id] = event
            case ev.USER_TOOL_CONFIRMATION:
                self.confirmations[p["tool_use_id"]] = event
            case ev.AGENT_TOOL_RESULT:
                tool_use_id = p["tool_use_id"]
                self.open_tool_uses.pop(tool_use_id, None)
                self.confirmations.pop(tool_use_id, None)  # answered: kept no longer
                self._append(
                    "user",
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use_id,
                        "content": p.get("content", []),
                        "is_error": bool(p.get("is_error")),
                    },
                )


def started_tool_uses(conversation: Conversation) -> list[str]:
    """Open tool uses that may have started running: allowed by policy, or confirmed.

    What a stop that cuts the session off (an interrupt, a crash, an internal error)
    answers with an error result: they are never re-run silently. Uses still waiting
    for an answer stay open; they are the user's to decide.
    """
    out = []
    for tool_use_id, use in conversation.open_tool_uses.items():
        confirmation = conversation.confirmations.get(tool_use_id)
        if use.payload.get("evaluated_permission") == "allow" or (
            confirmation is not None and confirmation.payload.get("result") == "allow"
        ):
            out.append(tool_use_id)
    return out


def build_conversation(events: list[ev.Event]) -> Conversation:
    """The conversation of the current branch (a rewind leaves the abandoned one out)."""
    conversation = Conversation()
    for event in visible(events):
        conversation.apply(event)
    return conversation
