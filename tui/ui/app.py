"""The corral app: connects a client, starts the bridge, composes the screens; and the
few things that belong to no screen (new sessions, themes, quitting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui import data
from tui.client.connect import connect
from tui.client.protocol import CorralClient
from tui.core.clock import utc_now
from tui.core.errors import CorralError
from tui.core.printable import printable, printable_line
from tui.core.session.spec import DEFAULT_MODEL, SessionSpec, ad_hoc_spec
from tui.core.store.settings import load_settings, save_setting
from tui.ui import gc_pauses
from tui.ui.bridge import CoreBridge
from tui.ui.commands import markup_literal
from tui.ui.screens.dashboard import DashboardScreen
from tui.ui.screens.new_session import NewSession, NewSessionScreen
from tui.ui.screens.quit import QuitChoice, QuitScreen
from tui.ui.themes import ThemeError, load_theme, load_themes

__all__ = ["CorralApp", "markup_literal"]

DEFAULT_THEME = "corral-dark"
TICK_S = 1.0  # running sessions' costs and durations, and the burn rate, move this often


class CorralApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "corral"
    BINDINGS = [Binding("ctrl+q", "request_quit", "Quit", show=False)]

    def __init__(
        self,
        data_dir: Path,
        *,
        start_specs: list[SessionSpec] | None = None,
        server: str | None = None,
        serve_args: tuple[str, ...] = (),
        specs_dir: Path | None = None,
        themes_dir: Path | None = None,
        watch_themes: bool = True,
        live_ticker: bool = True,
        freeze_gc: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.start_specs = start_specs or []
        self.server = server  # another machine's corral server, else the data dir's
        self.serve_args = serve_args  # for the data dir's server, if the app starts it
        self.specs_dir = specs_dir or data.sessions_dir()
        self.themes_dir = themes_dir or data.themes_dir()
        self.watch_themes = watch_themes
        self.live_ticker = live_ticker  # off in snapshot tests: no wall-clock sampling
        self.freeze_gc = freeze_gc  # off in tests, where many apps share one process
        self.now = clock
        self.client: CorralClient
        self.bridge: CoreBridge
        self.dashboard: DashboardScreen
        self.ready = asyncio.Event()  # set once the client is up and the sessions loaded
        self.closed = asyncio.Event()  # set once the client has closed
        self._client_closing = False
        self._stop_on_exit = False

    # -- start-up --------------------------------------------------------------------

    def on_mount(self) -> None:
        self._register_themes()
        self.start()
        if self.watch_themes:
            self.watch_theme_files()

    @work(exclusive=True, group="core")
    async def start(self) -> None:
        try:
            # The server runs the sessions (started if none does); the app only shows
            # them. Sessions a crash left running carried on when the server took over.
            self.client = await connect(
                self.data_dir, server=self.server, serve_args=self.serve_args
            )
            recovered = await self.client.attach(resume_recovered=True)
        except CorralError as exc:
            # Printed to the terminal as it is once the app has gone: a path in it may
            # carry control characters.
            self.exit(message=printable(f"corral: {exc}"))
            return
        self.dashboard = DashboardScreen(self.client, self.data_dir / "policies")
        await self.push_screen(self.dashboard)
        notes = (self.data_dir, self.server or "local")
        self.bridge = CoreBridge(self, self.client, self.now, notes)
        await self.bridge.subscribe()
        await self.bridge.load()
        for sid in recovered:
            snap = self.bridge.fleet.sessions.get(sid)
            self.notify(
                f"{snap.title if snap else sid}: was running when corral stopped;"
                " resumed from its last checkpoint",
                timeout=8,
                markup=False,
            )
        self.run_worker(self.bridge.pump(), group="bridge", exclusive=True)
        if self.live_ticker:
            self.set_interval(TICK_S, self.bridge.tick)
        for spec in self.start_specs:
            await self._create(spec)
        if self.freeze_gc:
            gc_pauses.enable()
            self.set_interval(gc_pauses.FULL_EVERY_S, gc_pauses.collect)
        self.ready.set()

    # -- what the bridge tells the user -----------------------------------------------
    # Notifications carry outside text (titles, tool names, error messages quoting paths
    # or patterns): each is printable and sent with markup=False, never parsed as markup.

    def on_core_bridge_notice(self, message: CoreBridge.Notice) -> None:
        self.notify(
            printable(f"{message.title}: {message.text}"),
            severity=message.severity,  # type: ignore[arg-type]
            timeout=8,
            markup=False,
        )

    def on_core_bridge_approval_requested(self, message: CoreBridge.ApprovalRequested) -> None:
        name = printable_line(message.tool_name)
        self.notify(
            f"{message.title}: {name} waits for your approval (y allow · d deny)",
            title="Approval needed",
            severity="warning",
            timeout=6,
            markup=False,
        )
        self.bell()

    # -- new sessions ------------------------------------------------------------------

    def action_new_session(self) -> None:
        if not self.ready.is_set():
            return
        self.push_screen(NewSessionScreen(self.specs_dir, self.client), self._chosen)

    def _chosen(self, choice: NewSession | None) -> None:
        if choice is None:
            return
        if choice.spec is not None:
            self.start_session(choice.spec)
            return
        workspace = Path(choice.workspace).expanduser().resolve() if choice.workspace else None
        if workspace is not None and not workspace.is_dir():
            self.notify(
                printable(f"{choice.workspace}: not a directory"), severity="error", markup=False
            )
            return
        spec = ad_hoc_spec(
            choice.prompt, model=choice.model or DEFAULT_MODEL, workspace=workspace, allow_all=False
        )
        self.start_session(spec)

    @work(group="control")
    async def start_session(self, spec: SessionSpec) -> None:
        await self._create(spec)

    async def _create(self, spec: SessionSpec) -> None:
        try:
            await self.client.create(spec)
        except CorralError as exc:
            self.notify(
                printable(str(exc)),
                title="Could not start the session",
                severity="error",
                timeout=8,
                markup=False,
            )

    # -- themes ---------------------------------------------------------------------------

    def _register_themes(self) -> None:
        themes, errors = load_themes(self.themes_dir)
        for theme in themes:
            self.register_theme(theme)
        for error in errors:
            self.notify(
                printable(str(error)), title="Theme not loaded", severity="error", markup=False
            )
        wanted = load_settings(self.data_dir).get("theme", DEFAULT_THEME)
        if wanted in self.available_themes:
            self.theme = wanted
        elif DEFAULT_THEME in self.available_themes:
            self.theme = DEFAULT_THEME

    def corral_themes(self) -> list[str]:
        return sorted(
            t.stem for t in self.themes_dir.glob("*.toml") if t.stem in self.available_themes
        )

    def watch_theme(self, name: str) -> None:
        save_setting(self.data_dir, "theme", name)

    def action_next_theme(self) -> None:
        names = self.corral_themes() or sorted(self.available_themes)
        index = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[index % len(names)]
        self.notify(printable(f"Theme: {self.theme}"), timeout=2, markup=False)

    def reload_theme_file(self, path: Path) -> None:
        """Re-read one theme file; restyle now if it is the current theme."""
        try:
            theme = load_theme(path)
        except ThemeError as exc:
            self.notify(
                printable(f"{exc} — keeping {self.theme}"),
                title="Theme not reloaded",
                severity="error",
                timeout=8,
                markup=False,
            )
            return
        self.register_theme(theme)
        if theme.name == self.theme:
            self._invalidate_css()
            self.refresh_css(animate=False)
        self.notify(printable(f"Theme {theme.name} reloaded"), timeout=2, markup=False)

    @work(group="themes", exclusive=True)
    async def watch_theme_files(self) -> None:
        from watchfiles import awatch

        async for changes in awatch(self.themes_dir, debounce=100, step=20):
            for _change, path in changes:
                if path.endswith(".toml") and Path(path).exists():
                    self.reload_theme_file(Path(path))

    def get_system_commands(self, screen: Screen) -> Any:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New session", "Pick a spec or type a prompt", self.action_new_session)
        for name in self.corral_themes():
            # The palette parses a command's title as markup; a theme file's name is not.
            yield SystemCommand(
                f"Theme: {markup_literal(printable_line(name))}",
                "Switch theme (remembered)",
                lambda n=name: setattr(self, "theme", n),
            )

    # -- quitting -------------------------------------------------------------------------

    def action_request_quit(self) -> None:
        """Leave the app. The sessions are the server's: they go on unless asked to stop."""
        running = self._running_sessions()
        if not running:
            self.exit()
            return

        def answered(choice: QuitChoice | None) -> None:
            if choice is not None:
                self._stop_on_exit = choice == "stop"
                self.exit()  # the client closes in on_unmount, awaited by Textual's shutdown

        self.push_screen(QuitScreen(len(running)), answered)

    def _running_sessions(self) -> list[str]:
        if not self.ready.is_set():
            return []
        return [sid for sid, snap in self.bridge.fleet.sessions.items() if snap.running]

    async def close_core(self, *, stop: bool = False) -> None:
        """Stop following the sessions and let go of the client; with ``stop``, pause the
        working sessions first (cut short, idle and resumable), else they go on in the server."""
        if self._client_closing or not hasattr(self, "client"):
            return
        self._client_closing = True
        if hasattr(self, "bridge"):
            self.bridge.close()
            self.bridge.remember_seen()
            if stop:
                for sid in self._running_sessions():
                    with contextlib.suppress(CorralError):  # it ended on its own meanwhile
                        await self.client.control(sid, "interrupt")
        await self.client.close()
        self.closed.set()

    async def on_unmount(self) -> None:
        await self.close_core(stop=self._stop_on_exit)
