"""What every part of the service works with: one settings, backend, store, metrics, replica."""

from __future__ import annotations

from dataclasses import dataclass

from jid_service.backends.base import Backend
from jid_service.metrics import Metrics
from jid_service.replica import Replica
from jid_service.settings import JIDSettings
from jid_service.store import JobStore


@dataclass(frozen=True)
class JobContext:
    """The settings, backend, store and metrics of one running JID, and its place among replicas."""

    settings: JIDSettings
    backend: Backend
    store: JobStore
    metrics: Metrics
    replica: Replica


class ServicePart:
    """Base of the service's parts: the context's settings, backend, store, metrics at hand."""

    def __init__(self, context: JobContext) -> None:
        self.settings = context.settings
        self.backend = context.backend
        self.store = context.store
        self.metrics = context.metrics
        self.replica = context.replica
