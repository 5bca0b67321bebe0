"""The Task base class, ThirdPartyTask, the built-in test Tasks and the demo pipeline."""
