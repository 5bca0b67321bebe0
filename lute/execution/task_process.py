"""How the Executor starts its Task process: forked from itself, or a new interpreter.

Forking once the Executor has done its own imports saves the start of a second
interpreter and the Task machinery's imports. The forked process is set up the
way ``subprocess.Popen`` sets up a new interpreter for the Task: a session of
its own, stdin from ``/dev/null``, stdout and stderr on the relay pipe
(unbuffered, as with ``python -u``), the work dir as current directory, the
Executor's environment, default signal handlers, no file descriptor but the
channel's and the standard three, a fresh logging set-up, and the exit of a
Python process (``sys.exit`` codes, ``atexit`` functions, death by SIGINT on
an uncaught ``KeyboardInterrupt``).

A new interpreter (``python -u -m lute.execution.child FD``) is started
instead where a fork is not safe or not wanted: another thread is running (a
lock it holds would stay locked in the child), the platform has no
``os.fork``, or ``LUTE_TASK_PROCESS=spawn`` is set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Protocol

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


def fork_is_safe() -> bool:
    """Whether this process can fork a Task: ``os.fork`` exists and no other thread runs."""
    return (
        hasattr(os, "fork")
        and threading.active_count() == 1
        and threading.current_thread() is threading.main_thread()
    )


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


_BLOCKED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _fork(channel_fd: int, work_dir: Path, env: dict[str, str]) -> ForkedTask:
    for stream in (sys.stdout, sys.stderr):  # or the child would write their buffers again
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    read_fd, write_fd = os.pipe()
    null_fd = os.open(os.devnull, os.O_RDONLY)
    # A signal arriving before the child has its default handlers would run the
    # Executor's handler in the child; blocked, it waits for those defaults.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        pid = os.fork()
        if pid == 0:
            _become_task(channel_fd, write_fd, null_fd, work_dir, env, mask)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        os.close(null_fd)
    return ForkedTask(pid, os.fdopen(read_fd, "rb"))


def _become_task(
    channel_fd: int,
    write_fd: int,
    null_fd: int,
    work_dir: Path,
    env: dict[str, str],
    mask: set[signal.Signals],
) -> None:
    """The forked child: set up like a new interpreter, run the Task, never return."""
    import gc

    code = 1
    try:
        # objects inherited from the Executor are never finalized here: their
        # file descriptors are closed below and the numbers may be reused
        gc.freeze()
        os.setsid()
        os.dup2(null_fd, 0)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        _close_fds_except(channel_fd)
        os.chdir(work_dir)
        os.environ.clear()
        os.environ.update(env)
        _default_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _fresh_stdio()
        _fresh_logging()
        import atexit

        atexit._clear()
        from lute.execution import child

        sys.argv = [child.__file__ or "lute.execution.child", str(channel_fd)]
        code = child.main([str(channel_fd)])
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except KeyboardInterrupt:
        _print_exception()
        _flush_stdio()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 128 + signal.SIGINT
    except BaseException:
        _print_exception()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            _flush_stdio()
        finally:
            os._exit(code)


def _exit_status(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{value}\n")
    return 1


def _print_exception() -> None:
    import traceback

    with contextlib.suppress(OSError, ValueError):
        traceback.print_exc()


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()


def _close_fds_except(keep: int) -> None:
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, os.sysconf("SC_OPEN_MAX")))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _default_signals() -> None:
    """The handlers a new interpreter starts with; ignored signals stay ignored."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handler = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(sig, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)


def _fresh_stdio() -> None:
    """New standard streams on fds 0-2, unbuffered like ``python -u``."""
    import io

    def text(fd: int, mode: str, like: object, **kw: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        return io.TextIOWrapper(
            io.BufferedReader(raw) if mode == "r" else raw,  # type: ignore[arg-type]
            encoding=getattr(like, "encoding", None) or "utf-8",
            errors=getattr(like, "errors", None) or "strict",
            **kw,
        )

    sys.stdin = sys.__stdin__ = text(0, "r", sys.__stdin__)
    sys.stdout = sys.__stdout__ = text(1, "w", sys.__stdout__, write_through=True)
    sys.stderr = sys.__stderr__ = text(2, "w", sys.__stderr__, write_through=True)


def _fresh_logging() -> None:
    """No handler or level left over from the Executor's process."""
    import logging

    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.handlers.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
