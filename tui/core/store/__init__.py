"""The store: the SQLite file and its one writer, rows, schema migrations, the lease, the
event bus, and where the data dir and its settings live."""
