"""Edit a session's permission policy: rules per tool, checked as you type, previewed
against the session's recent tool uses, saved to the session or as a profile."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from tui.client.protocol import CorralClient
from tui.core.errors import CorralError
from tui.core.permissions.policy import DECISIONS, Policy, Rule, RuleError, check_rule
from tui.core.permissions.profiles import save_profile
from tui.core.permissions.simulator import simulate
from tui.core.printable import is_printable, printable, printable_line
from tui.core.session import events as ev
from tui.core.session.spec import POLICIES
from tui.ui.fleet import SessionSnapshot
from tui.ui.screens.text_prompt import TextPromptScreen
from tui.ui.widgets.key_hints import KeyHints
from tui.ui.widgets.policy_preview import PolicyPreview
from tui.ui.widgets.rule_table import RuleTable

PREVIEW_USES = 30  # the session's most recent tool uses shown in the preview


class PolicyEditorScreen(Screen[None]):
    DEFAULT_CSS = """
    PolicyEditorScreen { layout: vertical; }
    PolicyEditorScreen > .editor--header { height: 2; padding: 0 1; }
    PolicyEditorScreen > Horizontal { height: 1fr; }
    PolicyEditorScreen #tools { width: 30; }
    PolicyEditorScreen .editor--rules { width: 1fr; }
    PolicyEditorScreen .editor--form { height: auto; }
    PolicyEditorScreen #decision { width: 16; }
    PolicyEditorScreen #pattern { width: 1fr; }
    PolicyEditorScreen #rule-error { height: 1; padding: 0 1; }
    PolicyEditorScreen PolicyPreview { height: 14; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "save", "Save to session"),
        Binding("ctrl+e", "export", "Save as profile"),
        Binding("a", "focus_form", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("x", "delete", "Delete"),
        Binding("delete", "delete", show=False),
        Binding("[", "move(-1)", "Up"),
        Binding("]", "move(1)", "Down"),
        Binding("p", "cycle_default", "Default"),
    ]

    def __init__(
        self,
        client: CorralClient,
        snapshot: SessionSnapshot,
        policy: Policy,
        events: list[ev.Event],
        profiles_dir: Path,
    ) -> None:
        super().__init__()
        self.client = client
        self.snapshot = snapshot
        self.session_id = snapshot.id
        self.profiles_dir = profiles_dir
        self.saved = policy
        self.policy = policy.copy()
        self.events = events
        self.tool = next(iter(self.policy.tools), "bash")
        self.editing: int | None = None  # the rule being edited, or None when adding

    def compose(self) -> ComposeResult:
        yield Static(classes="editor--header")
        with Horizontal():
            yield OptionList(id="tools")
            with Vertical(classes="editor--rules"):
                yield RuleTable()
                with Horizontal(classes="editor--form"):
                    yield Select(
                        [(d, d) for d in DECISIONS], value="allow", allow_blank=False, id="decision"
                    )
                    yield Input(placeholder="pattern, e.g. pytest * or src/**", id="pattern")
                yield Label("", id="rule-error")
        yield Label(Text("Preview: recent tool uses under this policy", style="bold"))
        yield PolicyPreview()
        yield KeyHints()

    def on_mount(self) -> None:
        self._show_tools()
        self._show_rules()

    # -- showing ---------------------------------------------------------------------------

    def _show_tools(self) -> None:
        tools = self.query_one("#tools", OptionList)
        keep = tools.highlighted
        tools.clear_options()
        for name, tool in self.policy.tools.items():
            state = tool.default if tool.enabled else "disabled"
            label = Text.assemble((printable_line(name), "bold"), f"  {state} · {len(tool.rules)}")
            tools.add_option(Option(label, id=name))
        tools.highlighted = keep if keep is not None else list(self.policy.tools).index(self.tool)

    def _show_rules(self, select: int | None = None) -> None:
        self.query_one(RuleTable).show(self.policy.tools[self.tool].rules, select)
        dirty = self.policy.to_data() != self.saved.to_data()
        default = self.policy.tools[self.tool].default
        self.query_one(".editor--header", Static).update(
            Text.assemble(
                ("Permissions", "bold"),
                f" — {self.snapshot.title} · {printable_line(self.tool)}: default {default}",
                ("   unsaved changes (ctrl+s saves)" if dirty else "", "bold yellow"),
                "\n",
                (
                    "deny > ask > allow, whatever the order; a line that cannot be split is asked",
                    "dim",
                ),
            )
        )
        self.refresh_preview()

    @work(exclusive=True, group="preview")
    async def refresh_preview(self) -> None:
        uses = [e for e in self.events if e.type == ev.AGENT_TOOL_USE][-PREVIEW_USES:]
        workspace = Path(self.snapshot.record.workspace)
        # Patterns run against every use: off the message loop, on a copy the form may not
        # change under it.
        sessions = {self.session_id: (uses, workspace)}
        rows = await asyncio.to_thread(simulate, self.policy.copy(), sessions)
        self.query_one(PolicyPreview).show(rows)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.tool:
            self.tool = event.option.id
            self.editing = None
            self._show_rules()

    # -- the form ----------------------------------------------------------------------------

    def _form_rule(self) -> Rule:
        decision = self.query_one("#decision", Select).value
        pattern = self.query_one("#pattern", Input).value.strip()
        rule = Rule(decision, pattern)  # type: ignore[arg-type]
        check_rule(self.tool, rule)
        return rule

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "pattern":
            return
        error = ""
        if event.value.strip():
            try:
                self._form_rule()
            except RuleError as exc:
                error = str(exc)
        # The error quotes the pattern: Text, so it is never read as markup.
        self.query_one("#rule-error", Label).update(Text(printable_line(error)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "pattern":
            return
        try:
            rule = self._form_rule()
        except RuleError as exc:
            self.query_one("#rule-error", Label).update(Text(printable_line(str(exc))))
            return
        rules = self.policy.tools[self.tool].rules
        if self.editing is not None and self.editing < len(rules):
            rules[self.editing] = rule
            index = self.editing
        else:
            rules.append(rule)
            index = len(rules) - 1
        self.editing = None
        event.input.value = ""
        self._show_tools()
        self._show_rules(index)

    # -- actions -----------------------------------------------------------------------------

    def action_focus_form(self) -> None:
        self.editing = None
        self.query_one("#pattern", Input).focus()

    def action_edit(self) -> None:
        index = self.query_one(RuleTable).selected
        if index is None:
            return
        rule = self.policy.tools[self.tool].rules[index]
        if not is_printable(rule.pattern):
            # An Input shows its value raw; shown escaped, saving would change the rule.
            self.notify(
                "This pattern has control characters; delete it and write it again.",
                severity="warning",
            )
            return
        self.editing = index
        self.query_one("#decision", Select).value = rule.decision
        field = self.query_one("#pattern", Input)
        field.value = rule.pattern
        field.focus()

    def action_delete(self) -> None:
        index = self.query_one(RuleTable).selected
        if index is None:
            return
        del self.policy.tools[self.tool].rules[index]
        self._show_tools()
        self._show_rules(index)

    def action_move(self, step: int) -> None:
        index = self.query_one(RuleTable).selected
        rules = self.policy.tools[self.tool].rules
        if index is None or not 0 <= index + step < len(rules):
            return
        rules[index], rules[index + step] = rules[index + step], rules[index]
        self._show_rules(index + step)

    def action_cycle_default(self) -> None:
        tool = self.policy.tools[self.tool]
        tool.default = POLICIES[(POLICIES.index(tool.default) + 1) % len(POLICIES)]
        self._show_tools()
        self._show_rules(self.query_one(RuleTable).selected)

    @work(group="policy-save")
    async def action_save(self) -> None:
        try:
            change = await self.client.set_policy(self.session_id, self.policy.copy())
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self.saved = self.policy.copy()
        self.notify(
            printable(f"{self.snapshot.title}: {change}"),
            title="Policy saved",
            timeout=8,
            markup=False,
        )
        self._show_rules(self.query_one(RuleTable).selected)

    @work(group="policy-save")
    async def action_export(self) -> None:
        name = await self.app.push_screen_wait(
            TextPromptScreen("Save as profile", "profile name, e.g. careful-python")
        )
        if not name:
            return
        try:
            path = save_profile(self.policy, self.profiles_dir, name)
        except (CorralError, OSError) as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self.notify(printable(f"Saved {path}; corral policy apply SESSION {name}"), markup=False)
