"""The command palette's session commands (ctrl+p): everything a key does to the selected
session, found by name; and ``markup_literal`` for palette text that must not be markup.

A screen offers its commands by having ``session_commands()`` (see ``SessionActions``);
the provider asks the screen the palette was opened on, so this module imports no screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content


def markup_literal(text: str) -> str:
    """``text`` for a place that parses Textual markup, shown exactly as written.

    Every ``[`` is escaped: ``textual.markup.escape`` leaves ``[ @click=app.quit]`` (a
    space first), ``[B …]`` and ``[$…]`` alone, and Textual's parser still reads those
    as tags, the first as a live click action.
    """
    return text.replace("[", "\\[")


class SessionCommand(NamedTuple):
    title: str  # plain text (it names the session: anyone's text), never markup
    help: str  # plain text too
    run: Callable[[], object]


@runtime_checkable
class OffersSessionCommands(Protocol):
    def session_commands(self) -> list[SessionCommand]: ...


def highlight(matcher: Matcher, plain: str) -> Content:
    """``plain`` with the letters the query matched marked; never parsed as markup
    (``Matcher.highlight`` parses its candidate)."""
    content = Content(plain)
    score, offsets = matcher.fuzzy_search.match(matcher.query, plain)
    for offset in offsets if score else ():
        if not plain[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class SessionCommands(Provider):
    def _commands(self) -> list[SessionCommand]:
        screen = self.screen
        return screen.session_commands() if isinstance(screen, OffersSessionCommands) else []

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(
                Content(command.title),
                command.run,
                text=command.title,
                help=markup_literal(command.help),
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    highlight(matcher, command.title),
                    command.run,
                    text=command.title,
                    help=markup_literal(command.help),
                )
