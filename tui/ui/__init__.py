"""The Textual app: the only package that imports Textual. It reaches corral only through
a ``tui.client`` client, and hears of changes only through its bridge (``bridge.py``)."""

import os

# Textual's screen update timer, after a frame that took longer than a frame period,
# waits one to two periods more before it draws again (its skip rounds one period too
# far; textual 8.2). With 16 streaming panes a frame often takes that long, and the
# wait doubled the dashboard's frame interval: p99 64-72 ms at 60 fps, 39 ms at 120
# (bench/ui.py --quick). Frames are still only drawn when something changed. It must be
# set before Textual is imported, which every module of this package does after this
# file runs; a user's own TEXTUAL_FPS wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
