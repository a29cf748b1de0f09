"""``corral env build`` on a real engine, the offline way (debootstrap from the machine's
Debian mirror, ``docker import``), then the demos in that image, and ``auto`` saying why
it did not use docker. Without an engine, debootstrap or root these skip, unless
CORRAL_REQUIRE_DOCKER=1 (CI), where they fail.

On a machine that has built the image before, the build test meets the cache (it then
checks the reuse, and the image's contents either way); CI's fresh machine builds it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tui.core.errors import SandboxError, UsageError
from tui.core.sandboxes import open_sandbox
from tui.core.sandboxes.engine import docker_client
from tui.core.sandboxes.env_build import Recipe, debian_mirror, dockerfile
from tui.core.sandboxes.images import LABEL_IMAGE, LABEL_RECIPE, list_images
from tui.core.session.spec import DEFAULT_IMAGE, EnvironmentSpec

from .test_cli import corral

REQUIRED = os.environ.get("CORRAL_REQUIRE_DOCKER") == "1"
BUILD_TIMEOUT_S = 900  # debootstrap fetches ~140 packages from the mirror


def test_a_recipe_refuses_what_a_dockerfile_line_could_be_tricked_with() -> None:
    Recipe(
        name="corral-python:3.11", python="3.11", packages=("pytest>=8", "rich[jupyter]")
    ).check()
    for bad in (
        Recipe(name="Corral:latest"),
        Recipe(name="x\nRUN rm -rf /"),
        Recipe(python="3.12; rm -rf /"),
        Recipe(packages=("pytest && curl evil",)),
        Recipe(packages=("--index-url=http://evil",)),
    ):
        with pytest.raises(UsageError):
            bad.check()
    text = dockerfile(Recipe(packages=("pytest",)), "corral-rootfs:bookworm")
    assert text.splitlines()[0] == "FROM corral-rootfs:bookworm"
    assert "apt-get" not in text  # the rootfs has git already; only the slim base lacks it
    assert "/opt/venv/bin/pip install --no-cache-dir pytest" in text
    assert "USER corral" in text
    assert "apt-get install" in dockerfile(Recipe(), "python:3.12-slim")


def test_the_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    one_line = tmp_path / "old"
    (one_line / "sources.list.d").mkdir(parents=True)
    (one_line / "sources.list").write_text(
        "# a comment\ndeb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://ftp.example/debian bookworm main\n"
    )
    assert debian_mirror(one_line) == "http://ftp.example/debian"
    assert debian_mirror(tmp_path / "nothing") == "http://deb.debian.org/debian"


def _skip_or_fail(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"CORRAL_REQUIRE_DOCKER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def python_image() -> str:
    """``corral env build`` as a user runs it; its output (the image is DEFAULT_IMAGE)."""
    try:
        docker_client().close()
    except SandboxError as exc:
        _skip_or_fail(str(exc))
    built_before = any(i.tag == DEFAULT_IMAGE for i in list_images())
    if not built_before and (shutil.which("debootstrap") is None or os.geteuid() != 0):
        _skip_or_fail("the offline image build needs debootstrap and root")
    home = Path("/tmp/corral-test-env-build")  # no data dir is involved: images are global
    result = corral("env", "build", data_dir=home, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _run_in(image: str, script: str) -> str:
    hardened = ["--rm", "--read-only", "--tmpfs", "/tmp", "-u", "4321:4321"]  # as sessions run
    done = subprocess.run(
        ["docker", "run", *hardened, image, "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_env_build_makes_a_python_image_and_reuses_it(python_image: str, tmp_path: Path) -> None:
    if "up to date" not in python_image:  # built just now: the steps were shown
        if "corral-rootfs:bookworm: cached" not in python_image:  # and the offline ones
            for step in ("debootstrap bookworm from http", "packages,", "imported corral-rootfs"):
                assert step in python_image, python_image
        assert f"[3/3] building {DEFAULT_IMAGE}" in python_image
        assert f"built {DEFAULT_IMAGE}" in python_image
    again = corral("env", "build", data_dir=tmp_path, timeout=120)
    assert again.returncode == 0 and "is up to date" in again.stdout, again.stdout

    client = docker_client()
    try:
        labels = client.images.get(DEFAULT_IMAGE).labels
        config = client.images.get(DEFAULT_IMAGE).attrs["Config"]
    finally:
        client.close()
    assert labels[LABEL_IMAGE] == "env" and len(labels[LABEL_RECIPE]) == 16
    assert config["User"] == "corral"  # not root, unless a run says otherwise
    out = _run_in(
        DEFAULT_IMAGE,
        "set -e; id -un 1000;"
        " python3 -c 'import sys, venv, ensurepip; print(sys.version_info[:2])';"
        " pip --version; git --version; for t in bash find grep sed ls ps; do command -v $t; done;"
        " python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(\"venv ok\")'",
    )
    assert "corral" in out and "(3, 11)" in out and "venv ok" in out, out
    assert "git version" in out and "/opt/venv" in out  # pip is the image's venv's

    listing = corral("env", "ls", data_dir=tmp_path)
    rows = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert rows.get(DEFAULT_IMAGE) == "env" and rows.get("corral-rootfs:bookworm") == "rootfs"


def test_the_demos_run_in_docker_end_to_end(python_image: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = corral(
        "demo",
        "--headless",
        "--backend",
        "docker",
        "--speed",
        "0",
        "--approve-after",
        "0.2",
        data_dir=data,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    # The fix demo's tests ran in the container: python3 and unittest inside.
    assert "Ran 5 tests" in result.stdout or "5 tests" in result.stdout, result.stdout[-3000:]
    sessions = json.loads(corral("ls", "--json", data_dir=data).stdout)
    assert len(sessions) == 3
    for session in sessions:
        assert session["stop_reason"] == "end_turn", session
        assert session["sandbox"]["backend"] == "docker"
        assert DEFAULT_IMAGE in session["sandbox"]["isolation"]
    corral("server", "stop", data_dir=data)
    gone = corral("gc", data_dir=data)  # the demos' containers are the data dir's to remove
    assert gone.returncode == 0


def test_auto_says_once_why_it_ran_on_local(python_image: str, tmp_path: Path) -> None:
    missing = "corral-no-such-image:latest"
    box = open_sandbox(EnvironmentSpec(backend="auto", image=missing), tmp_path)
    assert box.backend == "local" and f"docker image {missing} missing" in box.notice
    present = open_sandbox(EnvironmentSpec(backend="auto"), tmp_path, "sesn_t", tmp_path)
    assert present.backend == "docker" and present.notice == ""

    spec = tmp_path / "spec.toml"
    spec.write_text(
        'title = "t"\nprompt = "p"\n[agent]\nmodel = "scripted:s.toml"\n'
        f'[environment]\nbackend = "auto"\nimage = "{missing}"\n'
    )
    (tmp_path / "s.toml").write_text('[[turns]]\ntext = "done"\n')
    data = tmp_path / "data"
    run = corral("run", str(spec), str(spec), "--headless", "--speed", "0", data_dir=data)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(f"docker image {missing} missing") == 1, run.stdout  # once, for both
    listing = corral("ls", data_dir=data)
    assert listing.stdout.count(f"docker image {missing} missing") == 1
    assert "(2 sessions run on local" in listing.stdout
