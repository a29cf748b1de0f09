"""corral: long-lived AI agent sessions on your own machine."""

__version__ = "0.1.0"
