"""The Executor, the channel between it and its Task subprocess, and process liveness."""
