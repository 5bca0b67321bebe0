"""Loopback ports for local servers: is a port free, and which ports to pick.

A server given a fixed port inside the kernel's ephemeral range can find it
taken by the local end of some unrelated outgoing connection, so picked
ports come from below that range, and every pick is checked by binding.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 20000
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_START = 32768


def ephemeral_start() -> int:
    """First port the kernel hands out to outgoing connections."""
    try:
        return int(_EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn sets, so a port left in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def busy_ports(ports: Iterable[int], host: str = HOST) -> list[int]:
    """The ports of ``ports`` that a server could not bind now."""
    return [p for p in ports if not port_is_free(p, host)]


def free_port_block(count: int = 1, exclude: Iterable[int] = (), host: str = HOST) -> int:
    """A port P such that P .. P+count-1 are all free, below the ephemeral range.

    The search starts at a random place so that concurrent callers (two test
    sessions, a benchmark next to a dev stack) rarely probe the same ports.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    excluded = set(exclude)
    low, high = LOWEST, ephemeral_start()
    span = high - low - count + 1
    if span < 1:
        raise RuntimeError(f"no {count} consecutive ports between {low} and {high - 1}")
    first = random.randrange(span)  # noqa: S311 - spreading probes, not a secret
    for i in range(span):
        base = low + (first + i) % span
        block = range(base, base + count)
        if excluded.intersection(block):
            continue
        if not busy_ports(block, host):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on {host} in {low}-{high - 1}")
