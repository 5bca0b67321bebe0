"""How the Executor starts its Task process: forked from itself, or a new interpreter.

Forking once the Executor has done its own imports saves the start of a second
interpreter and the Task machinery's imports. The forked process is set up the
way ``subprocess.Popen`` sets up a new interpreter for the Task
(:mod:`lute.execution.fresh_fork`): a session of its own, stdin from
``/dev/null``, stdout and stderr on the relay pipe, the work dir as current
directory, the Executor's environment, no file descriptor but the channel's
and the standard three.

A new interpreter (``python -u -m lute.execution.child FD``) is started
instead where a fork is not safe or not wanted: another thread is running (a
lock it holds would stay locked in the child), the platform has no
``os.fork``, or ``LUTE_TASK_PROCESS=spawn`` is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Protocol

from lute.execution.fresh_fork import fork_fresh, fork_is_safe

START_ENV = "LUTE_TASK_PROCESS"
"""``fork`` (the default where it is safe) or ``spawn`` (always a new interpreter)."""
START_METHODS = ("fork", "spawn")


class TaskProcess(Protocol):
    """What the Executor needs of a running Task process (a subset of ``Popen``)."""

    pid: int
    stdout: IO[bytes] | None
    returncode: int | None

    def wait(self) -> int:
        """Block until the process ends; its exit status (-N when killed by signal N)."""
        ...


class ForkedTask:
    """A Task process forked from the Executor."""

    def __init__(self, pid: int, stdout: IO[bytes]):
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None

    def wait(self) -> int:
        """Reap the process; its exit status as ``Popen.returncode`` gives it."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def start_method(env: dict[str, str]) -> str:
    """``fork`` or ``spawn`` for a Task started with environment ``env``.

    ValueError names the variable when it holds something else.
    """
    wanted = env.get(START_ENV, "fork").strip().lower() or "fork"
    if wanted not in START_METHODS:
        raise ValueError(
            f"{START_ENV}={env[START_ENV]!r}: expected one of {', '.join(START_METHODS)}"
        )
    if wanted == "fork" and not fork_is_safe():
        return "spawn"
    return wanted


def start_task_process(
    channel_fd: int, work_dir: Path, env: dict[str, str], method: str
) -> TaskProcess:
    """Start the Task process, which reads its parameters from ``channel_fd``."""
    if method == "fork":
        return _fork(channel_fd, work_dir, env)
    argv = [sys.executable, "-u", "-m", "lute.execution.child", str(channel_fd)]
    return subprocess.Popen(
        argv,
        pass_fds=(channel_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=work_dir,
        env=env,
        start_new_session=True,
    )


def _fork(channel_fd: int, work_dir: Path, env: dict[str, str]) -> ForkedTask:
    read_fd, write_fd = os.pipe()
    null_fd = os.open(os.devnull, os.O_RDONLY)

    def run_child() -> int:
        from lute.execution import child

        sys.argv = [child.__file__ or "lute.execution.child", str(channel_fd)]
        return child.main([str(channel_fd)])

    try:
        pid = fork_fresh(run_child, stdin_fd=null_fd, stdout_fd=write_fd, stderr_fd=write_fd,
                         cwd=work_dir, env=env, keep_fds=(channel_fd,))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
        os.close(null_fd)
    return ForkedTask(pid, os.fdopen(read_fd, "rb"))
