"""The one seam the app and the CLI use to reach corral: the ``CorralClient`` protocol,
``RemoteClient`` (the server's API; what the app and the CLI use) and ``EngineClient``
(the engine itself: what the server serves). Nothing above this package touches the
store or the supervisor."""
