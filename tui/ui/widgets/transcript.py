"""A session's full transcript: messages as text, tool calls collapsible with their results.

Everything here is outside text (the model's words, commands, tool output, file names):
each piece goes through ``printable`` and reaches a widget as ``Text`` or ``Content``,
never as a str a widget would parse as markup.
"""

from __future__ import annotations

import json

from rich.text import Text
from textual.containers import VerticalScroll
from textual.content import Content, Span
from textual.style import Style
from textual.widgets import Collapsible, Static

from tui.core.printable import printable, printable_line
from tui.core.session import events as ev
from tui.core.session.describe import one_line, tool_subject

MAX_ENTRIES = 400  # older entries leave the screen (they stay in the store: `corral show`)


def tool_title(name: str, subject: str) -> Content:
    """A tool call's collapsible title, as plain Content (a str title is parsed as markup).

    The title used to be the markup ``f"{name} [{verdict}]: {subject}"``, in which the
    verdict read as a style tag and vanished, leaving "name : subject" with the rest in a
    span of its own. That look is kept, span and all, so the picture (and the snapshot
    baselines) do not change; showing the verdict would be a change of its own.
    """
    plain = f"{name} : {subject}"
    return Content(plain, spans=[Span(len(name) + 1, len(plain), Style())])


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
                text = Text.assemble(("you  ", "bold"), printable(event.text))
                return Static(text, classes="entry -user")
            case ev.AGENT_MESSAGE:
                text = Text.assemble(("agent  ", "bold"), printable(event.text))
                return Static(text, classes="entry -agent")
            case ev.AGENT_THINKING:
                text = Text(printable(p.get("thinking", "")), style="italic dim")
                return Static(text, classes="entry -thinking")
            case ev.AGENT_TOOL_USE:
                raw_name = p.get("name", "?")
                name = printable_line(str(raw_name))
                subject = printable_line(one_line(tool_subject(raw_name, p.get("input", {})), 90))
                verdict = p.get("evaluated_permission", "")
                result = Static(
                    "(running…)" if verdict != "ask" else "(waiting for approval)",
                    classes="transcript--result",
                )
                self._tool_results[event.id] = result
                tool_input = json.dumps(p.get("input", {}), indent=2, ensure_ascii=False)
                body = Static(Text(printable(tool_input), style="dim"))
                return Collapsible(
                    body,
                    result,
                    title=tool_title(name, subject),  # type: ignore[arg-type]
                    collapsed=True,
                    classes="entry -tool",
                )
            case ev.AGENT_TOOL_RESULT:
                target = self._tool_results.pop(p.get("tool_use_id", ""), None)
                mark = "error" if p.get("is_error") else "ok"
                text = Text.assemble((f"{mark}\n", "bold"), printable(event.text))
                if target is not None:
                    target.update(text)
                    return None
                return Static(text, classes="entry -result")
            case ev.USER_TOOL_CONFIRMATION:
                extra = f": {p['deny_message']}" if p.get("deny_message") else ""
                text = Text(printable(f"• you answered {p.get('result')}{extra}"))
                return Static(text, classes="entry -status")
            case ev.SESSION_ERROR:
                message = p.get("error", {}).get("message", "")
                return Static(Text(printable(f"! {message}")), classes="entry -error")
            case ev.STATUS_IDLE:
                reason = (p.get("stop_reason") or {}).get("type", "")
                return Static(Text(printable_line(f"• idle ({reason})")), classes="entry -status")
            case ev.USER_INTERRUPT:
                return Static("• interrupted by you", classes="entry -status")
        return None
