"""One backend call as the JID makes it: counted, timed, and bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from jid_service.backends.base import BackendUnavailable
from jid_service.metrics import Metrics

R = TypeVar("R")

BACKEND_TIMEOUT = 120.0
"""Bound of one backend call (backends have tighter timeouts of their own)."""


async def call_backend(metrics: Metrics, operation: str, call: Awaitable[R],
                       timeout: float = BACKEND_TIMEOUT) -> R:
    """Await one backend call, counted and timed; a hung call counts as unavailable."""
    async with metrics.backend_call(operation):
        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            raise BackendUnavailable(
                f"backend {operation} took longer than {timeout:g} s", retry_after=10
            ) from None
