"""The local backend's fork server: a pre-imported interpreter that starts jobs by forking.

A local job started the plain way is two new interpreters: the runner
(:mod:`jid_service.backends.local_runner`) and ``python -m lute.run_task``,
whose imports (pydantic, YAML, the config models, the Executor) are most of a
short step's time. This process does those imports once. For each job it
forks the runner, set up as a new interpreter would be
(:mod:`lute.execution.fresh_fork`): a session of its own, the job directory as
working directory, the job's umask, stdin from ``/dev/null``, stdout and
stderr on the job's log, and exactly the job environment the backend chose.
The runner then forks ``lute.run_task``'s ``main`` in its own process group
where it would have started ``python -m lute.run_task``. The server itself is
started with the job environment only, so no JID secret is in its memory.

It answers only its parent, over the socket whose descriptor is its one
argument, one JSON object per line::

    <- {"ready": true, "pid": N}                   once imported
    -> {"job": ID, "job_dir", "exit_file", "log_path", "args", "env", "umask"}
    <- {"started": ID, "pid": N} | {"refused": ID, "why": "..."}
    <- {"stale": ID}       a module it imported changed on disk: it exits, and
                           its parent starts a new one (an upgrade takes effect)
    <- {"exited": N, "code": C}                   the runner N ended

When the parent closes the socket the server exits; running jobs go on (their
runners record how they end, as after a JID restart).

Usage: ``python -m jid_service.backends.local_forkserver FD``
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from lute.execution.fresh_fork import fork_fresh

PRELOAD = (
    "pydantic",
    "yaml",
    "lute.run_task",
    "lute.io.config",
    "lute.io.db",
    "lute.managed_tasks",
    "lute.execution.executor",
    "lute.execution.task_process",
    "jid_service.backends.local_runner",
)
"""Imported once here; a module not listed (a Task, a facility package) is
imported afresh by every job."""

RUN_TASK_NAME = "lute-run-task"


class ForkedRunTask:
    """``lute.run_task.main(args)`` in a forked child, with the surface the runner uses.

    The child stays in the runner's process group, as ``subprocess.Popen``
    would leave it, so a cancel that signals the group reaches it.
    """

    def __init__(self, args: list[str]) -> None:
        from lute import run_task

        cwd = os.getcwd()

        def before() -> None:
            sys.argv = [RUN_TASK_NAME, *args]
            sys.path[0] = cwd  # what ``python -m`` puts first

        self.args = list(args)
        self.returncode: int | None = None
        self.pid = fork_fresh(lambda: run_task.main(list(args)), stdin_fd=0, stdout_fd=1,
                              stderr_fd=2, cwd=cwd, env=dict(os.environ),
                              new_session=False, before=before)

    def _reaped(self, flags: int) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped meanwhile by a poll from a signal handler
            return self.returncode
        if pid and self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        """The exit status if the child ended (-N when killed by signal N), else None."""
        return self.returncode if self.returncode is not None else self._reaped(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child ends; ``subprocess.TimeoutExpired`` after ``timeout``."""
        if timeout is None:
            while self.returncode is None:
                self._reaped(0)
            return self.returncode
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired([RUN_TASK_NAME, *self.args], timeout)
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the child has been reaped."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the child."""
        self.send_signal(signal.SIGKILL)


def _run_runner(exit_file: str, args: list[str]) -> int:
    from jid_service.backends import local_runner

    return local_runner.main([exit_file, "--", *args], start=ForkedRunTask)


def source_stamps() -> dict[str, int]:
    """Modification times of this project's imported modules (to notice an upgrade)."""
    stamps = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and name.split(".", 1)[0] in ("lute", "jid_service"):
            with contextlib.suppress(OSError):
                stamps[path] = os.stat(path).st_mtime_ns
    return stamps


def start_job(request: dict[str, Any]) -> int:
    """Fork the runner of one job; its pid."""
    exit_file, args = str(request["exit_file"]), [str(a) for a in request["args"]]
    env = {str(k): str(v) for k, v in dict(request["env"]).items()}
    log_fd = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        def before() -> None:
            sys.argv = ["local_runner", exit_file, "--", *args]

        return fork_fresh(lambda: _run_runner(exit_file, args), stdin_fd=null_fd,
                          stdout_fd=log_fd, stderr_fd=log_fd, cwd=str(request["job_dir"]),
                          env=env, umask=int(request["umask"]), before=before)
    finally:
        os.close(log_fd)
        os.close(null_fd)


def _lines(sock: socket.socket, buffer: bytearray) -> Iterator[dict[str, Any]] | None:
    data = sock.recv(1 << 16)
    if not data:
        return None
    buffer.extend(data)
    found = []
    while (end := buffer.find(b"\n")) >= 0:
        line, buffer[:] = bytes(buffer[:end]), buffer[end + 1:]
        if line.strip():
            found.append(json.loads(line))
    return iter(found)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def serve(sock: socket.socket) -> int:
    """Import, say ready, then start jobs until the parent closes the socket."""
    for name in PRELOAD:
        importlib.import_module(name)
    stamps = source_stamps()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select via the pipe
    _send(sock, {"ready": True, "pid": os.getpid()})
    buffer = bytearray()
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            _reap(sock)
        if sock not in readable:
            continue
        requests = _lines(sock, buffer)
        if requests is None:
            return 0
        for request in requests:
            job = request.get("job")
            if source_stamps() != stamps:
                _send(sock, {"stale": job})
                return 0
            try:
                pid = start_job(request)
            except (OSError, KeyError, TypeError, ValueError) as err:
                _send(sock, {"refused": job, "why": f"{type(err).__name__}: {err}"})
            else:
                _send(sock, {"started": job, "pid": pid})


def main(argv: list[str] | None = None) -> int:
    """Serve the parent on the socket descriptor given as the one argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: local_forkserver FD", file=sys.stderr)
        return 2
    with socket.socket(fileno=int(args[0])) as sock:
        try:
            return serve(sock)
        except (BrokenPipeError, ConnectionResetError):
            return 0  # the parent went away


if __name__ == "__main__":
    sys.exit(main())
