"""Split a shell command line into the simple commands it would run, so each is judged.

``a && b``, ``a || b``, ``a; b``, ``a | b``, ``a & b``, newlines, ``( … )`` and
``{ …; }`` groups, ``$( … )`` and backtick substitutions (also inside double quotes),
``bash -c '…'`` / ``sh -c``, ``eval …``, ``find … -exec … ;`` and wrappers such as
``sudo``, ``env``, ``nohup``, ``timeout``, ``xargs`` all yield the commands inside them.
Quoting tricks (``r''m``, ``\\rm``, ``"rm"``) are undone by the tokenizer, and a
command name given by a path (``/bin/rm``) is also judged by its basename.

What cannot be understood — unbalanced quotes, a command name that is a variable or
a substitution, process substitution, arithmetic, functions — raises ``Unparseable``:
the caller must ask, never allow.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

MAX_DEPTH = 8  # nested -c / eval / substitutions; deeper is treated as unparseable

OPERATORS = {";", "&&", "||", "|", "&", "|&", ";;", "\n", "(", ")", "{", "}", "!"}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "busybox sh", "ash"}
# Wrappers run their argument as a command: (name, options that take a value).
WRAPPERS: dict[str, set[str]] = {
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"},
    "doas": {"-u", "-C"},
    "env": {"-u", "-C", "-S", "--unset", "--chdir"},
    "nohup": set(),
    "nice": {"-n"},
    "ionice": {"-c", "-n", "-t"},
    "time": {"-f", "-o"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "stdbuf": {"-i", "-o", "-e"},
    "command": set(),
    "builtin": set(),
    "exec": {"-a"},
    "xargs": {"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--max-args", "--max-procs"},
    "busybox": set(),
    "chroot": set(),
    "setsid": set(),
    "unbuffer": set(),
    "watch": {"-n", "-d"},
    "strace": {"-e", "-o", "-p"},
    "ltrace": {"-e", "-o"},
    "flock": {"-w", "-E"},
    "script": set(),
}
UNSUPPORTED_WORDS = {"function", "coproc", "select", "case", "esac"}
KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in"}


class Unparseable(ValueError):
    """A command line whose parts cannot all be told apart: ask, never allow."""


@dataclass(frozen=True)
class Part:
    """One simple command: its words with quoting removed."""

    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.argv)

    @property
    def basename_text(self) -> str:
        """With the command name as its basename: ``/bin/rm -rf x`` → ``rm -rf x``."""
        return " ".join((os.path.basename(self.argv[0]), *self.argv[1:]))


def split_command(command: str, depth: int = 0) -> list[Part]:
    if depth > MAX_DEPTH:
        raise Unparseable("nested too deeply")
    if "\x00" in command:
        raise Unparseable("a NUL byte")
    outer, inner = _lift_substitutions(command)
    parts: list[Part] = []
    for text in inner:
        parts.extend(split_command(text, depth + 1))
    for argv in _simple_commands(_tokens(outer)):
        parts.extend(_unwrap(argv, depth))
    return parts


def _lift_substitutions(command: str) -> tuple[str, list[str]]:
    """Replace each ``$( … )`` and `` `…` `` with a plain word; return their contents.

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
        if (
            command.startswith("$(", i)
            or command.startswith("<(", i)
            or command.startswith(">(", i)
        ):
            if command[i] != "$":
                raise Unparseable("process substitution")
            end = _matching_paren(command, i + 1)
            inner.append(command[i + 2 : end])
            out.append("__SUBST__")
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
            out.append("__SUBST__")
            i = end + 1
            continue
        out.append(c)
        i += 1
    if quote:
        raise Unparseable("an unclosed quote")
    return "".join(out), inner


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


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise Unparseable(str(exc)) from None


def _simple_commands(tokens: list[str]) -> list[list[str]]:
    commands: list[list[str]] = []
    current: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token.isdigit() and following and set(following) <= set("<>&"):
            i += 1  # a file descriptor number in front of a redirection: `2>&1`
            continue
        if token and set(token) <= set("<>&") and token not in ("&", "&&"):
            i += 2  # a redirection and the file (or fd) it names: not command words
            continue
        if token in OPERATORS or (token and set(token) <= set(";&|()")):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
        i += 1
    if current:
        commands.append(current)
    return commands


def _unwrap(argv: list[str], depth: int) -> list[Part]:
    """The commands ``argv`` runs: itself, or what a wrapper, shell -c or eval runs."""
    words = list(argv)
    while words and (_is_assignment(words[0]) or words[0] in KEYWORDS):
        words.pop(0)
    if not words:
        return []
    name = words[0]
    base = os.path.basename(name)
    if "$" in name or name == "__SUBST__" or base in UNSUPPORTED_WORDS or "=" in name:
        raise Unparseable(f"the command name {name!r} is only known when it runs")
    if base in SHELLS:
        script = _option_value(words[1:], "-c")
        if script is not None:
            return [Part(tuple(words)), *split_command(script, depth + 1)]
        return [Part(tuple(words))]
    if base == "eval":
        return [Part(tuple(words)), *split_command(" ".join(words[1:]), depth + 1)]
    if base in WRAPPERS:
        rest = _after_options(words[1:], WRAPPERS[base], base)
        if rest and base == "xargs":
            rest = [*rest, "__ARGS__"]  # xargs adds the words it reads to the command
        if rest:
            return [Part(tuple(words)), *_unwrap(rest, depth + 1)]
        return [Part(tuple(words))]
    if base == "find":
        return [Part(tuple(words)), *_find_exec(words, depth)]
    return [Part(tuple(words))]


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and name.replace("_", "a").isalnum() and not name[0].isdigit()


def _option_value(words: list[str], option: str) -> str | None:
    for i, word in enumerate(words):
        if word == option or (
            word.startswith("-") and not word.startswith("--") and "c" in word[1:]
        ):
            return words[i + 1] if i + 1 < len(words) else None
    return None


def _after_options(words: list[str], takes_value: set[str], wrapper: str) -> list[str]:
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return words[i + 1 :]
        if wrapper == "env" and _is_assignment(word):
            i += 1
            continue
        if wrapper == "timeout" and i == 0 and word[:1].isdigit():
            i += 1  # the duration
            continue
        if word.startswith("-") and len(word) > 1:
            i += 2 if word in takes_value else 1
            continue
        return words[i:]
    return []


def _find_exec(words: list[str], depth: int) -> list[Part]:
    parts: list[Part] = []
    i = 0
    while i < len(words):
        if words[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(words) and words[j] not in (";", "+", "\\;"):
                j += 1
            if j > i + 1:
                parts.extend(_unwrap(words[i + 1 : j], depth + 1))
            i = j
        i += 1
    return parts
