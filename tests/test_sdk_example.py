"""README's "Use it from the SDK" example, run as written against a real server (a
scripted model in place of Claude, by the environment variables the example reads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, write_script
from .server_helpers import start_server, stop_server


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    after = text.split("<!-- sdk-example -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_sdk_example_runs_and_approves_the_tool_use(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "tidy.toml",
        [
            {
                "text": "Looking around.",
                "latency_ms": 200,
                "tool_uses": [("bash", {"command": "echo tidy > tidied.txt"})],
            },
            {"text": "All tidy now.", "latency_ms": 200},
        ],
    )
    served = start_server(tmp_path / "data")
    try:
        example = tmp_path / "example.py"
        example.write_text(readme_example())
        env = {
            **os.environ,
            "CORRAL_URL": served.url,
            "CORRAL_KEY": served.key,
            "CORRAL_MODEL": f"scripted:{script}",
        }
        ran = subprocess.run(
            [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stderr
        out = ran.stdout
        # The deltas printed as they came, the tool use shown, the approval given.
        assert "Looking around." in out and "All tidy now." in out
        assert "[bash] {'command': 'echo tidy > tidied.txt'}" in out
        assert "stopped: BetaMonetaryAmount(amount='0." in out
        workspaces = list((tmp_path / "data" / "workspaces").iterdir())
        assert [(w / "tidied.txt").read_text() for w in workspaces] == ["tidy\n"]
    finally:
        stop_server(served)
