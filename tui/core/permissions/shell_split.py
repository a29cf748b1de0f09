"""What a shell command line would run, so each simple command is judged on its own.

``a && b``, ``a || b``, ``a; b``, ``a | b``, ``a & b``, newlines, ``( … )`` and
``{ …; }`` groups and substitutions are taken apart by shell_lex.py; here ``bash -c '…'``
/ ``sh -c``, a shell fed by a here-string or by ``echo … |``, ``eval …``,
``find … -exec … ;`` and wrappers such as ``sudo``, ``env`` (``-S`` too), ``nohup``,
``timeout``, ``flock``, ``watch``, ``xargs`` yield the commands inside them. Quoting
tricks (``r''m``, ``\\rm``, ``"rm"``, ``$'\\x72m'``) are undone, and a command name given
by a path (``/bin/rm``) is also judged by its basename. The files that ``>``, ``>>``,
``&>`` and the like write are collected too.

What cannot be understood — unbalanced quotes, a command name that is a variable or a
substitution, a shell reading commands from an unknown pipe, functions — is noted as
unreadable, and the rest of the line is still read: a denied part denies the line, and
otherwise the caller must ask, never allow.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

from tui.core.permissions.shell_lex import (
    SUBST,
    SimpleCommand,
    Unparseable,
    lift_substitutions,
    simple_commands,
    tokens,
)
from tui.core.permissions.writers import files_written

__all__ = ["SUBST", "Line", "Part", "Unparseable", "read_line", "split_command"]

MAX_DEPTH = 8  # nested -c / eval / substitutions / wrappers; deeper is unreadable

ARGS = "__ARGS__"  # stands for the words xargs reads from its input

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish"}
# Wrappers run their argument as a command: (name, options that take a value).
WRAPPERS: dict[str, set[str]] = {
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"},
    "doas": {"-u", "-C"},
    "env": {"-u", "-C", "--unset", "--chdir"},
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
    "su": {"-s", "--shell", "-g", "--group", "-G", "-w"},
    "runuser": {"-s", "--shell", "-g", "--group", "-G", "-u", "-w"},
}
# Options whose value is itself a command line: `flock -c 'cmd' f`, `env -S 'cmd args'`.
SCRIPT_OPTIONS: dict[str, set[str]] = {
    "env": {"-S", "--split-string"},
    "flock": {"-c", "--command"},
    "script": {"-c", "--command"},
    "su": {"-c", "--command"},
    "runuser": {"-c", "--command"},
}
# Words between a wrapper's options and the command it runs (a duration, a lock file…).
POSITIONALS = {"timeout": 1, "chroot": 1, "flock": 1}
# Wrappers whose other words are not a command (a user, a log file): only -c runs one.
NO_COMMAND = {"su", "script"}
UNSUPPORTED_WORDS = {"function", "coproc", "select", "case", "esac"}
KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in"}


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


@dataclass
class Line:
    """What a command line would do, as far as it can be read."""

    parts: list[Part] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # files redirections write (unquoted)
    # Files commands write by their arguments (tee, cp, sed -i…): (command, path).
    changes: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # why some piece could not be read


def read_line(command: str) -> Line:
    """Everything ``command`` would run and write; what cannot be read is listed, not raised."""
    line = Line()
    _read(command, 0, line)
    for part in line.parts:
        name = os.path.basename(part.argv[0]) if part.argv else ""
        line.changes.extend((name, path) for path in files_written(part.argv))
    return line


def split_command(command: str, depth: int = 0) -> list[Part]:
    """The simple commands of ``command``; raises Unparseable if any piece cannot be read."""
    line = Line()
    _read(command, depth, line)
    if line.unreadable:
        raise Unparseable(line.unreadable[0])
    return line.parts


def _read(command: str, depth: int, line: Line) -> None:
    if depth > MAX_DEPTH:
        line.unreadable.append("nested too deeply")
        return
    if "\x00" in command:
        line.unreadable.append("a NUL byte")
        return
    try:
        outer, inner = lift_substitutions(command)
    except Unparseable as exc:
        line.unreadable.append(str(exc))
        return
    for text in inner:
        _read(text, depth + 1, line)
    try:
        commands = simple_commands(tokens(outer))
    except Unparseable as exc:
        line.unreadable.append(str(exc))
        return
    for simple in commands:
        line.writes.extend(simple.writes)
        try:
            _unwrap(simple.argv, depth, line, simple)
        except Unparseable as exc:
            # One unreadable command does not hide the others: a denied one still denies.
            line.unreadable.append(str(exc))


def _unwrap(argv: list[str], depth: int, line: Line, stdin: SimpleCommand | None) -> None:
    """Add the commands ``argv`` runs to ``line``: itself, and what a wrapper, shell -c or
    eval runs. ``stdin`` says where its input comes from (a shell may run it)."""
    if depth > MAX_DEPTH:
        raise Unparseable("nested too deeply")
    words = list(argv)
    while words and (_is_assignment(words[0]) or words[0] in KEYWORDS):
        words.pop(0)
    if not words:
        return
    name = words[0]
    base = os.path.basename(name)
    if "$" in name or SUBST in name or ARGS in name or "=" in name or base in UNSUPPORTED_WORDS:
        raise Unparseable(f"the command name {name!r} is only known when it runs")
    line.parts.append(Part(tuple(words)))
    if base in SHELLS:
        _shell(words, depth, line, stdin)
    elif base == "eval":
        _read(" ".join(words[1:]), depth + 1, line)
    elif base in WRAPPERS:
        _wrapped(base, words[1:], depth, line, stdin)
    elif base == "find":
        _find_exec(words, depth, line)


def _shell(words: list[str], depth: int, line: Line, stdin: SimpleCommand | None) -> None:
    """What a shell runs: its -c script, or what it reads from its input when that is
    known (a here-string, ``echo … |``); a script file is judged as the shell itself."""
    script = _option_value(words[1:], "-c")
    if script is not None:
        _read(script, depth + 1, line)
        return
    if _runs_a_file(words[1:]) or stdin is None or stdin.stdin_redirected:
        return
    if stdin.here_string is not None:
        _read(stdin.here_string, depth + 1, line)
        return
    if stdin.piped_from is None:
        return  # nothing fed to it here
    echoed = _echoed(stdin.piped_from)
    if echoed is None:
        raise Unparseable("a shell reading commands from a pipe")
    _read(echoed, depth + 1, line)


def _runs_a_file(args: list[str]) -> bool:
    """True when a shell's arguments name a script file (rather than reading stdin)."""
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return i + 1 < len(args)
        if word in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if word[:1] in "-+" and len(word) > 1:
            if word.startswith("-") and not word.startswith("--") and "s" in word[1:]:
                return False  # -s: commands from stdin, the rest are its arguments
            i += 1
            continue
        return True
    return False


def _echoed(argv: tuple[str, ...]) -> str | None:
    """The text ``echo``/``printf`` with literal words writes, or None when it is not
    that plain (escapes and formats could spell anything)."""
    words = list(argv)
    while words and _is_assignment(words[0]):
        words.pop(0)
    if not words:
        return None
    name, args = os.path.basename(words[0]), words[1:]
    if name == "echo":
        while args and re.fullmatch(r"-[neE]+", args[0]):
            args.pop(0)
        text = " ".join(args)
    elif name == "printf" and args and not args[0].startswith("-"):
        text = args[0]
        if "%" in text:
            return None
    else:
        return None
    return None if "\\" in text else text


def _wrapped(
    base: str, args: list[str], depth: int, line: Line, stdin: SimpleCommand | None
) -> None:
    script_options = SCRIPT_OPTIONS.get(base, set())
    takes_value = WRAPPERS[base] | script_options
    # su hands the words after the user to a shell: a -c anywhere counts.
    scope = args if base in ("su", "runuser") else _leading_options(args, takes_value, base)
    scripts = _option_values(scope, script_options)
    rest = _after_options(args, takes_value, base)[POSITIONALS.get(base, 0) :]
    if base == "flock" and rest[:1] in (["-c"], ["--command"]):
        scripts, rest = [*scripts, *rest[1:2]], []  # `flock FILE -c 'cmd'`
    if base == "env" and scripts:
        # env -S splits its string into the command and puts the other words after it.
        _read(" ".join([*scripts, shlex.join(rest)]), depth + 1, line)
        return
    for script in scripts:
        _read(script, depth + 1, line)
    if base in NO_COMMAND or not rest:
        return
    if base == "watch":
        _read(" ".join(rest), depth + 1, line)  # watch hands its words to `sh -c`
    elif base == "xargs":
        # xargs runs the command with words it reads: unknown, and never from our stdin.
        _unwrap(_xargs_command(args, rest), depth + 1, line, None)
    else:
        _unwrap(rest, depth + 1, line, stdin)


def _xargs_command(args: list[str], rest: list[str]) -> list[str]:
    """``rest`` with the input's words in: appended, or where ``-I``'s string stands."""
    replace: str | None = None
    for i, word in enumerate(args[: len(args) - len(rest)]):
        if word == "-I" and i + 1 < len(args):
            replace = args[i + 1]
        elif word.startswith("-I") and len(word) > 2:
            replace = word[2:]
        elif word in ("-i", "--replace"):
            replace = "{}"
        elif word.startswith(("--replace=", "-i")):
            replace = word.partition("=")[2] if "=" in word else word[2:]
    if replace:
        return [word.replace(replace, ARGS) for word in rest]
    return [*rest, ARGS]


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


def _option_values(words: list[str], options: set[str]) -> list[str]:
    """The values given to ``options``: ``-c V``, ``-qc V`` (flags run together),
    ``-cV``, ``--command V``, ``--command=V``."""
    values: list[str] = []
    for i, word in enumerate(words):
        for option in options:
            short = not option.startswith("--")
            cluster = short and re.fullmatch(rf"-[A-Za-z]+{option[1]}", word) is not None
            if (word == option or cluster) and i + 1 < len(words):
                values.append(words[i + 1])
            elif not short and word.startswith(option + "="):
                values.append(word[len(option) + 1 :])
            elif short and word.startswith(option) and len(word) > 2:
                values.append(word[2:])
    return values


def _leading_options(words: list[str], takes_value: set[str], wrapper: str) -> list[str]:
    """The option words in front of the wrapped command."""
    return words[: len(words) - len(_after_options(words, takes_value, wrapper))]


def _after_options(words: list[str], takes_value: set[str], wrapper: str) -> list[str]:
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return words[i + 1 :]
        if wrapper == "env" and _is_assignment(word):
            i += 1
            continue
        if word.startswith("-") and len(word) > 1:
            i += 2 if word in takes_value else 1
            continue
        return words[i:]
    return []


def _find_exec(words: list[str], depth: int, line: Line) -> None:
    i = 0
    while i < len(words):
        if words[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(words) and words[j] not in (";", "+", "\\;"):
                j += 1
            command = words[i + 1 : j]
            if command:
                # `{}` is a found path: as a command name it is only known when it runs.
                name = command[0].replace("{}", ARGS)
                _unwrap([name, *command[1:]], depth + 1, line, None)
            i = j
        i += 1
