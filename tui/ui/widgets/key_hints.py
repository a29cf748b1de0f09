"""The keys of the screen, on one line: corral's footer.

Textual's ``Footer`` recomposes (a widget per key) whenever the screen's bindings are
refreshed, which focus changes do: with panes taking focus at every arrow key that
was a rebuild per key press, and the old key widgets were not all released (Textual
issue #6666). This is one widget whose text is redrawn only when the keys it shows
change.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widget import Widget


class KeyHints(Widget):
    DEFAULT_CSS = """
    KeyHints {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: tuple[tuple[str, str, bool], ...] = ()
        self._text = Text()

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
        key_style = f"bold {self.app.current_theme.accent or ''}".strip()
        text = Text(no_wrap=True, overflow="ellipsis")
        for display, description, enabled in keys:
            style = "" if enabled else "dim"
            text.append(f" {display} ", style=f"{key_style} {style}".strip())
            text.append(f"{description} ", style=style)
        return text

    def render(self) -> Text:
        return self._text

    @property
    def shown(self) -> tuple[tuple[str, str, bool], ...]:
        """What the line offers: (key, description, enabled), for tests."""
        return self._keys
