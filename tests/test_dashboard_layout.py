"""The dashboard uses the room it has: panes share the height, a short pane shows its
newest lines, past COMPACT_AT sessions a sortable table takes over, and the key line
is one widget that is not rebuilt when focus moves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.widgets._footer import FooterKey

from tui.core.session.views import TailLine
from tui.ui.screens.dashboard import COMPACT_AT, PANE_MIN_HEIGHT
from tui.ui.widgets.key_hints import KeyHints
from tui.ui.widgets.session_pane import SessionPane, in_view

from .app_helpers import demo_app, settle, until
from .conftest import make_spec


async def test_three_sessions_fill_the_screen(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        await pilot.pause(0.1)
        heights = {p.size.height for p in app.dashboard.panes()}
        # One row of three: each pane takes (nearly) the whole height under the ticker.
        assert len(heights) == 1 and heights.pop() > 40


async def test_a_short_pane_shows_its_newest_lines(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 24)) as pilot:
        await settle(pilot, app)
        target = app.dashboard.panes()[0]
        snap = target.snapshot
        lines = tuple(TailLine("agent", f"line {i}") for i in range(40))
        target.snapshot = replace(snap, tail=lines, streaming="", version=snap.version + 1)
        await pilot.pause()
        shown = target._tail.shown
        rows = target._tail.size.height
        assert 0 < rows < 40
        assert len(shown) == rows and shown[-1].endswith("line 39")
        assert shown[0].endswith(f"line {40 - rows}")


async def test_the_key_line_is_one_widget_that_focus_moves_do_not_rebuild(
    data_dir: Path,
) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        hints = app.dashboard.query_one(KeyHints)
        before = hints.shown
        assert ("y", "Allow", True) in before and ("q", "Quit", True) in before
        widgets = len(list(app.dashboard.walk_children()))
        for _ in range(10):
            await pilot.press("right", "left")
        assert hints.shown == before
        assert len(list(app.dashboard.walk_children())) == widgets  # nothing piled up
        assert not list(app.dashboard.query(FooterKey))


def many_specs(tmp_path: Path, count: int) -> list:
    specs = []
    for n in range(count):
        workspace = tmp_path / f"ws{n}"
        workspace.mkdir()
        asks = {"bash": {"permission_policy": "always_ask"}} if n % 10 == 3 else None
        turns = [
            {"text": f"step {n}", "tool_uses": [("bash", {"command": "true"})]},
            {"text": f"done {n}"},
        ]
        extra = {"tools": asks} if asks else {}
        specs.append(make_spec(workspace, turns, name=f"m{n}", title=f"session {n:02d}", **extra))
    return specs


async def test_past_compact_at_a_sortable_table_with_panes_for_the_few(
    data_dir: Path, tmp_path: Path
) -> None:
    count = COMPACT_AT + 8
    app = demo_app(data_dir, many_specs(tmp_path, count))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, app.ready.is_set, "the app", tries=600)
        board = app.dashboard
        await until(
            pilot,
            lambda: board.compact is not None and board.compact.table.row_count == count,
            "a row per session",
            tries=600,
        )
        table = board.compact.table
        assert not board.query("#panes SessionPane")  # no grid panes behind the table
        # By status (the default): the ones waiting for approval first.
        waiting = [f"session {n:02d}" for n in range(count) if n % 10 == 3]
        await until(
            pilot,
            lambda: [str(table.get_row_at(i)[1]) for i in range(len(waiting))] == waiting,
            "approvals on top",
        )
        table.focus()

        def strip() -> list[str]:
            return [p.snapshot.title for p in board.query("#focus-strip SessionPane")]

        def cursor_title() -> str:
            return str(table.get_row_at(table.cursor_row)[1])

        # The selected row's session first, then others waiting for approval.
        await until(pilot, lambda: strip()[:1] == [cursor_title()], "the selected one's pane")
        assert len(strip()) == 3 and set(strip()[1:]) <= set(waiting)
        table.move_cursor(row=0)
        await pilot.press("down")
        await until(pilot, lambda: strip()[:1] == [waiting[1]], "the strip follows the cursor")
        await pilot.press("O")  # the order they were made
        assert str(table.get_row_at(0)[1]) == "session 00"
        await pilot.press("y")  # acts on the selected row's session... which is not waiting
        await pilot.press("S")
        await until(pilot, lambda: str(table.get_row_at(0)[1]) == waiting[0], "status order")
        table.move_cursor(row=0)
        await pilot.press("y")  # allow the first waiting session's tool use
        await until(
            pilot,
            lambda: (
                not board.fleet.sessions[table.selected_id() or ""].state.pending_approvals
                or str(table.get_row_at(0)[1]) != waiting[0]
            ),
            "allowed from the table",
        )
        # The filter narrows the rows.
        await pilot.press("slash", *"session 1")
        await until(pilot, lambda: table.row_count == 10, "ten rows match")
        assert isinstance(app.focused, object)
        assert not any(isinstance(w, SessionPane) for w in board.query("#panes *"))
        assert PANE_MIN_HEIGHT == 13


async def test_a_pane_out_of_view_paints_nothing_until_it_is_scrolled_into_view(
    data_dir: Path, tmp_path: Path
) -> None:
    # 16 panes do not fit 160x48: the last rows are below the screen. Repainting them
    # would change nothing visible and cost every frame a rebuild of Textual's map.
    app = demo_app(data_dir, many_specs(tmp_path, 16))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, app.ready.is_set, "the app", tries=600)
        board = app.dashboard
        await until(pilot, lambda: len(board.panes()) == 16, "sixteen panes", tries=600)
        await pilot.pause(0.2)
        last = board.panes()[-1]
        assert not in_view(last) and in_view(board.panes()[0])
        snap = last.snapshot
        news = (*snap.tail, TailLine("agent", "news while away"))
        last.snapshot = replace(snap, tail=news, streaming="", version=snap.version + 1)
        await pilot.pause()
        assert last._stale and not any("news while away" in t for t in last._tail.shown)
        last.focus()
        last.scroll_visible(animate=False)
        await until(pilot, lambda: in_view(last) and not last._stale, "caught up in view")
        assert last._tail.shown[-1].endswith("news while away")
