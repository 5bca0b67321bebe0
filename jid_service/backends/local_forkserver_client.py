"""The local backend's side of its fork server (:mod:`jid_service.backends.local_forkserver`).

:class:`ForkServer` starts the server on first use, hands it one job at a
time and gives back a :class:`ForkServerJob` for each, which the backend
watches like the ``Popen`` of a runner. Anything going wrong (the server does
not start, dies, or does not answer in time) is a :class:`ForkServerError`,
after which the backend starts that job the plain way; the runner's exclusive
claim of the job keeps a job from running twice even if a late fork happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVER_MODULE = "jid_service.backends.local_forkserver"
LOST = -1
"""The status of a job whose server died before telling how its runner ended
(the runner goes on; the backend reads the outcome from the job's files)."""


class ForkServerError(Exception):
    """The fork server could not start a job."""


class ForkServerJob:
    """A runner started by the fork server: ``poll``/``wait``/``returncode`` as ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = threading.Event()

    def _end(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        """The runner's exit status once the server saw it end, else None."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the runner ends (or ``timeout``); its exit status."""
        self._ended.wait(timeout)
        return self.returncode


class ForkServer:
    """One fork server process, started on first use and again after it stops.

    Args:
        env: the server's environment (the job environment without a job's
            own variables: nothing of the JID's secrets).
        timeout: seconds to wait for a new server to be ready (it imports
            what jobs need first, slow on a loaded host).
        answer_timeout: seconds to wait for a running server to answer a
            job request (a fork: milliseconds). A server that takes longer is
            replaced and the job started without it, so a hung server holds
            the backend's job starts up for this long at most.
    """

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0,
                 answer_timeout: float = 5.0) -> None:
        self.env = dict(env)
        self.timeout = timeout
        self.answer_timeout = answer_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._jobs: dict[int, ForkServerJob] = {}
        self._prestarted = False

    @property
    def pid(self) -> int | None:
        """The server's pid while one runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start_soon(self) -> None:
        """Start the server in the background (once), so the first job need not wait for it."""
        if self._prestarted:
            return
        self._prestarted = True

        def start() -> None:
            with self._lock:
                try:
                    self._ensure()
                except ForkServerError as err:
                    log.warning("local fork server did not start: %s", err)

        threading.Thread(target=start, daemon=True, name="local-forkserver-start").start()

    def start_job(self, *, job_id: str, job_dir: Path, exit_file: Path, log_path: Path,
                  args: list[str], env: Mapping[str, str], umask: int) -> ForkServerJob:
        """Fork the runner of one job (``lute.run_task`` with ``args``)."""
        request = {"job": job_id, "job_dir": str(job_dir), "exit_file": str(exit_file),
                   "log_path": str(log_path), "args": list(args), "env": dict(env),
                   "umask": umask}
        with self._lock:
            for _ in range(2):  # a stale server is replaced once
                reply = self._ask(request)
                if "stale" not in reply:
                    break
                log.info("local fork server: this project's code changed; starting a new one")
                self._stop()
            if "started" in reply:
                return self._jobs[int(reply["pid"])]
            raise ForkServerError(f"fork server refused job {job_id}: {reply.get('why', reply)}")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self._ensure()
        assert self._sock is not None
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as err:
            self._stop()
            raise ForkServerError(f"fork server is gone ({err})") from None
        return self._reply("its answer", self.answer_timeout)

    def _reply(self, what: str, timeout: float) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            self._stop(grace=0)  # hung: no point waiting for it to exit
            raise ForkServerError(f"fork server gave no {what} in {timeout:g} s") from None
        if reply is None:
            self._stop()
            raise ForkServerError("fork server stopped")
        return reply

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", SERVER_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=self.env, start_new_session=True)
        except OSError as err:
            ours.close()
            raise ForkServerError(f"cannot start the fork server: {err}") from None
        finally:
            theirs.close()
        self._sock = ours
        # each server has its own answers and jobs: an old one's end must not
        # touch the new one's
        self._replies, self._jobs = queue.Queue(), {}
        threading.Thread(target=self._read, args=(ours, self._replies, self._jobs),
                         daemon=True, name="local-forkserver").start()
        self._reply("sign of being ready", self.timeout)

    @staticmethod
    def _read(sock: socket.socket, replies: queue.Queue[dict[str, Any] | None],
              jobs: dict[int, ForkServerJob]) -> None:
        buffer = b""
        try:
            while data := sock.recv(1 << 16):
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    if "exited" in message:
                        job = jobs.pop(int(message["exited"]), None)
                        if job is not None:
                            job._end(int(message["code"]))
                        continue
                    if "started" in message:
                        # registered before the answer is handed on, so an
                        # early exit finds it
                        jobs[int(message["pid"])] = ForkServerJob(int(message["pid"]))
                    replies.put(message)
        except (OSError, ValueError):
            pass
        replies.put(None)
        for job in list(jobs.values()):  # their runners go on without the server
            job._end(LOST)
        jobs.clear()

    def _stop(self, grace: float = 5.0) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=grace)  # it exits once its socket closes
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        """Stop the server; running jobs go on."""
        with self._lock:
            self._stop()
