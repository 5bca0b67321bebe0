"""The Executor: runs one managed task's Task in a subprocess and records it.

Imports only the standard library at module level, so that
``lute.managed_tasks`` (which builds every Executor) stays cheap to import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lute.execution.outcome import EXIT_CONFIG, EXIT_OK, ChildState, Outcome, outcome_of

if TYPE_CHECKING:
    from lute.execution.task_process import TaskProcess
    from lute.io.config import TaskConfig
    from lute.io.db import ResultsDB
    from lute.io.models.base import TaskParameters

KILL_GRACE_S = 5.0
PAYLOAD_DIR = "lute_payloads"
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Executor:
    """Runs Task ``task_name`` for a managed task.

    ``update_environment`` adds variables for this Executor only: they are
    applied to parameter validation (``LUTE_<param>`` overrides) and to the
    Task subprocess, never to ``os.environ``.
    """

    def __init__(self, task_name: str):
        self.task_name = task_name
        self._env: dict[str, str] = {}
        self._out: IO[str] = sys.stdout
        self._prefix = task_name
        self._cancel_signal: int | None = None
        self._kill_at: float | None = None
        self._proc: TaskProcess | None = None
        self._out_lock = threading.Lock()

    def update_environment(self, env: dict[str, str]) -> None:
        """Add environment variables for this Executor's validation and subprocess."""
        self._env.update({str(k): str(v) for k, v in env.items()})

    @property
    def environment(self) -> dict[str, str]:
        """A copy of this Executor's own environment updates."""
        return dict(self._env)

    # ------------------------------------------------------------------ run
    def execute(
        self,
        config_path: str | Path,
        *,
        managed_name: str | None = None,
        debug: bool = False,
        skip_done: bool = False,
        out: IO[str] | None = None,
    ) -> Outcome:
        """Validate, run and record the Task; the Outcome's exit_code is the CLI's."""
        from lute.execution.task_process import start_method
        from lute.io.config import ConfigError, load_config
        from lute.io.db import ResultsDB
        from lute.io.validation import validate_parameters

        self._out = out or sys.stdout
        self._prefix = managed_name or self.task_name
        self._cancel_signal = None
        self._kill_at = None
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            return self._not_run(str(exc))
        with ResultsDB.for_work_dir(config.work_dir) as db:
            try:
                params = validate_parameters(config, self.task_name, env_updates=self._env, db=db)
            except ConfigError as exc:
                return self._not_run(str(exc))
            try:
                method = start_method({**os.environ, **self._env})
            except ValueError as exc:
                return self._not_run(str(exc))
            return self._run_recorded(config, db, params, method, debug=debug, skip_done=skip_done)

    def _run_recorded(
        self,
        config: TaskConfig,
        db: ResultsDB,
        params: TaskParameters,
        method: str,
        *,
        debug: bool,
        skip_done: bool,
    ) -> Outcome:
        from lute.io.db import params_hash

        header = config.header
        values = params.model_dump(mode="json")
        if debug:
            self.say(f"parameters of {self.task_name}: {values}")
        if skip_done:
            done = db.find_completed(
                self.task_name, header.experiment, header.run, params_hash(self.task_name, values)
            )
            if done is not None:
                self.say(
                    f"skipping: run {done.id} of {self.task_name} for {header.experiment} "
                    f"run {header.run} with the same parameters COMPLETED at {done.ended_at}"
                )
                self.say(f"recorded result: {done.summary}")
                return Outcome(
                    "COMPLETED",
                    EXIT_OK,
                    run_id=done.id,
                    summary=done.summary,
                    outputs=done.outputs,
                    payload_path=done.payload_path,
                    payload_bytes=done.payload_bytes,
                    skipped=True,
                )
        from lute import __version__
        from lute.execution.liveness import still_running

        host = socket.gethostname()
        for lost in db.mark_lost(host, still_running):
            self.say(f"record {lost} was RUNNING on {host} but its process is gone: now LOST")
        run_id = db.start_run(
            managed_task=self._prefix,
            task=self.task_name,
            experiment=header.experiment,
            run=header.run,
            params=values,
            config_path=str(config.path),
            hostname=host,
            pid=os.getpid(),
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
            lute_version=__version__,
        )
        from lute.io.provenance import record_run

        self.say(record_run(db, run_id, self._prefix, self.task_name))
        from lute.io.step_config import log_line

        self.say(log_line(config.path, self.task_name))
        self.say(
            f"starting Task {self.task_name} (record {run_id}, experiment "
            f"{header.experiment}, run {header.run})"
        )
        init = {
            "task": self.task_name,
            "managed_task": self._prefix,
            "params": values,
            "experiment": header.experiment,
            "run": header.run,
            "work_dir": str(config.work_dir),
            "run_id": run_id,
            "debug": debug,
            "config_path": str(config.path),
            "payload_prefix": str(
                config.work_dir / PAYLOAD_DIR / f"run{run_id:06d}_{self.task_name}"
            ),
        }
        outcome = self._run_child(init, config.work_dir, run_id, header.task_timeout, method)
        payload_rel = None
        if outcome.payload_path:
            payload_rel = os.path.relpath(outcome.payload_path, config.work_dir)
        db.finish_run(
            run_id,
            status=outcome.status,
            exit_code=outcome.exit_code,
            summary=outcome.summary,
            outputs=outcome.outputs,
            payload_path=payload_rel,
            payload_bytes=outcome.payload_bytes,
            error=outcome.error,
        )
        outcome.run_id = run_id
        outcome.payload_path = payload_rel
        if outcome.status == "COMPLETED":
            self.say(f"Task {self.task_name} COMPLETED; result: {outcome.summary}")
        else:
            self.say(f"Task {self.task_name} {outcome.status}: {outcome.error}")
        return outcome

    def _not_run(self, error: str) -> Outcome:
        self.say(f"configuration error: {error}")
        self.say("nothing was run or recorded")
        return Outcome("CONFIG_ERROR", EXIT_CONFIG, error=error)

    # ------------------------------------------------------------ logging
    def say(self, text: str) -> None:
        """Write executor lines to the log, prefixed like the Task's own."""
        with self._out_lock:
            for line in text.splitlines() or [""]:
                self._out.write(f"{self._prefix}: {line}\n")
            self._out.flush()

    # --------------------------------------------------------- subprocess
    def _run_child(
        self,
        init: dict[str, Any],
        work_dir: Path,
        run_id: int,
        timeout: float | None,
        method: str,
    ) -> Outcome:
        from lute.execution.ipc import Channel, socket_pair
        from lute.execution.task_process import start_task_process

        parent_sock, child_sock = socket_pair()
        env = os.environ.copy()
        env.update(self._env)
        env["PYTHONUNBUFFERED"] = "1"
        previous = self._install_handlers()
        try:
            try:
                proc = start_task_process(child_sock.fileno(), work_dir, env, method)
            finally:
                child_sock.close()
            self._proc = proc
            self.say(f"Task process {proc.pid} started")
            if self._cancel_signal is not None:
                self._signal_group(signal.SIGTERM)
            channel = Channel(parent_sock)
            state = ChildState()
            relay = threading.Thread(target=self._relay, args=(proc.stdout,), daemon=True)
            receiver = threading.Thread(
                target=self._receive, daemon=True, args=(channel, state, work_dir, run_id)
            )
            relay.start()
            receiver.start()
            try:
                channel.send(init)
            except OSError as exc:  # the child died before reading its parameters
                state.channel_error = f"could not send parameters: {exc}"
            timed_out = self._wait(proc, timeout)
            receiver.join(timeout=KILL_GRACE_S)
            relay.join(timeout=KILL_GRACE_S)
            if relay.is_alive() or receiver.is_alive():
                # grandchildren still hold the pipe or socket open
                self._signal_group(signal.SIGKILL)
                parent_sock.shutdown(socket.SHUT_RDWR)
                relay.join(timeout=1)
                receiver.join(timeout=1)
        finally:
            self._restore_handlers(previous)
            parent_sock.close()
            self._proc = None
        return outcome_of(proc.returncode, state, self._cancel_signal, timed_out, timeout)

    def _wait(self, proc: TaskProcess, timeout: float | None) -> bool:
        done = threading.Event()

        def reap() -> None:
            proc.wait()
            done.set()

        threading.Thread(target=reap, daemon=True).start()
        deadline = time.monotonic() + timeout if timeout else None
        timed_out = False
        # Event.wait is interrupted by signals, so the handlers run promptly;
        # the one-second cap only bounds how late a SIGKILL escalation fires.
        while not done.wait(timeout=self._next_wait(deadline)):
            now = time.monotonic()
            if deadline is not None and now >= deadline and not timed_out:
                timed_out = True
                self.say(f"task_timeout of {timeout:g} s reached: stopping the Task")
                self._signal_group(signal.SIGTERM)
                self._kill_at = now + KILL_GRACE_S
            if self._kill_at is not None and now >= self._kill_at:
                self.say("the Task did not stop after SIGTERM: sending SIGKILL")
                self._signal_group(signal.SIGKILL)
                self._kill_at = None
        # reap leftovers of the group (the Task's own children)
        self._signal_group(signal.SIGKILL)
        return timed_out

    def _next_wait(self, deadline: float | None) -> float:
        now = time.monotonic()
        wait = 1.0
        for t in (deadline, self._kill_at):
            if t is not None:
                wait = min(wait, max(t - now, 0.0))
        return max(wait, 0.01)

    def _signal_group(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _install_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in _FORWARDED:
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _restore_handlers(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._cancel_signal is None:
            self._cancel_signal = signum
            self._kill_at = time.monotonic() + KILL_GRACE_S
        self._signal_group(signal.SIGTERM)

    def _relay(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        prefix = f"{self._prefix}: ".encode()
        out = getattr(self._out, "buffer", None)
        for line in iter(stream.readline, b""):
            if not line.endswith(b"\n"):
                line += b"\n"
            with self._out_lock:
                if out is not None:
                    out.write(prefix + line)
                    out.flush()
                else:
                    self._out.write((prefix + line).decode(errors="replace"))
                    self._out.flush()
        stream.close()

    def _receive(self, channel: Any, state: ChildState, work_dir: Path, run_id: int) -> None:
        from lute.execution.ipc import ChannelClosedError, handed_over_payload, payload_path

        prefix = work_dir / PAYLOAD_DIR / f"run{run_id:06d}_{self.task_name}"

        def sink(message: dict[str, Any], _size: int) -> Path:
            return payload_path(prefix, message.get("payload_name"))

        while True:
            try:
                frame = channel.receive(blob_sink=sink)
            except ChannelClosedError as exc:
                if str(exc) != "channel closed":
                    state.channel_error = str(exc)
                return
            except (OSError, ValueError) as exc:
                state.channel_error = f"result channel error: {exc}"
                return
            kind = frame.message.get("type")
            state.messages.append(frame.message)
            if kind == "result":
                state.result = frame.message
                state.payload_path = frame.blob_path
                state.payload_bytes = frame.blob_bytes
                if "payload_file" in frame.message:
                    try:
                        state.payload_path, state.payload_bytes = handed_over_payload(
                            frame.message, prefix
                        )
                    except (OSError, ValueError) as exc:
                        state.channel_error = f"result payload rejected: {exc}"
            elif kind == "error":
                state.error = frame.message
