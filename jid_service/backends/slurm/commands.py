"""Run Slurm's client commands: argv only, never a shell, always with a timeout.

On a timeout the whole process group is killed, because ``submit_slurm.sh``
starts ``sbatch`` as a child. Error text is classified here: "the controller
cannot be reached or answer" reads the same from every client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jid_service.backends.base import BackendError, BackendUnavailable

# stderr of Slurm clients when the controller cannot be reached or answer in time
_UNAVAILABLE_PATTERNS = (
    "unable to contact slurm controller",
    "connection refused",
    "socket timed out",
    "timed out",
    "connect failure",
    "zero bytes were transmitted",
    "temporarily unable to accept job",
    "transport endpoint is not connected",
    "communication connection failure",
    "slurmctld(primary) at",  # scontrol ping: "... is DOWN"
    "unable to establish controller",
    "no route to host",
)


@dataclass(frozen=True)
class CommandResult:
    """What a finished scheduler command printed, and its exit status."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The command's error text (stderr, else stdout), stripped, for error messages."""
        return (self.stderr.strip() or self.stdout.strip())[-2000:]


def is_unavailable_message(text: str) -> bool:
    """True when a Slurm client's error text means the controller is unreachable or frozen."""
    lowered = text.lower()
    return any(p in lowered for p in _UNAVAILABLE_PATTERNS)


async def run_command(
    argv: Sequence[str],
    timeout: float,
    *,
    env: Mapping[str, str],
    cwd: Path | None,
    retry_after: float,
) -> CommandResult:
    """Run one command; BackendUnavailable on timeout, BackendError when it cannot start."""
    name = Path(argv[0]).name
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # its own group, so a timeout kills sbatch too
        )
    except FileNotFoundError as exc:
        raise BackendError(f"{name}: command not found ({exc.filename})") from exc
    except PermissionError as exc:
        raise BackendError(f"{name}: not executable ({exc.filename})") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.shield(proc.wait())
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise BackendUnavailable(
            f"{name} did not answer within {timeout:g} s (Slurm controller unreachable?)",
            retry_after=retry_after,
        ) from exc
    return CommandResult(
        tuple(argv),
        proc.returncode if proc.returncode is not None else -1,
        out.decode("utf-8", errors="replace"),
        err.decode("utf-8", errors="replace"),
    )
