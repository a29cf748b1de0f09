"""The local sandbox: one persistent shell per session, timeouts kill the command only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tui.core.sandboxes.local import LocalSandbox, bubblewrap_works


@pytest.fixture
async def shell(tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    sandbox = LocalSandbox(tmp_path, bubblewrap=False)
    yield sandbox
    await sandbox.close()


async def test_cwd_and_env_persist_between_calls(shell: LocalSandbox, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    await shell.bash("cd sub && export GREETING=hi", 10)
    result = await shell.bash('pwd; echo "$GREETING"', 10)
    assert result.output.splitlines() == [str(tmp_path / "sub"), "hi"]
    assert result.exit_code == 0


async def test_exit_code_and_stderr(shell: LocalSandbox) -> None:
    result = await shell.bash("echo out; echo err >&2; exit_code() { return 3; }; exit_code", 10)
    assert result.output.splitlines() == ["out", "err"]
    assert result.exit_code == 3


async def test_output_without_trailing_newline(shell: LocalSandbox) -> None:
    assert (await shell.bash("printf abc", 10)).output == "abc"


async def test_command_cannot_read_the_shells_input(shell: LocalSandbox) -> None:
    result = await shell.bash("cat; echo after", 10)
    assert result.output.strip() == "after"
    assert (await shell.bash("echo still-alive", 10)).output.strip() == "still-alive"


async def test_timeout_kills_the_command_not_the_shell(shell: LocalSandbox) -> None:
    await shell.bash("cd / && export KEEP=1", 10)
    started = time.monotonic()
    result = await shell.bash("sleep 30", 0.5)
    assert time.monotonic() - started < 10
    assert result.timed_out and result.exit_code is None
    assert "shell kept its state" in result.note
    after = await shell.bash('pwd; echo "$KEEP"', 10)
    assert after.output.splitlines() == ["/", "1"]


async def test_builtin_loop_timeout_restarts_the_shell(shell: LocalSandbox) -> None:
    result = await shell.bash("while true; do :; done", 0.5)
    assert result.timed_out
    assert "restarted" in result.note
    assert (await shell.bash("echo back", 10)).output.strip() == "back"


async def test_exit_in_command_is_survived(shell: LocalSandbox) -> None:
    result = await shell.bash("exit 4", 10)
    assert result.exit_code is None
    assert (await shell.bash("echo new-shell", 10)).output.strip() == "new-shell"


async def test_restart_resets_state(shell: LocalSandbox) -> None:
    await shell.bash("export X=1", 10)
    await shell.restart()
    assert (await shell.bash('echo "[$X]"', 10)).output.strip() == "[]"


async def test_secrets_do_not_reach_the_shell(
    shell: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret")
    await shell.restart()
    result = await shell.bash("env", 10)
    assert "sk-ant-test-secret" not in result.output
    assert "ANTHROPIC_API_KEY" not in result.output


@pytest.mark.skipif(not bubblewrap_works(), reason="bubblewrap is not installed or cannot run here")
async def test_bubblewrap_confines_writes_and_network(tmp_path: Path) -> None:
    sandbox = LocalSandbox(tmp_path, bubblewrap=True)
    try:
        assert sandbox.isolation.startswith("bubblewrap")
        ok = await sandbox.bash("echo hi > inside.txt && cat inside.txt", 10)
        assert ok.output.strip() == "hi"
        # The host is mounted read-only; /tmp is a private tmpfs.
        escaped = await sandbox.bash("echo x > /opt/corral-escaped.txt", 10)
        assert escaped.exit_code != 0
        assert not Path("/opt/corral-escaped.txt").exists()
        await sandbox.bash(f"echo x > {tmp_path.parent}/escaped.txt", 10)
        assert not (tmp_path.parent / "escaped.txt").exists()
        # The shell's own network namespace (/proc/net is per namespace; /sys/class/net
        # is the host's sysfs, read-only, and lists the host's interfaces).
        net = await sandbox.bash("tail -n +3 /proc/net/dev | cut -d: -f1", 10)
        assert net.output.split() == ["lo"]
    finally:
        await sandbox.close()
