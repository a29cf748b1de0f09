"""The ``corral`` command line: a parser and dispatch (``main``), then one module per
command group. Every command reaches corral through a ``tui.client`` client."""

from tui.cli.dispatch import main

__all__ = ["main"]
