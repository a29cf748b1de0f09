"""The agent's tools, with the input shapes of the SDK's ``agent_toolset_20260401``."""
