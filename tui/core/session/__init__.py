"""A session's vocabulary: its events and their payload schemas, the folds over them
(status and usage, conversation, branches), its spec and records, and how to show them."""
