"""The domain, headless: sessions and their events, the store, the engine that runs them,
checkpoints, permissions, money, model providers, sandboxes and tools.

Nothing here imports Textual or Rich (a test checks); the app reaches it through
``tui.client``.
"""
