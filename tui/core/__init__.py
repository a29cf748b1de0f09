"""The headless engine: specs, store, supervisor, runner, providers, sandboxes.

Nothing in this package imports Textual; the UI subscribes to it from ``tui.ui``.
"""
