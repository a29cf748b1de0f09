"""The keys of the screen, on one line: corral's footer, and where a filter is typed.

Textual's ``Footer`` recomposes (a widget per key) whenever the screen's bindings are
refreshed, which focus changes do: with panes taking focus at every arrow key that
was a rebuild per key press, and the old key widgets were not all released (Textual
issue #6666). This is one widget whose text is redrawn only when the keys it shows
change.

The filter is typed on the same line (``start_filter``): showing an input box instead
meant hiding one widget and showing another, a layout of the whole screen per ``/`` and
``escape`` (with 16 streaming panes, the slowest keys the dashboard had). Here only this
line repaints.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget

from tui.core.printable import printable_line


class KeyHints(Widget):
    DEFAULT_CSS = """
    KeyHints {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """
    BINDINGS = [
        Binding("backspace", "erase", show=False),
        Binding("enter", "keep", show=False),
    ]

    class FilterChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class FilterKept(Message):
        """Enter: the filter stays, the keys go back to the panes."""

    def __init__(self, placeholder: str = "") -> None:
        super().__init__()
        self._keys: tuple[tuple[str, str, bool], ...] = ()
        self._text = Text()
        self.placeholder = placeholder
        self.filtering = False  # the line shows the filter, not the keys
        self.filter_text = ""
        self.can_focus = False  # only while a filter is typed

    # -- the filter ---------------------------------------------------------------------

    def start_filter(self) -> None:
        self.filtering = self.can_focus = True
        self.focus()
        self.refresh()

    def stop_filter(self) -> None:
        self.filtering = self.can_focus = False
        self.filter_text = ""
        self.refresh()

    def check_consume_key(self, key: str, character: str | None) -> bool:
        # Typed text is the filter's, not the screen's one-key actions (y, d, p...).
        return self.filtering and self.has_focus and bool(character and character.isprintable())

    def on_key(self, event: events.Key) -> None:
        if self.filtering and event.character and event.character.isprintable():
            event.stop()
            self._set(self.filter_text + event.character)

    def on_paste(self, event: events.Paste) -> None:
        if self.filtering:
            event.stop()
            self._set(self.filter_text + " ".join(event.text.split()))

    def action_erase(self) -> None:
        if self.filter_text:
            self._set(self.filter_text[:-1])

    def action_keep(self) -> None:
        self.post_message(self.FilterKept())

    def _set(self, text: str) -> None:
        self.filter_text = text
        self.refresh()
        self.post_message(self.FilterChanged(text))

    def _filter_line(self) -> Text:
        key_style = self._key_style()
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" / ", style=key_style)
        if self.filter_text:
            text.append(printable_line(self.filter_text))
        elif self.has_focus:
            text.append(self.placeholder, style="dim")
        if self.has_focus:
            text.append("▏", style="bold")
        return text

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is not self.screen:
            return
        keys = tuple(
            (self.app.get_key_display(binding), binding.description, enabled)
            for (_, binding, enabled, _) in screen.active_bindings.values()
            if binding.show
        )
        if keys != self._keys:  # most focus changes leave the keys as they were
            self._keys = keys
            self._text = self._render_keys(keys)
            self.refresh()

    def _render_keys(self, keys: tuple[tuple[str, str, bool], ...]) -> Text:
        key_style = self._key_style()
        text = Text(no_wrap=True, overflow="ellipsis")
        for display, description, enabled in keys:
            style = "" if enabled else "dim"
            text.append(f" {display} ", style=f"{key_style} {style}".strip())
            text.append(f"{description} ", style=style)
        return text

    def _key_style(self) -> str:
        return f"bold {self.app.current_theme.accent or ''}".strip()

    def render(self) -> Text:
        return self._filter_line() if self.filtering else self._text

    @property
    def shown(self) -> tuple[tuple[str, str, bool], ...]:
        """What the line offers: (key, description, enabled), for tests."""
        return self._keys
