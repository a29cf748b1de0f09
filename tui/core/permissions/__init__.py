"""Who may do what: per-tool policies with rules on commands and paths, shell splitting,
globs, profiles, a session's policy over time, and the policy simulator."""
