"""Text from outside (titles, model text, commands, tool output, file names, rules, labels)
reaches the screen inert: no control character is passed to the terminal, each shows as a
visible escape, and markup in it is shown as written, never obeyed."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import pytest
from rich.segment import Segment
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Collapsible, DataTable, TabbedContent

from tui.core.session.state import is_settled
from tui.ui.app import CorralApp, markup_literal
from tui.ui.screens.approval import ApprovalScreen
from tui.ui.screens.checkpoint_diff import CheckpointDiffScreen
from tui.ui.screens.confirm_rewind import ConfirmRewindScreen
from tui.ui.screens.new_session import NewSessionScreen
from tui.ui.screens.policy_editor import PolicyEditorScreen
from tui.ui.screens.session import SessionScreen
from tui.ui.screens.timeline import TimelineScreen
from tui.ui.themes import ThemeError, load_theme
from tui.ui.widgets.checkpoint_table import CheckpointTable
from tui.ui.widgets.session_pane import SessionPane
from tui.ui.widgets.transcript import Transcript

from .app_helpers import demo_app, only_pane, until
from .conftest import make_spec, toml_value, write_script

SIZE = (200, 120)  # tall and wide: everything of interest is on screen at once
ESC, BEL = "\x1b", "\x07"
CLICK = "[@click=app.quit]"
TITLE = f"evil{ESC}]0;pwned{BEL} {CLICK}T[/] \u202eright"
THINKING = f"think {ESC}[31mred\x9b31m \u202egnp.exe"
TEXT = f"hi {ESC}[2J{ESC}]52;c;cHduZWQ={BEL} {CLICK}click[/] [bold red]loud[/] a\rb"
COMMAND = f"printf '\\033]0;pwned\\007\\033[2J'; echo '{CLICK}q[/]' {ESC}[2J"
FILE = f"ev{ESC}[31mil{CLICK}.txt"
SCRIPT = f"s{ESC}[2J{CLICK}"
BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def hostile_turns() -> list[dict]:
    return [
        {
            "thinking": THINKING,
            "text": TEXT,
            "tool_uses": [
                ("bash", {"command": COMMAND}),
                ("write", {"file_path": FILE, "content": f"x{ESC}[2Jy\n"}),
                ("bash", {"command": "echo changed > bad*.txt"}),
            ],
        },
        {"text": "done"},
    ]


def hostile_workspace(tmp_path: Path) -> Path:
    source = tmp_path / "seed"
    source.mkdir()
    # A name that is not UTF-8: Python reads it back with a lone surrogate in it.
    (source / os.fsdecode(b"bad\xff.txt")).write_text("before\n")
    return source


def hostile_app(
    data_dir: Path, tmp_path: Path, bash: str = "always_allow", price_as: str | None = None
) -> CorralApp:
    tools = {
        "default": {"enabled": True, "permission_policy": "always_allow"},
        "bash": {"permission_policy": bash, "rules": [{"deny": f"rm {CLICK}*"}]},
    }
    spec = make_spec(
        tmp_path,
        hostile_turns(),
        title=TITLE,
        tools=tools,
        workspace=hostile_workspace(tmp_path),
        name=SCRIPT,  # the pane shows the script's file name as the model
    )
    if price_as is not None:  # the model name each request records, shown in the usage table
        write_script(tmp_path / f"{SCRIPT}.toml", hostile_turns(), price_as=price_as)
    return demo_app(data_dir, [spec])


def screen_lines(app: CorralApp) -> list[list[Segment]]:
    """What the terminal would be sent for the current screen, line by line."""
    return [list(strip) for strip in app.screen._compositor.render_strips()]


def screen_text(app: CorralApp) -> str:
    return "\n".join("".join(s.text for s in line) for line in screen_lines(app))


def unsafe(char: str) -> bool:
    # Independent of tui.core.printable: C0/C1 controls, surrogates, line and paragraph
    # separators, and the bidi embeddings, overrides and isolates.
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI


def assert_inert(app: CorralApp) -> str:
    """No rendered line carries a control character or a click action; returns the text."""
    for y, line in enumerate(screen_lines(app)):
        text = "".join(s.text for s in line)
        bad = [c for c in text if unsafe(c)]
        assert not bad, f"line {y} sends {bad!r} to the terminal: {text!r}"
        for segment in line:
            meta = segment.style.meta if segment.style else {}
            assert "@click" not in meta, f"line {y}: {segment.text!r} is a live {meta}"
    return screen_text(app)


async def settled_pane(pilot: Pilot, app: CorralApp) -> SessionPane:
    target = await only_pane(pilot, app)
    await until(pilot, lambda: is_settled(target.snapshot.state), "the session to settle")
    await until(
        pilot,
        lambda: target.snapshot is app.bridge.fleet.sessions[target.session_id],
        "the pane repaints",
    )
    await pilot.pause()
    return target


async def test_dashboard_pane_shows_hostile_text_inert(data_dir: Path, tmp_path: Path) -> None:
    app = hostile_app(data_dir, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settled_pane(pilot, app)
        shown = assert_inert(app)
        # The escapes are there to see, and the markup is shown as written.
        assert "evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/] \\u202eright" in shown  # title
        assert "hi \\x1b[2J\\x1b]52;c;cHduZWQ=\\x07 [@click=app.quit]click[/]" in shown
        assert "write: ev\\x1b[31mil[@click=app.quit].txt" in shown  # tool tail line
        assert "scripted:s\\x1b[2J[@click=app.quit].toml" in shown  # the model
        assert "\\x1b]0;pwned\\x07\\x1b[2J[@click=app.quit]q[/]" in shown  # bash output
        # Clicking the would-be link in the title does nothing but focus the pane.
        y, line = next((y, t) for y, t in enumerate(shown.splitlines()) if "evil\\x1b" in t)
        await pilot.click(offset=(line.index(CLICK) + 2, y))
        await pilot.pause()
        assert app.is_running


async def test_transcript_shows_hostile_text_inert(data_dir: Path, tmp_path: Path) -> None:
    app = hostile_app(data_dir, tmp_path, price_as=f"claude{ESC}[2J{CLICK}m[/]")
    async with app.run_test(size=SIZE) as pilot:
        (await settled_pane(pilot, app)).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionScreen), "session screen")
        screen = app.screen
        transcript = screen.query_one(Transcript)
        await until(
            pilot, lambda: transcript.last_seq == screen.snapshot.state.last_seq, "transcript"
        )
        for collapsible in transcript.query(Collapsible):
            collapsible.collapsed = False  # commands, inputs and outputs on screen too
        await pilot.pause()
        shown = assert_inert(app)
        assert "evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/]" in shown  # header
        assert "think \\x1b[31mred\\x9b31m \\u202egnp.exe" in shown
        assert "agent  hi \\x1b[2J\\x1b]52;c;cHduZWQ=\\x07" in shown
        assert "[@click=app.quit]click[/] [bold red]loud[/] a\\x0db" in shown
        assert "bash : printf '\\033]0;pwned\\007\\033[2J'; echo '[@click=app.quit]q[/]'" in shown
        assert "write : ev\\x1b[31mil[@click=app.quit].txt" in shown  # the tool's title
        assert '"file_path": "ev\\u001b[31mil[@click=app.quit].txt"' in shown  # its input
        assert "\\x1b]0;pwned\\x07\\x1b[2J[@click=app.quit]q[/] \\x1b[2J" in shown  # output
        assert "wrote 7 bytes to ev\\x1b[31mil[@click=app.quit].txt" in shown
        screen.query_one(TabbedContent).active = "usage"
        await until(pilot, lambda: screen.query_one(DataTable).row_count == 2, "usage rows")
        await pilot.pause()
        shown = assert_inert(app)
        assert "claude\\x1b[2J[@click=app.quit]m[/]" in shown  # the model of each request


async def test_approval_prompt_and_toast_show_hostile_text_inert(
    data_dir: Path, tmp_path: Path
) -> None:
    app = hostile_app(data_dir, tmp_path, bash="always_ask")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        # The toast that says so names the session: its title is shown as written. Read
        # while it is up (it goes after 6 s, which a loaded machine can spend settling).
        toast_up = lambda: "Approval needed" in screen_text(app)  # noqa: E731
        await until(pilot, toast_up, "the approval toast", tries=600)  # a slow start, loaded
        shown = assert_inert(app)
        assert "evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/] \\u202eright:" in shown
        target = await settled_pane(pilot, app)
        assert target.snapshot.pending(), "bash waits for approval"
        target.focus()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "approval prompt")
        await pilot.pause()
        shown = assert_inert(app)
        assert "Approve a tool use — evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/]" in shown
        assert "bash: printf '\\033]0;pwned\\007\\033[2J'; echo '[@click=app.quit]q[/]'" in shown
        assert re.search(r"█ +\\x1b\[2J +█", shown)  # the command's end, wrapped


async def test_policy_editor_shows_hostile_text_inert(data_dir: Path, tmp_path: Path) -> None:
    app = hostile_app(data_dir, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        (await settled_pane(pilot, app)).focus()
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, PolicyEditorScreen), "policy editor")
        editor = app.screen
        await until(pilot, lambda: editor.query_one("PolicyPreview").row_count > 0, "preview")
        editor.query_one("#tools").highlighted = list(editor.policy.tools).index("bash")
        await until(pilot, lambda: editor.query_one("RuleTable").row_count == 1, "bash rules")
        await pilot.pause()
        shown = assert_inert(app)
        assert "rm [@click=app.quit]*" in shown  # the rule's pattern, in the rule table
        assert "echo '[@click=app.quit]q[/]' \\x1b[2J" in shown  # a command, in the preview
        # A rule error quotes the pattern it refuses, as written.
        await pilot.press("a")
        await pilot.press(*f"{CLICK}x[")
        await until(pilot, lambda: "unclosed" in screen_text(app), "the rule error")
        shown = assert_inert(app)
        assert "'[@click=app.quit]x[': an unclosed '['" in shown


async def test_timeline_diff_and_rewind_show_hostile_text_inert(
    data_dir: Path, tmp_path: Path
) -> None:
    app = hostile_app(data_dir, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        target = await settled_pane(pilot, app)
        await app.client.checkpoint(target.snapshot.id, f"label {ESC}[2J{CLICK}x[/]")
        target.focus()
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "timeline")
        timeline = app.screen
        table = timeline.query_one(CheckpointTable)
        await until(pilot, lambda: table.row_count >= 3, "checkpoints")
        await pilot.pause()
        shown = assert_inert(app)
        assert "label \\x1b[2J[@click=app.quit]x[/]" in shown  # in the table and the detail
        # #1 (the seed) against #4 (the end of the turn that wrote the files).
        await pilot.press("up", "up", "up", "up", "space", "down", "down", "down", "d")
        await until(pilot, lambda: isinstance(app.screen, CheckpointDiffScreen), "diff")
        await pilot.pause()
        shown = assert_inert(app)
        assert "+ ev\\x1b[31mil[@click=app.quit].txt" in shown  # the listing
        assert "~ bad\\xff.txt" in shown  # a name that is not UTF-8
        assert "+x\\x1b[2Jy" in shown  # a line of the diff
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is timeline, "back on the timeline")
        await pilot.press("up", "up", "up", "r")  # rewind to #1
        await until(pilot, lambda: isinstance(app.screen, ConfirmRewindScreen), "confirmation")
        await pilot.pause()
        shown = assert_inert(app)
        assert "Rewind evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/]" in shown
        assert "deleted   ev\\x1b[31mil[@click=app.quit].txt" in shown
        assert "reverted  bad\\xff.txt" in shown
        await pilot.press("ctrl+y")  # the toast that reports it names the session
        await until(pilot, lambda: "rewound to #1" in screen_text(app), "the rewind's toast")
        shown = assert_inert(app)
        assert "▌ evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/] \\u202eright:" in shown


async def test_new_session_picker_shows_hostile_specs_inert(data_dir: Path, tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    script = write_script(tmp_path / "s.toml", [{"text": "done"}])
    (specs / "good.toml").write_text(
        f"title = {toml_value(TITLE)}\n"
        f"description = {toml_value(TEXT)}\n"
        'prompt = "p"\n'
        f"[agent]\nmodel = {toml_value(f'scripted:{script}')}\n"
    )
    (specs / f"bad{ESC}[2J{CLICK}.toml").write_text(f"title = {toml_value(TITLE)}\nnope = 1\n")
    app = demo_app(data_dir, [], specs_dir=specs)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, app.ready.is_set, "the core to start")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewSessionScreen), "the picker")
        await pilot.pause()
        shown = assert_inert(app)
        assert "bad\\x1b[2J[@click=app.quit].toml" in shown  # a spec that does not load
        assert "evil\\x1b]0;pwned\\x07 [@click=app.quit]T[/] \\u202eright" in shown
        assert "hi \\x1b[2J\\x1b]52;c;cHduZWQ=\\x07 [@click=app.quit]click[/]" in shown


def test_markup_literal_shows_any_text_as_written() -> None:
    # textual.markup.escape misses these; the palette would run the first one on a click.
    for text in (f" {CLICK}x", "[ @click=app.quit]x[/]", "[B]x", "[$accent]x", "a\\[b]", "x\\"):
        content = Content.from_markup(markup_literal(text))
        assert content.plain == text
        assert not content.spans


def test_a_theme_name_cannot_carry_markup_or_controls(tmp_path: Path) -> None:
    # Textual's own theme picker shows theme names as markup.
    path = tmp_path / "t.toml"
    for name in (f"x{CLICK}", f"dark{ESC}[2J", " spaced"):
        path.write_text(f'name = {toml_value(name)}\nprimary = "#ff0000"\n')
        with pytest.raises(ThemeError, match="`name` must be"):
            load_theme(path)
    path.write_text('name = "corral-dark.v2"\nprimary = "#ff0000"\n')
    assert load_theme(path).name == "corral-dark.v2"
