"""The ``corral`` command: the parser, the dispatch to each command group's module, and the
one place errors become one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable

from tui.cli import env, money, policy, server, sessions, timeline, watch
from tui.cli.options import OneLineParser, serve_args
from tui.core.errors import CorralError
from tui.core.printable import printable_line
from tui.core.session.spec import SessionSpec
from tui.core.store.datadir import resolve_data_dir

Command = Callable[[argparse.Namespace], Awaitable[int]]
COMMANDS: dict[str, Command] = {
    **sessions.COMMANDS,
    **timeline.COMMANDS,
    **money.COMMANDS,
    **policy.COMMANDS,
    **server.COMMANDS,
    **watch.COMMANDS,
    **env.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="corral", description="Run long-lived AI agent sessions on your own machine."
    )
    parser.add_argument(
        "--data-dir", help="where the store lives (default: $CORRAL_HOME or the user data dir)"
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="use the corral server at URL (key in $CORRAL_SERVER_KEY), not the data dir's",
    )
    sub = parser.add_subparsers(dest="command")
    for group in (sessions, watch, timeline, money, policy, server, env):
        group.add_commands(sub)
    return parser


def run_app(args: argparse.Namespace, specs: list[SessionSpec] | None = None) -> int:
    """The terminal app (imported here: only the app needs Textual)."""
    from tui.ui.app import CorralApp

    app = CorralApp(
        resolve_data_dir(args.data_dir),
        start_specs=specs,
        server=args.server,
        serve_args=serve_args(args),
    )
    app.run()
    return app.return_code or 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            return run_app(args)
        if args.command == "demo" and not args.headless:
            return run_app(args, sessions.demo_spec_list(args.backend))
        if args.command == "run" and not args.headless:
            return run_app(args, sessions.build_run_specs(args))
        if args.command == "serve" and args.foreground:
            return server.serve_foreground(args)
        return asyncio.run(COMMANDS[args.command](args))
    except CorralError as exc:
        print(f"corral: {printable_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except sqlite3.Error as exc:
        where = printable_line(str(exc))
        print(f"corral: the store could not be read or written: {where}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # The disk, permissions, a path that is a file: the system's words, one line.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"corral: {printable_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "corral: detached; the sessions go on in the server"
            " (`corral attach SESSION` follows one again, `corral interrupt SESSION` stops it)",
            file=sys.stderr,
        )
        return 130
