"""Runs sessions: the agent loop of one session, the supervisor of many, and recovery of
sessions a dead process left running."""
