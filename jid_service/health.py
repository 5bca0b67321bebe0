"""``/healthz``: does the backend answer, does the store (a good answer is reused briefly)."""

from __future__ import annotations

import asyncio
import time

from jid_service.backends.base import BackendUnavailable
from jid_service.context import JobContext, ServicePart

HEALTH_CACHE_SECONDS = 2.0
"""``/healthz`` needs no token: while healthy, probe at most this often, whoever asks."""
PROBE_TIMEOUT = 10.0

Health = tuple[bool, bool, str | None]
"""(backend ok, store ok, detail)."""


class HealthCheck(ServicePart):
    """Probes the backend and the store, at most every HEALTH_CACHE_SECONDS while healthy."""

    def __init__(self, context: JobContext) -> None:
        super().__init__(context)
        self._cached: tuple[float, Health] | None = None
        self._lock = asyncio.Lock()

    async def health(self) -> Health:
        """(backend ok, store ok, detail), probed at most every HEALTH_CACHE_SECONDS."""
        async with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
                return cached[1]
            result = await self._probe()
            # only a good answer is reused: a recovery shows at the next probe
            self._cached = (time.monotonic(), result) if result[0] and result[1] else None
            return result

    async def _probe(self) -> Health:
        backend_ok, store_ok, detail = True, True, None
        try:
            async with self.metrics.backend_call("health"):
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await self.backend.health()
        except (BackendUnavailable, TimeoutError) as err:
            backend_ok, detail = False, f"backend: {str(err) or 'timed out'}"
        except Exception as err:  # a health probe reports, it does not fail
            backend_ok, detail = False, f"backend: {type(err).__name__}: {err}"
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await asyncio.to_thread(self.store.ping)
        except Exception as err:
            store_ok = False
            detail = (detail + "; " if detail else "") + f"store: {type(err).__name__}"
        return backend_ok, store_ok, detail
