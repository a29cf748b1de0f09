"""``corral env build``: the Debian-based Python image the docker backend runs in.

Two sources. Where the engine can pull, a Dockerfile ``FROM python:<version>-slim`` adds
git, a venv and a non-root user. Where it cannot (an offline machine, CI here), a minimal
Debian root filesystem is made with ``debootstrap`` from the machine's own Debian mirror
(the one apt uses, which is reachable wherever packages install), imported with
``docker import`` as ``corral-rootfs:<suite>`` — the build's cache — and the same steps
run on top of it. Either way the image has bash, coreutils, findutils, grep, git and
python3 with pip and venv; ``packages`` go into the venv at ``/opt/venv``, first on PATH.

A build is labelled with a hash of its inputs: asking again for the same image reuses
it, and a changed recipe builds anew.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from tui.core.errors import SandboxError, UsageError
from tui.core.sandboxes.docker import PACKAGE_RE
from tui.core.sandboxes.engine import docker_client
from tui.core.sandboxes.images import LABEL_IMAGE, LABEL_RECIPE
from tui.core.session.spec import DEFAULT_IMAGE

RECIPE_VERSION = 1  # bump when the steps below change what an image holds
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Debian's python3 per release: an offline build gives the suite's own Python.
SUITES = {"3.11": "bookworm", "3.13": "trixie"}
DEFAULT_SUITE = "bookworm"
# minbase has bash, coreutils, findutils, grep; these add the rest a session needs.
INCLUDE = ("git", "python3", "python3-pip", "python3-venv", "ca-certificates", "procps")
# What a root filesystem does not need in an image (the .debs alone are ~60 MB).
PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
USER_UID = 1000
TAG_RE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")
VERSION_RE = re.compile(r"3\.\d{1,2}")
SOURCES = ("auto", "pull", "debootstrap")
CA_FILE = "corral-extra-ca.crt"
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    name: str = DEFAULT_IMAGE
    python: str | None = None  # "3.12"; None: the source's own (slim: 3.12, Debian: 3.11)
    packages: tuple[str, ...] = ()
    # A CA certificate (PEM) the image should trust: behind a TLS-inspecting proxy,
    # installing packages fails without the proxy's CA.
    ca_cert: bytes = b""

    def check(self) -> Recipe:
        if not TAG_RE.fullmatch(self.name):
            raise UsageError(f"--name {self.name!r} is not an image name (repository[:tag])")
        if self.python is not None and not VERSION_RE.fullmatch(self.python):
            raise UsageError(f"--python {self.python!r}: give a version like 3.12")
        for package in self.packages:
            if not PACKAGE_RE.fullmatch(package):
                raise UsageError(f"--packages: {package!r} is not a package name")
        if self.ca_cert and b"-----BEGIN CERTIFICATE-----" not in self.ca_cert[:4096]:
            raise UsageError("--ca-cert: not a PEM certificate")
        return self

    def key(self, source: str) -> str:
        cert = hashlib.sha256(self.ca_cert).hexdigest() if self.ca_cert else None
        inputs = [RECIPE_VERSION, source, self.python, sorted(self.packages), cert]
        return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    tag: str
    size: int
    source: str  # pull or debootstrap
    reused: bool
    seconds: float


def build(
    recipe: Recipe, *, source: str = "auto", rebuild: bool = False, progress: Progress
) -> Built:
    """Build ``recipe`` (or find it built), saying each step through ``progress``."""
    recipe.check()
    if source not in SOURCES:
        raise UsageError(f"--source must be one of {', '.join(SOURCES)}")
    started = time.monotonic()
    with _build_lock():
        client = docker_client()
        try:
            if source == "auto":
                source, why = _choose_source(client, recipe)
                progress(why)
            key = recipe.key(source)
            if not rebuild and _label(client, recipe.name, LABEL_RECIPE) == key:
                size = _size(client, recipe.name)
                return Built(recipe.name, size, source, True, time.monotonic() - started)
            if source == "pull":
                base = _slim_tag(recipe)
                if not _pull(client, base):
                    raise SandboxError(f"cannot pull {base}: the engine reaches no registry")
            else:
                base = _rootfs(client, recipe, rebuild=rebuild, progress=progress)
            _finish(client, recipe, base, key, progress)
            size = _size(client, recipe.name)
            return Built(recipe.name, size, source, False, time.monotonic() - started)
        finally:
            client.close()


def _choose_source(client: Any, recipe: Recipe) -> tuple[str, str]:
    base = _slim_tag(recipe)
    if _pull(client, base):
        return "pull", f"source: {base} (pulled)"
    suite = _suite(recipe)
    return "debootstrap", f"source: Debian {suite} by debootstrap (the engine cannot pull {base})"


def _slim_tag(recipe: Recipe) -> str:
    return f"python:{recipe.python or '3.12'}-slim"


def _pull(client: Any, image: str) -> bool:
    repository, _, tag = image.partition(":")
    try:
        client.images.get(image)
        return True
    except Exception:
        pass
    try:
        client.images.pull(repository, tag=tag)
        return True
    except Exception:
        return False


def _suite(recipe: Recipe) -> str:
    if recipe.python is None:
        return DEFAULT_SUITE
    if recipe.python not in SUITES:
        offered = ", ".join(f"{v} ({s})" for v, s in SUITES.items())
        raise UsageError(
            f"--python {recipe.python}: an offline build has Debian's Pythons only: {offered}"
        )
    return SUITES[recipe.python]


def _label(client: Any, tag: str, label: str) -> str | None:
    try:
        image = client.images.get(tag)
    except Exception:
        return None
    return (image.labels or {}).get(label)


def _size(client: Any, tag: str) -> int:
    return int(client.images.get(tag).attrs.get("Size", 0))


# -- the offline source ----------------------------------------------------------------


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 or one-line form), else Debian's."""
    files = sorted((sources_dir / "sources.list.d").glob("*.sources"))
    for path in files:
        with contextlib.suppress(OSError):
            for stanza in path.read_text().split("\n\n"):
                fields = dict(
                    line.split(":", 1)
                    for line in stanza.splitlines()
                    if re.match(r"^\w[\w-]*:", line)
                )
                uris = fields.get("URIs", "").split()
                suites = fields.get("Suites", "").split()
                if uris and any(
                    s.startswith(("bookworm", "trixie")) and "-" not in s for s in suites
                ):
                    return uris[0]
    with contextlib.suppress(OSError):
        for line in (sources_dir / "sources.list").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return next(p for p in parts[1:] if not p.startswith("["))
    return DEFAULT_MIRROR


def _rootfs(client: Any, recipe: Recipe, *, rebuild: bool, progress: Progress) -> str:
    """``corral-rootfs:<suite>``, made with debootstrap unless already imported."""
    suite = _suite(recipe)
    mirror = debian_mirror()
    tag = f"corral-rootfs:{suite}"
    key = hashlib.sha256(json.dumps([RECIPE_VERSION, suite, INCLUDE]).encode()).hexdigest()[:16]
    if not rebuild and _label(client, tag, LABEL_RECIPE) == key:
        progress(f"[1/3] {tag}: cached ({_mb(_size(client, tag))})")
        return tag
    if os.geteuid() != 0:
        raise SandboxError(
            "an offline build runs debootstrap, which needs root: run `sudo corral env build`"
            " (or give the engine a registry to pull python:*-slim from)"
        )
    if shutil.which("debootstrap") is None:
        raise SandboxError("an offline build needs debootstrap: `apt-get install debootstrap`")
    cache = Path(platformdirs.user_cache_dir("corral"))
    cache.mkdir(parents=True, exist_ok=True)
    with _scratch_dir(cache) as root:
        _debootstrap(suite, mirror, root, progress)
        for rel in PRUNE:
            shutil.rmtree(root / rel, ignore_errors=True)
        progress(f"[2/3] importing {tag} ({_mb(_du(root))})")
        _import(root, tag, key)
    progress(f"[2/3] imported {tag} ({_mb(_size(client, tag))})")
    return tag


def _debootstrap(suite: str, mirror: str, root: Path, progress: Progress) -> None:
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(INCLUDE)}",
        suite,
        str(root),
        mirror,
    ]
    progress(f"[1/3] debootstrap {suite} from {mirror}")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    retrieved = unpacked = 0
    last = ""
    tail: list[str] = []
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        tail = [*tail[-4:], line]
        retrieved += line.startswith("I: Retrieving ") and not line.startswith(
            "I: Retrieving Release"
        )
        unpacked += line.startswith("I: Unpacking ")
        step, count = ("installing", unpacked) if unpacked else ("retrieving", retrieved)
        text = f"[1/3] debootstrap {suite}: {step} packages ({count})"
        if text != last and count and count % 25 == 0:
            progress(text)
            last = text
    if proc.wait() != 0:
        why = next(
            (t for t in reversed(tail) if t.startswith(("E:", "W:"))), tail[-1] if tail else ""
        )
        raise SandboxError(f"debootstrap {suite} from {mirror} failed: {why}")
    progress(f"[1/3] debootstrap {suite}: {retrieved} packages, {_mb(_du(root))}")


def _import(root: Path, tag: str, key: str) -> None:
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"LABEL {LABEL_IMAGE}=rootfs {LABEL_RECIPE}={key}",
        'CMD ["bash"]',
    ]
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    argv = ["docker", "import", *(a for c in changes for a in ("--change", c)), "-", tag]
    done = subprocess.run(argv, stdin=tar.stdout, capture_output=True, check=False)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["tar failed"]
        raise SandboxError(f"docker import {tag} failed: {why[0]}")


@contextlib.contextmanager
def _scratch_dir(parent: Path) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=parent))
    try:
        yield root
    finally:
        _unmount_under(root)  # a failed debootstrap can leave /proc mounted inside
        shutil.rmtree(root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# -- the final image -------------------------------------------------------------------


def dockerfile(recipe: Recipe, base: str) -> str:
    """The steps on top of either source: git (the slim image lacks it), the venv and the
    user. Every name in it was checked by ``Recipe.check``."""
    lines = [f"FROM {base}", "USER 0"]
    if recipe.ca_cert:  # before anything fetches: apt and pip go through the same proxy
        lines += [
            f"COPY {CA_FILE} /usr/local/share/ca-certificates/{CA_FILE}",
            "RUN update-ca-certificates >/dev/null",
            # pip's own bundle (certifi) would not know it; the system's now does.
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
        ]
    if base.startswith("python:"):
        lines.append(
            "RUN apt-get update && apt-get install -y --no-install-recommends git procps"
            " && rm -rf /var/lib/apt/lists/*"
        )
    venv = "python3 -m venv --system-site-packages /opt/venv"
    if recipe.packages:
        venv += " && /opt/venv/bin/pip install --no-cache-dir " + " ".join(sorted(recipe.packages))
    lines += [
        f"RUN useradd --create-home --uid {USER_UID} --shell /bin/bash corral && {venv}",
        "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "USER corral",
        "WORKDIR /workspace",
    ]
    return "\n".join(lines) + "\n"


def _finish(client: Any, recipe: Recipe, base: str, key: str, progress: Progress) -> None:
    progress(f"[3/3] building {recipe.name} on {base}")
    labels = {LABEL_IMAGE: "env", LABEL_RECIPE: key}
    files = {"Dockerfile": dockerfile(recipe, base).encode()}
    if recipe.ca_cert:
        files[CA_FILE] = recipe.ca_cert
    try:
        client.images.build(
            fileobj=_context(files),
            custom_context=True,
            tag=recipe.name,
            labels=labels,
            rm=True,
            forcerm=True,
        )
    except Exception as exc:
        raise SandboxError(f"building {recipe.name} failed: {_why(exc)}") from None


def _context(files: dict[str, bytes]) -> io.BytesIO:
    """A build context holding only these files (never the working directory)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _why(exc: Exception) -> str:
    """The build's own last words (pip's or apt's error), not only "returned code 1"."""
    log = getattr(exc, "build_log", None) or []
    said = [
        line
        for entry in log
        if isinstance(entry, dict)
        for line in ANSI_RE.sub("", str(entry.get("stream", ""))).splitlines()
        if line.strip()
    ]
    errors = [line for line in said if line.startswith(("ERROR", "E:"))]
    last = (errors or said or [str(exc).strip() or type(exc).__name__])[-1]
    return last.strip()[:300]


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time on this machine: a second waits rather than debootstraps too."""
    cache = Path(platformdirs.user_cache_dir("corral"))
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "env-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _du(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"
