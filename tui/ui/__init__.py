"""The Textual app: the only package that imports Textual. It subscribes to the core."""
