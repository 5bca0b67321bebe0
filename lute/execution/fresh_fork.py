"""Fork a child process set up the way a new Python interpreter would start.

Forking a process that has already done its imports saves the start of an
interpreter and those imports. The child gets what ``subprocess.Popen`` gives
a new interpreter: its own session (unless told to stay in the parent's
process group), stdin, stdout and stderr on the descriptors given (the
streams unbuffered, as with ``python -u``), the working directory and
environment given, default signal handlers, no other file descriptor but
those kept, a fresh logging set-up, no ``atexit`` function of the parent's,
and the exit of a Python process: ``sys.exit`` codes, ``atexit`` functions
run, death by SIGINT on an uncaught ``KeyboardInterrupt``.

Only safe where no other thread runs (a lock it holds would stay locked in the
child): see :func:`fork_is_safe`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

_BLOCKED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def fork_is_safe() -> bool:
    """Whether this process can fork: ``os.fork`` exists and no other thread runs."""
    return (
        hasattr(os, "fork")
        and threading.active_count() == 1
        and threading.current_thread() is threading.main_thread()
    )


def fork_fresh(
    target: Callable[[], int | None],
    *,
    stdin_fd: int,
    stdout_fd: int,
    stderr_fd: int,
    cwd: Path | str,
    env: Mapping[str, str],
    keep_fds: Collection[int] = (),
    new_session: bool = True,
    umask: int | None = None,
    before: Callable[[], None] | None = None,
) -> int:
    """Fork a child that runs ``target()`` and exits with its status; the child's pid.

    ``before`` runs in the child once it is set up, just before ``target``
    (e.g. to set ``sys.argv``). The parent's descriptors are left as they are.
    """
    for stream in (sys.stdout, sys.stderr):  # or the child would write their buffers again
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    # A signal arriving before the child has its default handlers would run the
    # parent's handler in the child; blocked, it waits for those defaults.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        pid = os.fork()
        if pid == 0:
            _become_fresh(target, (stdin_fd, stdout_fd, stderr_fd), cwd, env, set(keep_fds),
                          new_session, umask, before, mask)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


def _become_fresh(
    target: Callable[[], int | None],
    stdio: tuple[int, int, int],
    cwd: Path | str,
    env: Mapping[str, str],
    keep: set[int],
    new_session: bool,
    umask: int | None,
    before: Callable[[], None] | None,
    mask: set[signal.Signals],
) -> None:
    """The forked child: set up like a new interpreter, run ``target``, never return."""
    import gc

    code = 1
    try:
        # objects inherited from the parent are never finalized here: their
        # file descriptors are closed below and the numbers may be reused
        gc.freeze()
        if new_session:
            os.setsid()
        for number, fd in enumerate(stdio):
            if fd != number:
                os.dup2(fd, number)
        _close_fds_except(keep)
        os.chdir(cwd)
        if umask is not None:
            os.umask(umask)
        os.environ.clear()
        os.environ.update(env)
        _default_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _fresh_stdio()
        _fresh_logging()
        import atexit

        atexit._clear()
        if before is not None:
            before()
        code = _exit_status(target())
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


def _close_fds_except(keep: set[int]) -> None:
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, os.sysconf("SC_OPEN_MAX")))
    for fd in fds:
        if fd > 2 and fd not in keep:
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
    """No handler or level left over from the parent process."""
    import logging

    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.handlers.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
