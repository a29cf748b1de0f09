"""Session specs: every malformed spec is refused in one line naming file, key and problem."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tui.core.errors import SpecError
from tui.core.session.spec_reader import load_spec
from tui.data import sessions_dir

from .conftest import REPO, write_script

GOOD = """
title = "t"
prompt = "go"
[agent]
model = "scripted:script.toml"
"""


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    write_script(tmp_path / "script.toml", [{"text": "done"}])
    (tmp_path / "ws").mkdir()
    return tmp_path


def write(spec_dir: Path, text: str) -> Path:
    path = spec_dir / "spec.toml"
    path.write_text(text)
    return path


def test_good_spec_loads_with_defaults(spec_dir: Path) -> None:
    spec = load_spec(write(spec_dir, GOOD + '[budget]\nmax_list_cost = "0.25"\n'))
    assert spec.title == "t"
    assert spec.messages == ("go",)
    assert spec.agent.model == f"scripted:{(spec_dir / 'script.toml').resolve()}"
    assert set(spec.agent.tools) == {"bash", "read", "write", "edit", "glob", "grep"}
    assert spec.max_list_cost == Decimal("0.25")
    assert spec.environment.networking == "none"


def test_tool_default_and_override(spec_dir: Path) -> None:
    spec = load_spec(
        write(
            spec_dir,
            GOOD
            + '[agent.tools]\ndefault = { permission_policy = "always_ask" }\n'
            + "grep = { enabled = false }\n"
            + 'read = { permission_policy = "always_allow" }\n',
        )
    )
    assert spec.agent.tools["bash"].permission_policy == "always_ask"
    assert spec.agent.tools["read"].permission_policy == "always_allow"
    assert spec.agent.tools["grep"].enabled is False


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        (GOOD.replace('title = "t"', ""), "title", "required"),
        (GOOD + "colour = 3\n", "agent.colour", "unknown key"),
        ("colour = 3\n" + GOOD, "colour", "unknown key"),
        (
            GOOD + '[agent.tools]\nbash = { permission_policy = "sometimes" }\n',
            "agent.tools.bash.permission_policy",
            "not one of",
        ),
        (
            GOOD + "[agent.tools]\nbash = { enabled = 1 }\n",
            "agent.tools.bash.enabled",
            "must be bool",
        ),
        (GOOD + "[agent.tools]\nweb = { enabled = true }\n", "agent.tools.web", "unknown key"),
        (GOOD.replace("script.toml", "missing.toml"), "agent.model", "not found"),
        (GOOD + '[workspace]\nsource = "nowhere"\n', "workspace.source", "not a directory"),
        (GOOD + '[environment]\nnetworking = "some"\n', "environment.networking", "not one of"),
        (
            GOOD + '[environment]\nallowed_hosts = ["a.example"]\n',
            "environment.allowed_hosts",
            "limited",
        ),
        (GOOD + "[environment.limits]\npids = 2\n", "environment.limits.pids", "between"),
        (GOOD + "[environment.limits]\ncpus = nan\n", "environment.limits.cpus", "above 0"),
        (GOOD + "[environment.limits]\ncpus = inf\n", "environment.limits.cpus", "at most"),
        (
            GOOD + "[environment.limits]\nmemory_mb = 99999999999\n",
            "environment.limits.memory_mb",
            "between",
        ),
        (
            GOOD + '[budget]\nmax_list_cost = "1e999999999"\n',
            "budget.max_list_cost",
            "from 0 to",
        ),
        (GOOD + '[budget]\nmax_list_cost = "-1"\n', "budget.max_list_cost", "from 0 to"),
        (GOOD + '[budget]\nmax_list_cost = "0.0000001"\n', "budget.max_list_cost", "6 decimal"),
        (GOOD + '[budget]\nmax_active_hours = "1e6"\n', "budget.max_active_hours", "from 0 to"),
        (GOOD + "[budget]\nmax_list_cost = 0.5\n", "budget.max_list_cost", "decimal string"),
        (GOOD + '[budget]\nmax_list_cost = "lots"\n', "budget.max_list_cost", "not a decimal"),
        (GOOD.replace('prompt = "go"', 'prompt = "  "'), "messages", "non-empty"),
        ('title = "t"\nprompt = "go"\n', "agent", "required"),
        (GOOD + "[agent\n", "", "invalid TOML"),
    ],
)
def test_malformed_spec_names_file_key_and_problem(
    spec_dir: Path, body: str, key: str, problem: str
) -> None:
    path = write(spec_dir, body)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert info.value.key == key
    assert problem in message


def test_bad_script_is_refused_at_start(spec_dir: Path, tmp_path: Path) -> None:
    (spec_dir / "script.toml").write_text("[[turns]]\nlatency_ms = -1\n")
    path = write(spec_dir, GOOD)
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "tui", "--data-dir", str(data), "run", str(path), "--headless"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "turns[0].latency_ms" in result.stderr
    # Nothing was started: the store has no session.
    listing = subprocess.run(
        [sys.executable, "-m", "tui", "--data-dir", str(data), "ls", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert (listing.returncode, listing.stderr) == (0, "")
    assert json.loads(listing.stdout) == []


def test_cli_refuses_malformed_spec_in_one_line(spec_dir: Path, tmp_path: Path) -> None:
    path = write(spec_dir, GOOD + '[agent.tools]\nbash = { permission_policy = "yes" }\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui",
            "--data-dir",
            str(tmp_path / "d"),
            "run",
            str(path),
            "--headless",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"corral: {path}: agent.tools.bash.permission_policy:"
        " 'yes' is not one of always_allow, always_ask, deny"
    ]
    assert not (tmp_path / "d" / "workspaces").exists()


def test_bundled_specs_all_load() -> None:
    paths = sorted(sessions_dir().glob("*.toml"))
    assert len(paths) >= 3
    for path in paths:
        load_spec(path)
