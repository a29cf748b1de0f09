"""A session's full transcript: messages as text, tool calls collapsible with their results."""

from __future__ import annotations

import json

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Collapsible, Static

from tui.core import events as ev
from tui.core.describe import one_line, tool_subject

MAX_ENTRIES = 400  # older entries leave the screen (they stay in the store: `corral show`)


class Transcript(VerticalScroll):
    DEFAULT_CSS = """
    Transcript { height: 1fr; }
    Transcript > Static { height: auto; margin: 0 0 1 0; }
    Transcript > Collapsible { height: auto; }
    Transcript .transcript--result { height: auto; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._tool_results: dict[str, Static] = {}
        self.last_seq = 0

    def add_events(self, events: list[ev.Event]) -> None:
        widgets = []
        for event in events:
            if event.seq <= self.last_seq:
                continue
            self.last_seq = event.seq
            widget = self._widget_for(event)
            if widget is not None:
                widgets.append(widget)
        if not widgets:
            return
        at_end = self.is_vertical_scroll_end
        self.mount_all(widgets)
        excess = len(self.children) - MAX_ENTRIES
        if excess > 0:
            for child in list(self.children)[:excess]:
                child.remove()
        if at_end:
            self.call_after_refresh(self.scroll_end, animate=False)

    def _widget_for(self, event: ev.Event) -> Static | Collapsible | None:
        p = event.payload
        match event.type:
            case ev.USER_MESSAGE:
                return Static(Text.assemble(("you  ", "bold"), event.text), classes="entry -user")
            case ev.AGENT_MESSAGE:
                return Static(
                    Text.assemble(("agent  ", "bold"), event.text), classes="entry -agent"
                )
            case ev.AGENT_THINKING:
                return Static(
                    Text(p.get("thinking", ""), style="italic dim"), classes="entry -thinking"
                )
            case ev.AGENT_TOOL_USE:
                name = p.get("name", "?")
                subject = one_line(tool_subject(name, p.get("input", {})), 90)
                verdict = p.get("evaluated_permission", "")
                result = Static(
                    "(running…)" if verdict != "ask" else "(waiting for approval)",
                    classes="transcript--result",
                )
                self._tool_results[event.id] = result
                body = Static(
                    Text(json.dumps(p.get("input", {}), indent=2, ensure_ascii=False), style="dim")
                )
                return Collapsible(
                    body,
                    result,
                    title=f"{name} [{verdict}]: {subject}",
                    collapsed=True,
                    classes="entry -tool",
                )
            case ev.AGENT_TOOL_RESULT:
                target = self._tool_results.pop(p.get("tool_use_id", ""), None)
                mark = "error" if p.get("is_error") else "ok"
                text = Text.assemble((f"{mark}\n", "bold"), event.text)
                if target is not None:
                    target.update(text)
                    return None
                return Static(text, classes="entry -result")
            case ev.USER_TOOL_CONFIRMATION:
                extra = f": {p['deny_message']}" if p.get("deny_message") else ""
                return Static(f"• you answered {p.get('result')}{extra}", classes="entry -status")
            case ev.SESSION_ERROR:
                return Static(f"! {p.get('error', {}).get('message', '')}", classes="entry -error")
            case ev.STATUS_IDLE:
                reason = (p.get("stop_reason") or {}).get("type", "")
                return Static(f"• idle ({reason})", classes="entry -status")
            case ev.USER_INTERRUPT:
                return Static("• interrupted by you", classes="entry -status")
        return None
