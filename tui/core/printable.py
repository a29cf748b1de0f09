"""Text from outside made safe to show in a terminal.

Model output, tool output, titles and file names may carry terminal control sequences
(an ``ESC [2J`` that clears the screen, an OSC that sets the window title or writes the
clipboard), carriage returns that overwrite what came before, bidirectional overrides
that reorder a line, or lone surrogates from file names that are not UTF-8. Before any
of it reaches a terminal (headless output, ``show``, ``ls``, the app) it goes through
``printable``: newlines and tabs stay, everything else of that kind becomes a visible
escape such as ``\\x1b``, so nothing is hidden and nothing is obeyed.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, bidi embeddings/overrides/isolates,
# line/paragraph separators, and surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab shown as an escape."""
    return _UNSAFE.sub(_escape, text)


def printable_line(text: str) -> str:
    """``printable`` for one line: newlines and tabs are escaped too."""
    return printable(text).replace("\n", "\\n").replace("\t", "\\t")


def is_printable(text: str) -> bool:
    return _UNSAFE.search(text) is None
