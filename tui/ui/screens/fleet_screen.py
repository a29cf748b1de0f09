"""The base of every screen that shows sessions: it keeps the latest ``Fleet``.

The bridge posts ``CoreBridge.Changed`` to each screen on the stack; the screen stores the
fleet in its ``fleet`` reactive, which its cost ticker is bound to (``data_bind``) and
which a subclass reacts to in ``watch_fleet``.
"""

from __future__ import annotations

from textual.reactive import Reactive, reactive
from textual.screen import Screen
from textual.widget import Widget

from tui.client.protocol import CorralClient
from tui.ui.bridge import CoreBridge
from tui.ui.fleet import EMPTY_FLEET, Fleet, SessionSnapshot, ShowsFleet


class FleetScreen(Screen[None], ShowsFleet):
    # repaint=False: a new fleet repaints only the widgets that show what changed; a
    # reactive's default repaints the whole screen, every flush (measured: bench/ui.py).
    fleet: reactive[Fleet] = reactive(EMPTY_FLEET, init=False, repaint=False)
    # Textual's own repaints the whole screen at every focus move; the widgets that gain
    # and lose focus restyle (and so repaint) themselves, which is all that changes.
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    def __init__(self, client: CorralClient, fleet: Fleet = EMPTY_FLEET) -> None:
        super().__init__()
        self.client = client
        # The opener's fleet, so the first frame is not empty; the bridge sends the
        # newest as soon as the screen is on the stack.
        self.set_reactive(FleetScreen.fleet, fleet)

    def on_core_bridge_changed(self, message: CoreBridge.Changed) -> None:
        self.fleet = message.fleet

    def session(self, session_id: str) -> SessionSnapshot | None:
        return self.fleet.sessions.get(session_id)
