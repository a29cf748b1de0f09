"""Money in the app: a session stopped at its budget, raised with `b`, goes on."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Label

from tui.core.session import events as ev
from tui.ui.screens.budget import BudgetScreen

from .app_helpers import demo_app, only_pane, settle, until
from .conftest import make_spec
from .test_budget import turns


async def test_raise_the_budget_from_the_app(data_dir: Path, tmp_path: Path) -> None:
    app = demo_app(data_dir, [make_spec(tmp_path, turns(4), budget="0.01")])
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app, count=1)
        pane = await only_pane(pilot, app)
        assert pane.snapshot.state.stop_type == ev.BUDGET_REACHED
        pane.focus()
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BudgetScreen), "budget prompt")
        field = app.screen.query_one(Input)
        field.value = "lots"
        await pilot.pause()
        assert "decimal" in str(app.screen.query_one("#budget-error", Label).render())
        await pilot.press("enter")  # refused: still on the prompt
        assert isinstance(app.screen, BudgetScreen)
        field.value = "1.00"
        await pilot.press("enter")
        await until(
            pilot, lambda: pane.snapshot.state.stop_type == ev.END_TURN, "end_turn", tries=400
        )
        assert pane.snapshot.state.usage.requests == 5
