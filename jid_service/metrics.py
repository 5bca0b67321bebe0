"""Prometheus metrics of one JID instance (its own registry, so apps in tests do not clash).

Labels are bounded: route *templates* (``/jid/ws/{experiment}/start_job``), never
raw paths with ids, and never anything from a request header.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jid_service.backends.job_cost import JobCost
from lute.job_status import JobStatus

DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
"""Seconds, from a second to a day: the buckets of queue waits and run times."""
MEMORY_BUCKETS = tuple(float(1 << shift) for shift in range(24, 42, 2))
"""Bytes, 16 MiB to 1 TiB by factors of 4: the buckets of peak memory."""


class Metrics:
    """The JID's metric families."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("jid_jobs", "Stored jobs by status", ["status"], registry=self.registry)
        self.backend_calls = Counter(
            "jid_backend_calls", "Backend calls by operation and outcome",
            ["operation", "outcome"], registry=self.registry,
        )
        self.backend_latency = Histogram(
            "jid_backend_call_seconds", "Backend call latency by operation", ["operation"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.requests = Histogram(
            "jid_request_seconds", "HTTP request latency by route template",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60),
        )
        self.poll_ticks = Counter(
            "jid_poll_ticks", "Poller ticks by outcome", ["outcome"], registry=self.registry
        )
        self.active_jobs = Gauge(
            "jid_active_jobs", "Jobs the poller followed in its last tick", registry=self.registry
        )
        self.state_changes = Counter(
            "jid_job_state_changes", "Job state changes the poller stored",
            registry=self.registry,
        )
        self.backend_available = Gauge(
            "jid_backend_available",
            "1 while the poller's last tick reached the backend, 0 while it cannot",
            registry=self.registry,
        )
        self.last_tick = Gauge(
            "jid_last_successful_tick_timestamp_seconds",
            "Unix time of the poller's last successful tick", registry=self.registry,
        )
        self.poller_leader = Gauge(
            "jid_poller_leader",
            "1 while this replica polls the backend, 0 while it stands by",
            registry=self.registry,
        )
        self.stopping = Gauge(
            "jid_stopping", "1 once the daemon began a graceful stop", registry=self.registry
        )
        # what finished jobs cost, by managed task (a bounded set of names)
        self.job_queue_wait = Histogram(
            "jid_job_queue_wait_seconds", "Finished jobs' time from submission to start",
            ["task"], registry=self.registry, buckets=DURATION_BUCKETS,
        )
        self.job_run_time = Histogram(
            "jid_job_run_seconds", "Finished jobs' time from start to end",
            ["task"], registry=self.registry, buckets=DURATION_BUCKETS,
        )
        self.job_peak_memory = Histogram(
            "jid_job_max_rss_bytes", "Finished jobs' peak resident memory",
            ["task"], registry=self.registry, buckets=MEMORY_BUCKETS,
        )
        self.job_cpu_efficiency = Histogram(
            "jid_job_cpu_efficiency", "Finished jobs' CPU time over run time x CPUs",
            ["task"], registry=self.registry, buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
        )

    @contextlib.asynccontextmanager
    async def backend_call(self, operation: str) -> AsyncIterator[None]:
        """Count and time one backend call."""
        start = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.backend_latency.labels(operation).observe(time.perf_counter() - start)
            self.backend_calls.labels(operation, outcome).inc()

    def set_job_counts(self, counts: dict[str, int]) -> None:
        """Publish the stored jobs per status (every status, zeros included)."""
        for status in JobStatus:
            self.jobs.labels(status.value).set(counts.get(status.value, 0))

    def observe_cost(self, task: str, cost: JobCost) -> None:
        """Count what one finished job of ``task`` cost (its unknown measures are left out)."""
        for histogram, value in (
            (self.job_queue_wait, cost.queue_wait_seconds),
            (self.job_run_time, cost.run_seconds),
            (self.job_peak_memory, cost.max_rss_bytes),
            (self.job_cpu_efficiency, cost.cpu_efficiency),
        ):
            if value is not None:
                histogram.labels(task).observe(value)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
