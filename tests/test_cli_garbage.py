"""Every command with garbage arguments: one line on stderr and a non-zero exit when it
fails, never a traceback, never a hang, never a terminal escape echoed back."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import dispatch as cli

from .conftest import REPO

GARBAGE = [
    "",
    "-",
    "../../../etc/passwd",
    "/dev/zero",
    "\x1b]0;pwned\x07\x1b[2J",
    "sesn_",
    "#999",
    "nan",
    "-1",
    "1e999999999",
    "x" * 5000,
    "none",
    "\udcff",
]


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command (``policy show`` and friends included) with its own parser."""
    parser = cli.build_parser()
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        for sub_name, leaf in inner.choices.items():
                            out[f"{name} {sub_name}"] = leaf
    return out


def argvs(name: str, parser: argparse.ArgumentParser) -> list[list[str]]:
    base = name.split()
    # Never the app: `demo`/`run` without --headless would open it on the terminal.
    tail = ["--headless"] if base[0] in ("demo", "run") else []
    options = [
        a.option_strings[-1]
        for a in parser._actions
        if a.option_strings and a.nargs != 0 and "--help" not in a.option_strings
    ]
    out = [[*base, *tail], [*base, "--no-such-option", *tail]]
    for junk in GARBAGE:
        out += [[*base, junk, *tail], [*base, junk, junk, junk, *tail]]
        out += [[*base, "x", "y", option, junk, *tail] for option in options]
    return out


def run(argv: list[str], data: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli.main(["--data-dir", str(data), *argv])
    except SystemExit as exc:  # argparse: --help, or a usage error
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_the_command_list_is_complete() -> None:
    assert {"run", "demo", "import", "export", "gc", "policy apply", "budget"} <= set(commands())


@pytest.mark.parametrize("name", sorted(commands()))
def test_garbage_arguments_give_one_line_never_a_traceback(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    for argv in argvs(name, commands()[name]):
        code, err = run(argv, data, capsys)
        assert "Traceback" not in err, (argv, err)
        assert "\x1b" not in err and "\x07" not in err, (argv, err)
        if code != 0:
            assert len(err.strip().splitlines()) == 1, (argv, err)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["demo", "--headless", "--max-concurrent", "0"], "--max-concurrent"),
        (["demo", "--headless", "--speed", "nan"], "--speed"),
        (["run", "--headless", "--speed", "inf", "x.toml"], "--speed"),
        (["run", "--headless", "/dev/zero"], "not a regular file"),
        (["budget", "--daily", "1e999999999"], "from 0 to"),
        (["import", "/dev/zero"], "not a regular file"),
    ],
)
def test_bad_numbers_and_special_files_are_refused_in_one_line(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(argv, tmp_path / "data", capsys)
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err


def test_a_data_dir_that_is_a_file_or_unwritable_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    unwritable = tmp_path / "ro"
    unwritable.mkdir()
    os.chmod(unwritable, 0o500)
    for data_dir in (a_file, a_file / "sub", unwritable / "data", Path("/proc/corral")):
        result = subprocess.run(
            [sys.executable, "-m", "tui", "--data-dir", str(data_dir), "ls"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        if data_dir.parent == unwritable and os.geteuid() == 0:
            continue  # root writes anywhere: only the other cases say something here
        assert result.returncode != 0, (data_dir, result.stdout)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
