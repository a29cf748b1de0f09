"""Themes as data: ``themes/*.toml`` become Textual themes, reloaded when a file changes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from tui.core.errors import CorralError

COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
# Textual's own theme picker shows a theme's name as markup, so a name is a plain word:
# no brackets, no control characters, nothing a terminal or the palette would act on.
THEME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ThemeError(CorralError):
    """A theme file that cannot be used; the current theme stays."""


def load_theme(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeError(f"{path.name}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"{path.name}: invalid TOML: {exc}") from None
    unknown = set(data) - {"name", "dark", "variables", *COLOUR_KEYS}
    if unknown:
        raise ThemeError(f"{path.name}: unknown key {sorted(unknown)[0]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ThemeError(f"{path.name}: `name` is required")
    if not THEME_NAME.fullmatch(name):
        raise ThemeError(f"{path.name}: `name` must be letters, digits, '-', '_' or '.'")
    if not isinstance(data.get("primary"), str):
        raise ThemeError(f"{path.name}: `primary` colour is required")
    colours = {k: data[k] for k in COLOUR_KEYS if k in data}
    for key, value in colours.items():
        try:
            Color.parse(value)
        except ColorParseError as exc:
            raise ThemeError(f"{path.name}: {key}: {exc}") from None
    return Theme(
        name=name,
        dark=bool(data.get("dark", True)),
        variables=dict(data.get("variables", {})),
        **colours,
    )


def load_themes(directory: Path) -> tuple[list[Theme], list[ThemeError]]:
    themes, errors = [], []
    for path in sorted(directory.glob("*.toml")):
        try:
            themes.append(load_theme(path))
        except ThemeError as exc:
            errors.append(exc)
    return themes, errors
