"""The CLI as a user runs it: real processes, a real store file, the bundled demos."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from tui.core.money.pricing import default_pricing
from tui.data import sessions_dir

from .conftest import REPO, write_script


def corral(
    *args: str, data_dir: Path, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tui", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        env=env,
    )


def start_corral(*args: str, data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tui", "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def wait_for_line(proc: subprocess.Popen, needle: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if needle in line:
            return line
    raise AssertionError(f"process ended without printing {needle!r}: {proc.stderr.read()}")


def test_demo_headless_then_ls_shows_priced_sessions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = corral("demo", "--headless", "--speed", "0", "--approve-after", "0.2", data_dir=data)
    assert result.returncode == 0, result.stderr
    assert "demo: approval needed" in result.stdout
    assert "status idle (end_turn)" in result.stdout

    listing = corral("ls", "--json", data_dir=data)
    sessions = json.loads(listing.stdout)
    assert len(sessions) >= 3
    for session in sessions:
        assert session["status"] == "idle" and session["stop_reason"] == "end_turn"
        assert session["sandbox"]["backend"] == "local"
        usage = session["usage"]
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        cost = Decimal(usage["list_cost"])
        assert cost > 0
        # The cost is exactly the request spans priced by the table.
        shown = json.loads(
            corral("show", session["id"], "--events", "--json", data_dir=data).stdout
        )
        starts = {
            e["id"]: e["model"] for e in shown["events"] if e["type"] == "span.model_request_start"
        }
        priced = sum(
            (
                default_pricing().token_cost(starts[e["model_request_start_id"]], e["model_usage"])
                for e in shown["events"]
                if e["type"] == "span.model_request_end"
            ),
            Decimal(0),
        )
        assert cost == priced
        assert [e["seq"] for e in shown["events"]] == list(range(1, len(shown["events"]) + 1))

    table = corral("ls", data_dir=data).stdout
    assert "Fix the failing test" in table and "end_turn" in table


def test_demo_workspaces_really_changed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert (
        corral(
            "demo", "--headless", "--speed", "0", "--approve-after", "0", data_dir=data
        ).returncode
        == 0
    )
    sessions = {s["title"]: s for s in json.loads(corral("ls", "--json", data_dir=data).stdout)}
    calc = Path(sessions["Fix the failing test"]["workspace"])
    tests = subprocess.run(
        [sys.executable, "-m", "unittest"], cwd=calc, capture_output=True, text=True
    )
    assert tests.returncode == 0, tests.stderr
    report = Path(sessions["Rebuild a report (asks first)"]["workspace"]) / "out" / "report.md"
    assert "Total: 3610 → 4065" in report.read_text()
    # The bundled workspace itself is untouched: sessions work on copies.
    assert "(len(values) - 1)" in (sessions_dir() / "workspaces/calc/calc.py").read_text()


def approval_spec(tmp_path: Path) -> Path:
    write_script(
        tmp_path / "script.toml",
        [
            {
                "text": "needs a shell",
                "tool_uses": [("bash", {"command": "echo approved > proof.txt"})],
            },
            {"text": "finished"},
        ],
    )
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'title = "approval"\nprompt = "go"\n[agent]\nmodel = "scripted:script.toml"\n'
        '[agent.tools]\nbash = { permission_policy = "always_ask" }\n'
        '[environment]\nbackend = "local"\n'
    )
    return spec


def test_approve_from_another_process_reaches_the_running_session(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = start_corral(
        "run", str(approval_spec(tmp_path)), "--headless", "--speed", "0", data_dir=data
    )
    try:
        line = wait_for_line(proc, "waiting for approval: corral approve")
        sid, tool_use_id = line.split("corral approve ")[1].split()[:2]
        sent = corral("approve", sid, tool_use_id, data_dir=data)
        assert sent.returncode == 0, sent.stderr
        # The approval is followed to the session's next stop, as in the running command.
        assert "status idle (end_turn)" in sent.stdout
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    shown = json.loads(corral("show", sid, "--json", data_dir=data).stdout)
    assert shown["stop_reason"] == "end_turn"
    assert (Path(shown["workspace"]) / "proof.txt").read_text() == "approved\n"


def test_racing_approve_and_deny_one_wins_and_the_other_is_told_it_lost(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = start_corral(
        "run", str(approval_spec(tmp_path)), "--headless", "--speed", "0", data_dir=data
    )
    try:
        line = wait_for_line(proc, "waiting for approval: corral approve")
        sid, tool_use_id = line.split("corral approve ")[1].split()[:2]
        base = [sys.executable, "-m", "tui", "--data-dir", str(data)]
        racers = [
            subprocess.Popen(
                [*base, verb, sid, tool_use_id],
                cwd=REPO,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for verb in ("approve", "deny")
        ]
        outcomes = [(r.wait(timeout=60), r.stdout.read(), r.stderr.read()) for r in racers]
        assert proc.wait(timeout=60) in (0, 1)
    finally:
        proc.kill()
    codes = sorted(code for code, _, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, outcomes
    loser = next(o for o in outcomes if o[0] != 0)
    assert "not waiting for approval" in loser[2] and "Traceback" not in loser[2]
    assert len(loser[2].strip().splitlines()) == 1
    # The log holds exactly one answer, the winner's.
    events = json.loads(corral("show", sid, "--events", "--json", data_dir=data).stdout)["events"]
    answers = [e for e in events if e["type"] == "user.tool_confirmation"]
    assert len(answers) == 1


def test_deny_after_the_run_command_detached_reaches_the_waiting_session(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    proc = start_corral(
        "run", str(approval_spec(tmp_path)), "--headless", "--speed", "0", data_dir=data
    )
    line = wait_for_line(proc, "waiting for approval: corral approve")
    sid, tool_use_id = line.split("corral approve ")[1].split()[:2]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert "detached; the sessions go on" in proc.stderr.read()

    ls = json.loads(corral("ls", "--json", data_dir=data).stdout)
    assert ls[0]["stop_reason"] == "requires_action" and ls[0]["pending_approvals"] == [tool_use_id]

    denied = corral(
        "deny", sid, tool_use_id, "--message", "no shells today", "--speed", "0", data_dir=data
    )
    assert denied.returncode == 0, denied.stderr
    assert "confirmation: deny (no shells today)" in denied.stdout
    assert "status idle (end_turn)" in denied.stdout
    shown = json.loads(corral("show", sid, "--json", data_dir=data).stdout)
    assert not (Path(shown["workspace"]) / "proof.txt").exists()


def test_unknown_session_and_tool_use_are_one_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = corral("show", "sesn_nothing", data_dir=data)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "corral: no session 'sesn_nothing' (see `corral ls`)"
    ]


def test_claude_model_without_a_key_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    result = corral(
        "run",
        "--prompt",
        "hello",
        "--model",
        "claude-sonnet-4-5",
        "--headless",
        data_dir=tmp_path / "d",
        env=env,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no Anthropic API key: set ANTHROPIC_API_KEY" in result.stderr


def test_corral_home_is_the_default_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "tui", "ls"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0
    assert (tmp_path / "home" / "corral.db").exists()
    # Made for its owner alone (the umask would have given 0755): conversations live here.
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


def slow_spec(tmp_path: Path, turns: int = 3, latency: int = 1500) -> Path:
    write_script(
        tmp_path / "slow.toml",
        [
            {
                "text": f"step {n}",
                "latency_ms": latency,
                "tool_uses": [("bash", {"command": "true"})],
            }
            for n in range(turns)
        ]
        + [{"text": "all done"}],
    )
    spec = tmp_path / "slow-spec.toml"
    spec.write_text(
        'title = "slow"\nprompt = "go"\n[agent]\nmodel = "scripted:slow.toml"\n'
        '[environment]\nbackend = "local"\n'
    )
    return spec


def status_of(data: Path) -> dict:
    (session,) = json.loads(corral("ls", "--json", data_dir=data).stdout)
    return session


def test_ctrl_c_detaches_the_run_and_attach_follows_the_session_to_its_stop(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    # 12 s of work: still running when `attach` starts, two CLI processes later, on a
    # loaded machine (4.5 s was not, once under .ci/stress: attach then found it stopped).
    spec = slow_spec(tmp_path, turns=4, latency=3000)
    proc = start_corral("run", str(spec), "--headless", data_dir=data)
    sid = wait_for_line(proc, "started").split()[1]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert "detached; the sessions go on" in proc.stderr.read()
    assert status_of(data)["status"] == "running"  # it went on without us
    attached = corral("attach", sid, data_dir=data, timeout=60)
    assert attached.returncode == 0, attached.stderr
    assert "agent: all done" in attached.stdout
    # Followed to its stop, not found stopped (that adds the `corral send` hint).
    assert attached.stdout.rstrip().endswith("status idle (end_turn)"), attached.stdout[-300:]
    again = corral("attach", sid, data_dir=data)  # stopped now: says so, and how to go on
    assert again.returncode == 0 and "`corral send` gives it more work" in again.stdout


def test_stop_on_exit_interrupts_the_sessions_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spec = str(slow_spec(tmp_path, latency=20_000))
    proc = start_corral("run", spec, "--headless", "--stop-on-exit", data_dir=data)
    wait_for_line(proc, "started")
    wait_for_line(proc, "model request")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert "interrupted 1 session(s)" in proc.stderr.read()
    for _ in range(100):
        if status_of(data)["stop_reason"] == "interrupted":
            break
        time.sleep(0.1)
    assert (status_of(data)["status"], status_of(data)["stop_reason"]) == ("idle", "interrupted")


def test_logs_prints_the_log_and_follows_with_f(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = start_corral("run", str(slow_spec(tmp_path, latency=300)), "--headless", data_dir=data)
    sid = wait_for_line(proc, "started").split()[1]
    follower = start_corral("logs", sid, "-f", data_dir=data)
    try:
        wait_for_line(follower, "agent: all done")  # printed as it happened
        assert proc.wait(timeout=60) == 0
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
        proc.kill()
    last_two = corral("logs", sid, "-n", "2", data_dir=data).stdout.splitlines()
    assert len(last_two) == 2 and last_two[-1].endswith("status idle (end_turn)")
    everything = corral("logs", sid, data_dir=data).stdout.splitlines()
    assert [int(line.split("#")[1].split()[0]) for line in everything] == list(
        range(1, len(everything) + 1)
    )
