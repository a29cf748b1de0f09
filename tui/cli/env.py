"""``corral env``: the Docker images sessions run in. ``env build`` makes the default
Python image (or a variant), ``env ls`` lists corral's images. They talk to the Docker
engine directly: images belong to the machine, not to a data dir's server."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import humanize

from tui.cli.output import print_table
from tui.core.errors import UsageError
from tui.core.printable import printable_line
from tui.core.session.spec import DEFAULT_IMAGE
from tui.core.small_files import read_small_file


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    env = sub.add_parser("env", help="the Docker images sessions run in: build, ls")
    env_sub = env.add_subparsers(dest="env_command")
    p = env_sub.add_parser("build", help="build the Python image the docker backend uses")
    p.add_argument("--name", default=DEFAULT_IMAGE, help=f"image name (default {DEFAULT_IMAGE})")
    p.add_argument("--python", help="Python version, e.g. 3.12 (default: the source's own)")
    p.add_argument(
        "--packages", default="", help="pip packages for the image's venv, comma-separated"
    )
    p.add_argument(
        "--source",
        choices=["auto", "pull", "debootstrap"],
        default="auto",
        help="pull python:*-slim, or debootstrap Debian offline (auto: pull if it can)",
    )
    p.add_argument(
        "--ca-cert",
        metavar="PEM",
        help="a CA certificate the image trusts (a TLS-inspecting proxy's, for --packages)",
    )
    p.add_argument("--rebuild", action="store_true", help="build even if it is up to date")
    env_sub.add_parser("ls", help="corral's images: name, kind, size, age, containers")


async def cmd_env(args: argparse.Namespace) -> int:
    if args.env_command == "build":
        return await asyncio.to_thread(_build, args)
    if args.env_command == "ls":
        return await asyncio.to_thread(_ls)
    raise UsageError("give a subcommand: corral env build | corral env ls")


def _build(args: argparse.Namespace) -> int:
    from tui.core.sandboxes.env_build import Recipe, build

    packages = tuple(p.strip() for p in args.packages.split(",") if p.strip())
    cert = read_small_file(Path(args.ca_cert), 1 << 20) if args.ca_cert else b""
    recipe = Recipe(name=args.name, python=args.python, packages=packages, ca_cert=cert)
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"  {printable_line(line)}  ({time.monotonic() - started:.0f} s)", flush=True)

    print(f"corral env build: {recipe.name}", flush=True)
    built = build(recipe, source=args.source, rebuild=args.rebuild, progress=progress)
    size = humanize.naturalsize(built.size)
    if built.reused:
        print(f"{built.tag} is up to date ({size}); --rebuild builds it again")
    else:
        print(f"built {built.tag} ({size}, from {built.source}) in {built.seconds:.0f} s")
    return 0


def _ls() -> int:
    from tui.core.sandboxes.images import list_images

    images = list_images()
    if not images:
        print(f"no corral images: `corral env build` makes {DEFAULT_IMAGE}")
        return 0
    now = datetime.now(UTC)
    rows = [
        [
            printable_line(i.tag),
            i.kind,
            humanize.naturalsize(i.size),
            humanize.naturaltime(now - i.created),
            str(i.containers),
        ]
        for i in images
    ]
    print_table(rows, ["image", "kind", "size", "age", "containers"])
    return 0


COMMANDS = {"env": cmd_env}
