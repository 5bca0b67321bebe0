"""The Slurm side of ``benchmarks/scale.py``: its own held jobs, released in batches; their ends.

The benchmark's steps ask for ``--begin=now+<hold>``, so Slurm keeps their
jobs pending (reason ``BeginTime``) however many there are: that is what
waiting means. This module touches only jobs that are provably the
benchmark's: ids the JID lists for the benchmark's run (``arp_root_job_id``)
whose Slurm comment is ``jid:<_id>`` of that same stored job. It releases
them a few at a time (``scontrol update JobId=... StartTime=now``), at most
``concurrent`` released and unfinished at once, so the benchmark never
crowds out others' jobs on a shared cluster, and cancels what is left of
them at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import threading
import time

import httpx

_ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                    "PREEMPTED", "BOOT_FAIL", "DEADLINE"})


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


class OwnJobs:
    """The Slurm jobs of one benchmark run, found through the JID and checked by comment."""

    def __init__(self, jid_url: str, token: str, arp_root_job_id: str) -> None:
        self.http = httpx.Client(base_url=jid_url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
        self.root = arp_root_job_id
        self.by_tool_id: dict[str, str] = {}
        """Slurm job id -> the JID's ``_id``, for jobs proven ours."""

    def refresh(self) -> int:
        """Learn the run's submitted jobs; how many are known."""
        answer = self.http.get("/jid/ws/jobs", params={"arp_root_job_id": self.root,
                                                       "limit": 10000})
        answer.raise_for_status()
        candidates = {doc["tool_id"]: doc["_id"] for doc in answer.json()["value"]
                      if doc.get("tool_id") and doc["tool_id"] not in self.by_tool_id}
        if candidates:
            out = _run(["squeue", "-h", "-t", "all", "-j", ",".join(candidates),
                        "-O", "JobID:|,Comment:"])
            for line in out.splitlines():
                job, _, comment = line.partition("|")
                job, comment = job.strip(), comment.strip()
                if job in candidates and comment == f"jid:{candidates[job]}":
                    self.by_tool_id[job] = candidates[job]
        return len(self.by_tool_id)

    def states(self) -> dict[str, str]:
        """Slurm's state of each own job squeue still lists."""
        if not self.by_tool_id:
            return {}
        out = _run(["squeue", "-h", "-t", "all", "-j", ",".join(self.by_tool_id),
                    "-O", "JobID:|,State:|,Reason:"])
        states = {}
        for line in out.splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) >= 3 and fields[0] in self.by_tool_id:
                states[fields[0]] = fields[1] if fields[1] != "PENDING" else f"PENDING:{fields[2]}"
        return states

    def release(self, ids: list[str]) -> None:
        """Let these own jobs start now."""
        mine = [i for i in ids if i in self.by_tool_id]
        if mine:
            _run(["scontrol", "update", f"JobId={','.join(mine)}", "StartTime=now"])

    def cancel_all(self) -> None:
        """Cancel every own job that has not ended."""
        # the JID may have stopped already: then cancel the ones known
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            self.refresh()
        live = [i for i, state in self.states().items() if state not in _ENDED]
        if live:
            subprocess.run(["scancel", *live], capture_output=True, timeout=60, check=False)

    def ends(self) -> dict[str, float]:
        """When each own job ended, as accounting records it (whole seconds): tool id -> time."""
        if not self.by_tool_id:
            return {}
        out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(self.by_tool_id),
                    "--format=JobIDRaw,State,End"])
        ends = {}
        for line in out.splitlines():
            job, state, end = [*line.split("|"), "", "", ""][:3]
            if job in self.by_tool_id and state.split()[0] in _ENDED and end[:1].isdigit():
                ends[job] = dt.datetime.fromisoformat(end).timestamp()
        return ends


class Releaser(threading.Thread):
    """Releases the own jobs, at most ``concurrent`` released and unfinished at once."""

    def __init__(self, jobs: OwnJobs, concurrent: int, deadline: float,
                 count: int | None = None) -> None:
        super().__init__(daemon=True)
        self.jobs, self.concurrent, self.deadline = jobs, concurrent, deadline
        self.count = count
        """Release only this many (the first by job id); None: all."""
        self.stopped = threading.Event()
        self.released: dict[str, float] = {}
        self.error: Exception | None = None

    def run(self) -> None:
        """Release in order of job id until every job was released or the deadline."""
        try:
            waiting = sorted(self.jobs.by_tool_id, key=int)[:self.count]
            while waiting and not self.stopped.is_set() and time.monotonic() < self.deadline:
                states = self.jobs.states()
                busy = sum(1 for i in self.released
                           if states.get(i, "COMPLETED") not in _ENDED)
                room = self.concurrent - busy
                if room > 0:
                    batch, waiting = waiting[:room], waiting[room:]
                    self.jobs.release(batch)
                    now = time.time()
                    self.released.update({i: now for i in batch})
                self.stopped.wait(0.5)
            while not self.stopped.is_set() and time.monotonic() < self.deadline:
                states = self.jobs.states()
                if all(states.get(i, "COMPLETED") in _ENDED for i in self.released):
                    break
                self.stopped.wait(0.5)
        except Exception as exc:  # reported by the benchmark
            self.error = exc
