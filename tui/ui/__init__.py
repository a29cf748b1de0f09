"""The Textual app: the only package that imports Textual. It reaches corral only through
a ``tui.client`` client, and hears of changes only through its bridge (``bridge.py``)."""
