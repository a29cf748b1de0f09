"""``corral serve``: the engine behind an HTTP API. The Managed Agents API (agents,
environments, sessions, events; the shapes the ``anthropic`` SDK parses) under ``/v1``,
corral's own extras under ``/v1/corral``; a Unix socket by default, TCP with a key."""
