"""The Executor and the channel between it and its Task subprocess."""
