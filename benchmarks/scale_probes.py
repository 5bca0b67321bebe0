"""What ``benchmarks/scale.py`` samples: process CPU and RSS from ``/proc``, the JID's ``/metrics``.

Imported by ``scale.py`` (it runs as a script, so this directory is on its path).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import httpx

_TICK = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^([a-z_]+)\{([^}]*)\}\s+([0-9.e+]+)$", re.M)
_LABEL = re.compile(r'([a-z_]+)="([^"]*)"')
OWN_ROUTES = ("/metrics", "/jid/ws/jobs")
"""Routes the benchmark itself reads: not the triggerer's requests."""


def children(pid: int) -> list[int]:
    """``pid`` and all its descendants now."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, with that of its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process alone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def jid_counts(text: str) -> dict[str, float]:
    """The JID's counters this benchmark reads, summed over their other labels.

    Keys: ``req:<route>`` (requests by route template), ``backend:<operation>``
    (backend calls), ``ticks`` (poller ticks).
    """
    counts: dict[str, float] = {}
    for family, labels, value in _SAMPLE.findall(text):
        found = dict(_LABEL.findall(labels))
        if family == "jid_request_seconds_count":
            key = "req:" + found.get("route", "?")
        elif family == "jid_backend_calls_total":
            key = "backend:" + found.get("operation", "?")
        elif family == "jid_poll_ticks_total":
            key = "ticks"
        else:
            continue
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


class Sampler(threading.Thread):
    """Samples CPU, RSS and the JID's counters every second until stopped."""

    def __init__(self, triggerer: int, jid: int, jid_url: str):
        super().__init__(daemon=True)
        self.triggerer, self.jid = triggerer, jid
        self.http = httpx.Client(base_url=jid_url, timeout=10)
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def sample(self) -> dict:
        """One sample now."""
        tree = children(self.triggerer)
        try:
            counts = jid_counts(self.http.get("/metrics").text)
        except httpx.HTTPError:
            counts = self.samples[-1]["counts"] if self.samples else {}
        return {
            "t": time.monotonic(),
            "load1": os.getloadavg()[0],
            "triggerer_cpu": sum(cpu_seconds(p) for p in tree),
            "triggerer_rss": rss_bytes(tree),
            "jid_cpu": own_cpu_seconds(self.jid),
            "counts": counts,
        }

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stopped.is_set():
            self.samples.append(self.sample())
            self.stopped.wait(1.0)
        self.samples.append(self.sample())


def _delta(first: dict, last: dict, keep) -> float:
    return sum(v for k, v in last["counts"].items() if keep(k)) - sum(
        v for k, v in first["counts"].items() if keep(k)
    )


def window(samples: list[dict], start: float, end: float) -> dict:
    """CPU % of a core, JID requests per second, backend calls per tick in [start, end].

    Also the triggerer's RSS at the window's end: what the waiting holds once
    the start-up's garbage could be collected, where the peak shows the start.
    """
    inside = [s for s in samples if start <= s["t"] <= end]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    span = last["t"] - first["t"]
    requests = _delta(first, last, lambda k: k.startswith("req:") and k[4:] not in OWN_ROUTES)
    waits = _delta(first, last, lambda k: k.startswith("req:") and k.endswith("/wait"))
    ticks = _delta(first, last, lambda k: k == "ticks")
    statuses = _delta(first, last, lambda k: k == "backend:statuses")
    triggerer = last["triggerer_cpu"] - first["triggerer_cpu"]
    loads = [s["load1"] for s in inside]
    return {
        "seconds": round(span, 1),
        "triggerer_cpu_pct": round(100 * triggerer / span, 2),
        "jid_cpu_pct": round(100 * (last["jid_cpu"] - first["jid_cpu"]) / span, 2),
        "jid_requests_per_s": round(requests / span, 2),
        "jid_wait_requests_per_s": round(waits / span, 2),
        "poll_ticks_per_s": round(ticks / span, 2),
        "statuses_calls_per_tick": round(statuses / ticks, 2) if ticks else None,
        "load1_min_max": [round(min(loads), 2), round(max(loads), 2)],
        "triggerer_rss_mb_at_end": round(last["triggerer_rss"] / 1e6, 1),
    }


def peak_rss_mb(samples: list[dict], start: float, end: float) -> float:
    """The triggerer's peak RSS in [start, end], MB."""
    return round(max((s["triggerer_rss"] for s in samples if start <= s["t"] <= end),
                     default=0) / 1e6, 1)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1), nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 3)


def spread(values: list[float]) -> dict:
    """n, p50, p99 and max of ``values``."""
    return {"n": len(values), "p50_s": percentile(values, 0.5), "p99_s": percentile(values, 0.99),
            "max_s": round(max(values), 3) if values else None}
