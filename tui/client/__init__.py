"""The one seam the app and the CLI use to reach corral: the ``CorralClient`` protocol and
its implementations (the engine in this process, or in another process on this data
dir). Nothing above this package touches the store or the supervisor."""
