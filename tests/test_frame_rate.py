"""The app's frame-rate cap: set by corral's UI package before Textual reads it, unless
the user set their own (see tui/ui/__init__.py for why it is not Textual's 60)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import tui.ui.app; from textual import constants; print(constants.MAX_FPS)"


@pytest.mark.parametrize(("given", "expected"), [(None, "120"), ("30", "30")])
def test_the_app_runs_at_corrals_frame_rate_unless_the_user_sets_one(
    given: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    if given is not None:
        env["TEXTUAL_FPS"] = given
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected
