"""The files well-known commands write, change or remove, read from their arguments.

A redirection is not the only way a shell line writes: ``tee``, ``cp``, ``mv``, ``dd
of=``, ``sed -i``, ``rm`` and their kind do too, and a write rule (``deny .git/**``)
that a redirection cannot pass should not be passed by ``cp x .git/config`` either.
Only the commands listed here are read; an unknown command writing a file is the bash
tool's own rules' business, as before. Options are read just far enough to find the
operands: a value-taking option's value is not mistaken for a file.
"""

from __future__ import annotations

import os

# Each command's options that take a value as the next word (short forms; long forms
# with "=" carry their value in the same word).
_VALUED = {
    "tee": set(),
    "cp": {"-t", "-S", "--target-directory", "--suffix"},
    "mv": {"-t", "-S", "--target-directory", "--suffix"},
    "install": {"-t", "-m", "-o", "-g", "-S", "--target-directory", "--mode", "--owner"},
    "ln": {"-t", "-S", "--target-directory", "--suffix"},
    "rm": set(),
    "rmdir": set(),
    "unlink": set(),
    "touch": {"-d", "-r", "-t", "--date", "--reference"},
    "truncate": {"-s", "-r", "--size", "--reference"},
    "mkdir": {"-m", "--mode"},
    "chmod": {"--reference"},
    "chown": {"--reference", "--from"},
    "chgrp": {"--reference"},
    "sed": {"-e", "-f", "-l", "--expression", "--file", "--line-length"},
    "shred": {"-n", "-s", "--iterations", "--size"},
}
# Of these, the first operand is not a file (a mode, an owner, a group).
_FIRST_IS_NOT_A_FILE = {"chmod", "chown", "chgrp"}
# These write their last operand (or into it, a directory), or the -t directory.
_TO_A_DESTINATION = {"cp", "mv", "install", "ln"}


def files_written(argv: tuple[str, ...] | list[str]) -> list[str]:
    """The paths the command ``argv`` would write, change or remove (maybe none)."""
    if not argv:
        return []
    name = os.path.basename(argv[0])
    args = list(argv[1:])
    if name == "dd":
        return [a[3:] for a in args if a.startswith("of=")]
    if name not in _VALUED:
        return []
    options, operands = _split(args, _VALUED[name])
    if name == "sed":
        if not any(_in_place(o) for o in options):
            return []  # without -i, sed writes to its output only
        scripted = any(o.startswith(("-e", "-f", "--expression", "--file")) for o in options)
        return operands if scripted else operands[1:]
    if name in _FIRST_IS_NOT_A_FILE:
        return operands[1:]
    if name in _TO_A_DESTINATION:
        return _destinations(name, options, operands)
    return operands


def _in_place(option: str) -> bool:
    """sed's -i, alone (``-i``, ``-i.bak``), long, or in a cluster (``-ni``)."""
    if option.startswith("--"):
        return option == "--in-place" or option.startswith("--in-place=")
    if option.startswith(("-e", "-f", "-l")):  # a script, a file or a width: its value
        return False
    return "i" in option[1:].split("=")[0]


def _split(args: list[str], valued: set[str]) -> tuple[list[str], list[str]]:
    """(options with their values folded in, operands); ``--`` ends the options."""
    options: list[str] = []
    operands: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            operands.extend(words)
            break
        if word.startswith("-") and word != "-":
            if word in valued:  # the value is the next word
                word = (
                    f"{word}={next(words, '')}" if word.startswith("--") else word + next(words, "")
                )
            options.append(word)
        else:
            operands.append(word)
    return options, operands


def _destinations(name: str, options: list[str], operands: list[str]) -> list[str]:
    target = next(
        (o.split("=", 1)[1] if o.startswith("--") else o[2:]
         for o in options if o.startswith(("-t", "--target-directory"))),
        None,
    )  # fmt: skip
    sources = operands if target is not None else operands[:-1]
    if target is None:
        if not operands:
            return []
        target = operands[-1]
    # The destination itself, and the names the sources get inside it if it is a directory.
    written = [target, *(os.path.join(target, os.path.basename(s.rstrip("/"))) for s in sources)]
    if name == "mv":  # a moved file is gone from where it was
        written += sources
    return written
