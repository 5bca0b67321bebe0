"""The job interface daemon (JID): an ARP-compatible HTTP API over batch backends."""

__version__ = "0.1.0"
