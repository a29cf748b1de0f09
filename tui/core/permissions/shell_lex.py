"""Read a shell command line into simple commands: quoting, substitutions, operators and
redirections, as far as characters and words go (what the commands run is
shell_split.py's business).

``$( … )``, backticks and process substitutions are lifted out and their contents read
on their own (``$(`` and backticks also inside double quotes); ``$'…'`` strings are
decoded (``$'\\x72m'`` is ``rm``); each simple command keeps the files its
redirections write and where its input comes from (a pipe, a here-string, a file).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

SUBST = "__SUBST__"  # stands for a substitution's output: only known when it runs

# Shell punctuation, longest first: a lexer token like `2>&1`'s `>&` or `;>` is cut into these.
REDIRECTS = ("<<<", "&>>", "<<", ">>", ">|", "<>", ">&", "<&", "&>", "<", ">")
CONTROLS = ("&&", "||", ";;", "|&", ";", "&", "|", "(", ")")
OPERATORS = sorted((*REDIRECTS, *CONTROLS), key=len, reverse=True)
WRITES = {">", ">>", ">|", "&>", "&>>", "<>"}
GROUP_WORDS = {"{", "}", "!"}
ANSI_C_ESCAPE = re.compile(
    r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.DOTALL
)
ANSI_C_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


class Unparseable(ValueError):
    """A command line whose parts cannot all be told apart: ask, never allow."""


@dataclass
class SimpleCommand:
    """One simple command as the lexer saw it, with where its input comes from."""

    argv: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    piped_from: tuple[str, ...] | None = None  # () when the pipe's writer is not one command
    here_string: str | None = None  # `<<< text`
    stdin_redirected: bool = False  # `< file` or a here-document


def lift_substitutions(command: str) -> tuple[str, list[str]]:
    """Replace each ``$( … )``, `` `…` ``, ``<( … )`` and ``>( … )`` with a plain word and
    return their contents; decode ``$'…'`` strings.

    One character-level scanner over quoting, escapes and nesting: splitting it would
    spread one state machine (and its bypass tests) over several functions."""
    out: list[str] = []
    inner: list[str] = []
    i, n = 0, len(command)
    quote: str | None = None
    while i < n:
        c = command[i]
        if quote == "'":
            out.append(c)
            if c == "'":
                quote = None
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            out.append(command[i : i + 2])
            i += 2
            continue
        if quote is None and command.startswith("$'", i):
            text, i = _ansi_c(command, i)
            out.append(shlex.quote(text))
            continue
        if quote is None and command.startswith('$"', i):
            i += 1  # a locale-translated string: the same words as "…"
            continue
        if c in "'\"" and (quote is None or quote == c):
            if c == "'" and quote is None:
                quote = "'"
            elif c == '"':
                quote = None if quote == '"' else '"'
            out.append(c)
            i += 1
            continue
        if command.startswith("$((", i):
            # Usually arithmetic, but `$(( cmd ))` can be a subshell in a substitution:
            # judge the inside as commands too (harmless for `6*7`, caught for `rm …`).
            end = _matching_paren(command, i + 1)
            inner.append(command[i + 3 : end - 1])
            out.append("0")
            i = end + 1
            continue
        process = quote is None and command.startswith(("<(", ">("), i)
        if command.startswith("$(", i) or process:
            end = _matching_paren(command, i + 1)
            inner.append(command[i + 2 : end])
            out.append(SUBST)
            i = end + 1
            continue
        if c == "`":
            end = command.find("`", i + 1)
            while end != -1 and command[end - 1] == "\\":
                end = command.find("`", end + 1)
            if end == -1:
                raise Unparseable("an unclosed backtick")
            # Inside backticks, \` \$ and \\ stand for ` $ and \ (how nesting is written).
            body = command[i + 1 : end]
            body = body.replace("\\\\", "\x00").replace("\\`", "`").replace("\\$", "$")
            inner.append(body.replace("\x00", "\\"))
            out.append(SUBST)
            i = end + 1
            continue
        out.append(c)
        i += 1
    if quote:
        raise Unparseable("an unclosed quote")
    return "".join(out), inner


def _ansi_c(command: str, start: int) -> tuple[str, int]:
    """The text of the ``$'…'`` string at ``start`` with its escapes decoded, and the
    index after it: ``$'\\x72m'`` is ``rm`` to the shell, so it is to the rules."""
    out: list[str] = []
    i = start + 2
    while i < len(command):
        if command[i] == "'":
            text = "".join(out)
            if "\x00" in text:
                raise Unparseable("a NUL in a $'…' string")
            return text, i + 1
        match = ANSI_C_ESCAPE.match(command, i)
        if match is None:
            out.append(command[i])
            i += 1
            continue
        out.append(_ansi_c_char(match.group(1)))
        i = match.end()
    raise Unparseable("an unclosed $' string")


def _ansi_c_char(escape: str) -> str:
    head = escape[0]
    if head in "xuU" and len(escape) > 1:
        code = int(escape[1:], 16)
        if code > 0x10FFFF:
            raise Unparseable("an escape past Unicode in a $'…' string")
        return chr(code)
    if head in "01234567":
        return chr(int(escape, 8) & 0xFF)
    if head == "c" and len(escape) == 2:
        return chr(ord(escape[1]) & 0x1F)
    return ANSI_C_SIMPLE.get(escape, "\\" + escape)  # bash keeps unknown escapes as written


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Unparseable("an unclosed $(")


def tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise Unparseable(str(exc)) from None


def _operators(token: str) -> list[str] | None:
    """The shell operators a punctuation token is made of (``;>`` → ``;``, ``>``), or
    None for a word. A quoted ``'>'`` arrives as the same token: reading it as an
    operator only makes the judgement stricter."""
    if not token or not set(token) <= set(";&|()<>"):
        return None
    ops: list[str] = []
    i = 0
    while i < len(token):
        op = next(o for o in OPERATORS if token.startswith(o, i))
        ops.append(op)
        i += len(op)
    return ops


def simple_commands(words: list[str]) -> list[SimpleCommand]:
    commands: list[SimpleCommand] = []
    current = SimpleCommand()

    def end(piped_from: tuple[str, ...] | None) -> None:
        nonlocal current
        if current.argv or current.writes:
            commands.append(current)
        current = SimpleCommand(piped_from=piped_from)

    i = 0
    while i < len(words):
        token = words[i]
        ops = _operators(token)
        if ops is None:
            following = _operators(words[i + 1]) if i + 1 < len(words) else None
            if token.isdigit() and following and following[0] in REDIRECTS:
                pass  # a file descriptor number in front of a redirection: `2>&1`
            elif token in GROUP_WORDS:
                end(current.piped_from if not current.argv else None)
            else:
                current.argv.append(token)
            i += 1
            continue
        for k, op in enumerate(ops):
            if op in REDIRECTS:
                last = k == len(ops) - 1
                target = words[i + 1] if last and i + 1 < len(words) else None
                if target is None or _operators(target) is not None:
                    raise Unparseable(f"a {op!r} redirection without a target")
                _redirect(current, op, target)
                i += 1  # the target is consumed with its operator
            elif op in ("|", "|&"):
                end(tuple(current.argv) if current.argv else ())
            elif op == "(":
                end(current.piped_from if not current.argv else None)  # `a | ( sh )`
            else:
                end(None)
        i += 1
    end(None)
    return commands


def _redirect(simple: SimpleCommand, op: str, target: str) -> None:
    if op in WRITES or (op == ">&" and not (target.isdigit() or target == "-")):
        simple.writes.append(target)  # `>& file` writes; `>&2` and `>&-` are descriptors
    elif op == "<<<":
        simple.here_string = target
    elif op in ("<", "<<"):
        # A here-document's lines arrive as commands of their own (the lexer sees them)
        # and are judged there: stricter than the shell, never looser.
        simple.stdin_redirected = True
