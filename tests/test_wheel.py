"""A plain wheel, not an editable checkout, runs the demo: the demos, themes and policy
profiles ship inside the package."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from .conftest import REPO


def test_an_installed_wheel_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("corral-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    # Dependencies come from the test's own environment (no network here); its packages
    # are added after the new venv's own, and its editable corral is not (a .pth line
    # adds a directory, it does not run that directory's .pth files).
    own_site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    parents = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (own_site / "zz-test-deps.pth").write_text("\n".join(sorted(parents)) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CORRAL_HOME")}
    where = subprocess.run(
        [str(python), "-c", "import tui; print(tui.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=60,
    )
    assert where.stdout.startswith(str(env_dir)), where.stdout + where.stderr
    demo = subprocess.run(
        [
            str(env_dir / "bin" / "corral"),
            "--data-dir",
            str(tmp_path / "data"),
            "demo",
            "--headless",
            "--speed",
            "0",
            "--approve-after",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    assert demo.stdout.count("end_turn") >= 3
