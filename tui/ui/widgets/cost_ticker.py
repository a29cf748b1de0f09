"""The live cost ticker: spend, burn rate, tokens, model vs session-hour spend, a sparkline."""

from __future__ import annotations

import humanize
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Sparkline, Static

from tui.core.money.pricing import format_usd
from tui.ui.fleet import EMPTY_FLEET, Fleet


def compact_count(n: int) -> str:
    return humanize.intword(n) if n >= 10**6 else humanize.intcomma(n)


def set_text(static: Static, text: Text, *, auto_width: bool) -> None:
    """Update a Static only when its text changed, asking for a layout only when a
    width-``auto`` one changes width.

    The ticker updates on every bridge flush (up to ~33 a second while sessions stream),
    and a layout reflows the whole screen: with 16 panes a frame then costs about twice
    as much (bench/ui.py).
    """
    old = static.content
    if isinstance(old, Text) and old == text and old.style == text.style:
        return
    width_changed = not isinstance(old, Text) or old.cell_len != text.cell_len
    static.update(text, layout=auto_width and width_changed)


class CostTicker(Horizontal):
    DEFAULT_CSS = """
    CostTicker { height: 1; width: 1fr; }
    CostTicker > .ticker--text { width: 1fr; height: 1; padding: 0 1; }
    CostTicker > .ticker--approvals { width: auto; height: 1; padding: 0 1; }
    CostTicker > Sparkline { width: 30; height: 1; margin: 0 1; }
    """

    # Bound to the screen's fleet (data_bind); equality is identity, so each new fleet shows.
    fleet: reactive[Fleet] = reactive(EMPTY_FLEET, repaint=False)  # the watcher updates the rows

    def __init__(self) -> None:
        super().__init__()
        # Held, not queried: updates may arrive before the children mount.
        self._text = Static(classes="ticker--text")
        self._sparkline = Sparkline([0.0], summary_function=max)
        self._approvals = Static(classes="ticker--approvals")

    def compose(self) -> ComposeResult:
        yield self._text
        yield self._sparkline
        yield self._approvals

    def watch_fleet(self, fleet: Fleet) -> None:
        totals, burn = fleet.totals, fleet.burn_per_hour
        text = Text.assemble(
            ("corral ", "bold"),
            (format_usd(totals.cost), "bold"),
            "  ",
            (f"{format_usd(burn, 2)}/h" if burn is not None else "$—/h", ""),
            "  ",
            (
                f"{compact_count(totals.tokens)} tok",
                "dim",
            ),
            "  ",
            (
                f"model {format_usd(totals.model_cost)} · hours {format_usd(totals.runtime_cost)}",
                "dim",
            ),
            "  ",
            (f"{totals.running}/{totals.sessions} running", ""),
        )
        set_text(self._text, text, auto_width=False)  # 1fr: growing numbers move nothing
        approvals = self._approvals
        set_text(
            approvals,
            Text(f"⚠ {totals.approvals} waiting for approval" if totals.approvals else ""),
            auto_width=True,
        )
        approvals.set_class(bool(totals.approvals), "-waiting")
        self._sparkline.data = list(fleet.history) or [0.0]
