"""Doublestar globs as regular expressions: one translation for the glob tool and for
path rules."""

from __future__ import annotations

import re

import regex


def glob_regex(
    pattern: str, *, dir_itself: bool = False, fold_case: bool = False
) -> regex.Pattern[str]:
    """``**`` spans directories, ``*`` and ``?`` stay within one, ``[…]`` is a class
    (``[!…]`` negated; an unclosed ``[`` is literal). With ``dir_itself``, a trailing
    ``/**`` also matches the directory (``src/**`` matches ``src``)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if dir_itself and pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        end = pattern.find("]", i + 1) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif end > 0:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    # The `regex` engine: the same syntax as `re`, plus a time limit per match that the
    # glob tool uses (a pattern from a model must not stall a session).
    return regex.compile("".join(out), regex.IGNORECASE if fold_case else 0)
