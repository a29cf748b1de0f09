"""The corral app: composes the screens, owns the bridge to the core, and little else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.core.budget import budget_of
from tui.core.datadir import db_path
from tui.core.errors import CorralError
from tui.core.ids import utc_now
from tui.core.policy import Rule
from tui.core.pricing import format_usd
from tui.core.printable import printable, printable_line
from tui.core.settings import load_settings, save_setting
from tui.core.spec import DEFAULT_MODEL, SessionSpec, ad_hoc_spec, spec_from_json
from tui.core.store import Store
from tui.core.supervisor import Supervisor
from tui.core.views import SessionView, SpendHistory, totals
from tui.ui.bridge import CoreBridge
from tui.ui.screens.approval import ApprovalScreen, Decision
from tui.ui.screens.budget import NO_CAP, BudgetScreen
from tui.ui.screens.dashboard import DashboardScreen
from tui.ui.screens.new_session import NewSession, NewSessionScreen
from tui.ui.screens.policy_editor import PolicyEditorScreen
from tui.ui.screens.quit import QuitChoice, QuitScreen
from tui.ui.screens.session import SessionScreen
from tui.ui.screens.timeline import TimelineScreen
from tui.ui.themes import ThemeError, load_theme, load_themes
from tui.ui.widgets.cost_ticker import CostTicker

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_THEME = "corral-dark"


def markup_literal(text: str) -> str:
    """``text`` for a place that parses Textual markup, shown exactly as written.

    Every ``[`` is escaped: ``textual.markup.escape`` leaves ``[ @click=app.quit]`` (a
    space first), ``[B …]`` and ``[$…]`` alone, and Textual's parser still reads those
    as tags, the first as a live click action.
    """
    return text.replace("[", "\\[")


def in_creation_order(views: Iterable[SessionView]) -> list[SessionView]:
    """Panes in the order sessions were made; title breaks ties (a frozen test clock)."""
    return sorted(views, key=lambda v: (v.record.created_at, v.title))


class CorralApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "corral"
    BINDINGS = [Binding("ctrl+q", "request_quit", "Quit", show=False)]

    def __init__(
        self,
        data_dir: Path,
        *,
        start_specs: list[SessionSpec] | None = None,
        script_speed: float = 1.0,
        max_concurrent: int = 8,
        specs_dir: Path | None = None,
        themes_dir: Path | None = None,
        watch_themes: bool = True,
        live_ticker: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.start_specs = start_specs or []
        self.script_speed = script_speed
        self.max_concurrent = max_concurrent
        self.specs_dir = specs_dir or REPO_ROOT / "sessions"
        self.themes_dir = themes_dir or REPO_ROOT / "themes"
        self.watch_themes = watch_themes
        self.live_ticker = live_ticker  # off in snapshot tests: no wall-clock sampling
        self.now = clock
        self.spend = SpendHistory()
        self.store: Store
        self.supervisor: Supervisor
        self.bridge: CoreBridge
        self.ready = asyncio.Event()  # set once the core is up and the panes are mounted
        self.closed = asyncio.Event()  # set once the core has shut down
        self._core_closing = False
        self._stop_on_exit = False

    # -- start-up --------------------------------------------------------------------

    def on_mount(self) -> None:
        self._register_themes()
        self.push_screen(DashboardScreen())
        self.start_core()
        if self.live_ticker:
            self.set_interval(1.0, self._tick)
        if self.watch_themes:
            self.watch_theme_files()

    @work(exclusive=True, group="core")
    async def start_core(self) -> None:
        try:
            self.store = await Store.open(db_path(self.data_dir))
            self.supervisor = Supervisor(
                self.store,
                self.data_dir,
                max_concurrent=self.max_concurrent,
                script_speed=self.script_speed,
            )
            # Sessions a crash left running carry on from their last checkpoint.
            await self.supervisor.start(resume_recovered=True)
        except CorralError as exc:
            # Printed to the terminal as it is once the app has gone: a path in it may
            # carry control characters.
            self.exit(message=printable(f"corral: {exc}"))
            return
        self.bridge = CoreBridge(self, self.store)
        self.bridge.subscribe()
        await self.bridge.load()
        self.dashboard.add_panes(in_creation_order(self.bridge.views.values()), self.now())
        for sid in self.supervisor.recovered:
            self.notify(
                f"{self.bridge.views[sid].title}: was running when corral stopped;"
                " resumed from its last checkpoint",
                timeout=8,
                markup=False,
            )
        self.run_worker(self.bridge.pump(), group="bridge", exclusive=True)
        for spec in self.start_specs:
            await self._create(spec)
        self.ready.set()

    @property
    def dashboard(self) -> DashboardScreen:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        raise LookupError("no dashboard")

    # -- core → screen ------------------------------------------------------------------

    def on_core_bridge_changed(self, _message: CoreBridge.Changed) -> None:
        if self._core_closing:
            return
        changed, new = self.bridge.take_changes()
        now = self.now()
        views = [self.bridge.views[sid] for sid in new]
        self.dashboard.add_panes(in_creation_order(views), now)
        self.dashboard.refresh_panes(changed, now)
        screen = self.screen
        if isinstance(screen, SessionScreen) and screen.session_id in changed:
            screen.show(now)
            screen.load_events()
        elif isinstance(screen, TimelineScreen) and screen.session_id in changed:
            screen.refresh_from_core()
        self.update_tickers()

    # Notifications carry outside text (titles, tool names, error messages quoting paths
    # or patterns): each is printable and sent with markup=False, never parsed as markup.

    def on_core_bridge_notice(self, message: CoreBridge.Notice) -> None:
        self.notify(
            printable(f"{message.view.title}: {message.text}"),
            severity=message.severity,  # type: ignore[arg-type]
            timeout=8,
            markup=False,
        )

    def on_core_bridge_approval_requested(self, message: CoreBridge.ApprovalRequested) -> None:
        use = message.view.state.pending_approvals.get(message.tool_use_id, {})
        name = printable_line(str(use.get("name", "a tool")))
        self.notify(
            f"{message.view.title}: {name} waits for your approval (y allow · d deny)",
            title="Approval needed",
            severity="warning",
            timeout=6,
            markup=False,
        )
        self.bell()

    def _tick(self) -> None:
        if not self.ready.is_set():
            return
        now = self.now()
        self.spend.add(totals(self.bridge.views.values(), now).cost or 0)  # type: ignore[arg-type]
        self.dashboard.tick(now)
        if isinstance(self.screen, SessionScreen):
            self.screen.show(now)
        self.update_tickers()

    def update_tickers(self) -> None:
        summary = totals(self.bridge.views.values(), self.now())
        for ticker in self.screen.query(CostTicker):
            ticker.burn_per_hour = self.spend.burn_per_hour()
            ticker.history = self.spend.buckets()
            ticker.totals = summary

    # -- actions --------------------------------------------------------------------------

    def current_session(self) -> str | None:
        screen = self.screen
        if isinstance(screen, SessionScreen):
            return screen.session_id
        if isinstance(screen, DashboardScreen):
            return screen.focused_session
        return None

    def open_session(self, session_id: str) -> None:
        view = self.bridge.views.get(session_id)
        if view is not None:
            self.push_screen(SessionScreen(view))

    def action_timeline(self) -> None:
        sid = self.current_session()
        view = self.bridge.views.get(sid) if sid else None
        if view is None:
            self.notify("Select a session first.", severity="warning")
            return
        self.push_screen(TimelineScreen(view))

    def action_checkpoint(self) -> None:
        sid = self.current_session()
        if sid is None:
            self.notify("Select a session first.", severity="warning")
            return
        self.take_checkpoint(sid)

    @work(group="control")
    async def take_checkpoint(self, session_id: str) -> None:
        try:
            cp = await self.supervisor.checkpoint(session_id, "from the app")
        except (CorralError, OSError) as exc:
            self.notify(printable(f"No checkpoint: {exc}"), severity="error", markup=False)
            return
        title = self.bridge.views[session_id].title
        self.notify(
            f"{title}: checkpoint {cp.id[-8:]}, {cp.changed} paths changed since the last",
            markup=False,
        )

    def action_policy(self) -> None:
        sid = self.current_session()
        if sid is None:
            self.notify("Select a session first.", severity="warning")
            return
        self.open_policy_editor(sid)

    @work(group="control")
    async def open_policy_editor(self, session_id: str) -> None:
        view = self.bridge.views[session_id]
        policy = await self.supervisor.policy(session_id)
        events = await self.store.events(session_id)
        self.push_screen(PolicyEditorScreen(view, policy, events))

    @work(group="control")
    async def learn_rule(self, session_id: str, tool: str, rule: Rule, tool_use_id: str) -> None:
        """Add an approved rule to the session's policy, then allow the waiting tool use."""
        policy = await self.supervisor.policy(session_id)
        try:
            if tool in policy.tools:
                policy.tools[tool].rules.append(rule)
                await self.supervisor.set_policy(session_id, policy)
            await self.supervisor.confirm(session_id, tool_use_id, True)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        title = self.bridge.views[session_id].title
        self.notify(printable(f"{title}: from now on {rule.label(tool)}"), markup=False)

    def action_budget(self) -> None:
        sid = self.current_session()
        view = self.bridge.views.get(sid) if sid else None
        if view is None:
            self.notify("Select a session first.", severity="warning")
            return
        self.edit_budget(view.id)

    @work(group="control")
    async def edit_budget(self, session_id: str) -> None:
        view = self.bridge.views[session_id]
        events = await self.store.events(session_id)
        current = budget_of(spec_from_json(view.record.spec), events)
        answer = await self.push_screen_wait(
            BudgetScreen(view.title, current.max_list_cost, view.state.list_cost())
        )
        if answer is None:
            return
        cap = None if answer == NO_CAP else answer
        try:
            await self.supervisor.set_budget(session_id, cap, current.max_active_hours)  # type: ignore[arg-type]
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self.notify(
            f"{view.title}: cost cap {format_usd(cap) if cap is not None else 'lifted'}",  # type: ignore[arg-type]
            markup=False,
        )

    def action_control(self, kind: str) -> None:
        sid = self.current_session()
        if sid is None:
            self.notify("Select a session first.", severity="warning")
            return
        self.control_session(sid, kind, {})

    @work(group="control")
    async def control_session(self, session_id: str, kind: str, payload: dict[str, Any]) -> None:
        try:
            await self.supervisor.apply_command(session_id, kind, payload)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        title = self.bridge.views[session_id].title
        done = {
            "pause": "pausing",
            "resume": "resumed",
            "interrupt": "interrupted",
            "cancel": "cancelled",
        }
        if kind in done:
            self.notify(f"{title}: {done[kind]}", markup=False)

    def _first_pending(self) -> tuple[str, str, dict] | None:
        sid = self.current_session()
        if sid is None:
            return None
        pending = self.bridge.views[sid].pending()
        return (sid, *pending[0]) if pending else None

    def action_approve(self, allow: bool) -> None:
        found = self._first_pending()
        if found is None:
            self.notify("Nothing here waits for approval.", severity="warning")
            return
        if allow:
            sid, tool_use_id, _ = found
            self.control_session(sid, "confirm", {"tool_use_id": tool_use_id, "result": "allow"})
        else:
            self.action_approval_prompt(deny=True)

    def action_approval_prompt(self, deny: bool = False) -> None:
        found = self._first_pending()
        if found is None:
            self.notify("Nothing here waits for approval.", severity="warning")
            return
        sid, tool_use_id, use = found

        def answered(decision: Decision | None) -> None:
            if decision is not None and decision.always is not None:
                # The rule lands first, so the tool uses that follow already see it.
                self.learn_rule(sid, use.get("name", ""), decision.always, tool_use_id)
                return
            if decision is not None:
                payload = {
                    "tool_use_id": tool_use_id,
                    "result": "allow" if decision.allow else "deny",
                }
                if decision.message:
                    payload["message"] = decision.message
                self.control_session(sid, "confirm", payload)

        screen = ApprovalScreen(self.bridge.views[sid].title, use)
        self.push_screen(screen, answered)
        if deny:
            self.call_after_refresh(lambda: screen.query_one("#deny-message").focus())

    def action_new_session(self) -> None:
        def chosen(choice: NewSession | None) -> None:
            if choice is None:
                return
            if choice.spec is not None:
                self.start_session(choice.spec)
                return
            workspace = Path(choice.workspace).expanduser().resolve() if choice.workspace else None
            if workspace is not None and not workspace.is_dir():
                self.notify(
                    printable(f"{choice.workspace}: not a directory"),
                    severity="error",
                    markup=False,
                )
                return
            spec = ad_hoc_spec(
                choice.prompt,
                model=choice.model or DEFAULT_MODEL,
                workspace=workspace,
                allow_all=False,
            )
            self.start_session(spec)

        self.push_screen(NewSessionScreen(self.specs_dir), chosen)

    @work(group="control")
    async def start_session(self, spec: SessionSpec) -> None:
        await self._create(spec)

    async def _create(self, spec: SessionSpec) -> None:
        try:
            await self.supervisor.create_session(spec)
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
        running = self._running_views()
        if not running:
            self.exit()
            return

        def answered(choice: QuitChoice | None) -> None:
            if choice is not None:
                self._stop_on_exit = choice == "stop"
                self.exit()  # the core closes in on_unmount, awaited by Textual's shutdown

        self.push_screen(QuitScreen(len(running)), answered)

    def _running_views(self) -> list:
        if not self.ready.is_set():
            return []
        return [
            v for v in self.bridge.views.values() if v.state.status in ("running", "rescheduling")
        ]

    async def close_core(self, *, stop: bool = False) -> None:
        if self._core_closing or not hasattr(self, "supervisor"):
            return
        self._core_closing = True
        if stop:
            for view in list(self.bridge.views.values()):
                if view.state.status in ("running", "rescheduling"):
                    await self.supervisor.cancel(view.id)
        self.bridge.close()
        await self.supervisor.close()
        await self.store.close()
        self.closed.set()

    async def on_unmount(self) -> None:
        await self.close_core(stop=self._stop_on_exit)
