"""The embedded dev stack: Airflow 3 and the JID on loopback, started and stopped as one.

``Stack`` starts Airflow (``db migrate``, then api-server, scheduler,
dag-processor, triggerer; SQLite, or the PostgreSQL database of
``metadata_db_url``; LocalExecutor; DAGs from ``workflows/airflow``; more
triggerers with ``triggerers``)
and the JID (``local``, ``slurm`` or ``firecrest`` backend; SQLite store;
generated secret and token), waits until all are healthy
(:mod:`lute.launch.readiness`), and writes the launcher's user config
(``<state dir>/launch.yaml``, mode 0600). ``stop`` stops exactly the processes
it recorded; ``restart(name)`` restarts one component
(:mod:`lute.launch.restart`). ``with Stack(state_dir, 28080, 28000) as s:``
starts and stops.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from jid_service.auth import issue_token
from lute.launch.kerberos import cache_dir
from lute.launch.ports import port_is_free
from lute.launch.processes import (
    ProcessRecord,
    log_tail,
    read_records,
    stop_records,
)
from lute.launch.readiness import StackError, Startup, wait_dags, wait_healthy
from lute.launch.restart import restart_component, spawn_restartable
from lute.launch.triggerers import more_triggerer_ports, start_more_triggerers
from lute.launch.userconfig import Profile, write_config

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".dev"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
JID_TOKEN_TTL_S = 7 * 24 * 3600
"""How long the dev stack's JID token lasts (a week: dev only)."""


def _bin(name: str) -> str:
    """An executable of the running interpreter's environment (the venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Stack:
    """Airflow 3 + JID on loopback, each process in its own session, pids recorded.

    ``state_dir`` holds everything: ``airflow/`` (AIRFLOW_HOME, SQLite DB,
    logs), ``jid/`` (the JID's state and DB), ``logs/`` (one log per process),
    ``pids/``, ``stack.json`` and ``launch.yaml`` (the launcher's user config).
    Secrets are generated once per state dir and kept (0600), so a restarted
    stack keeps its credentials.
    """

    def __init__(
        self,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        airflow_port: int = 28080,
        jid_port: int = 28000,
        backend: str = "local",
        *,
        dags_folder: Path | str | None = None,
        extra_env: Mapping[str, str] | None = None,
        jid_env: Mapping[str, str] | None = None,
        parallelism: int = 4,
        dag_refresh_s: int = 5,
        allowed_config_roots: list[str] | None = None,
        wait_for_dags: list[str] | None = None,
        timeout: float = 180.0,
        metadata_db_url: str | None = None,
        triggerers: int = 1,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.airflow_port = airflow_port
        self.jid_port = jid_port
        if backend not in ("local", "slurm", "firecrest"):
            raise ValueError(f"unknown JID backend {backend!r}")
        self.backend = backend
        self.dags_folder = Path(dags_folder or REPO_ROOT / "workflows" / "airflow").resolve()
        self.extra_env = dict(extra_env or {})
        self.jid_env = dict(jid_env or {})
        self.parallelism = parallelism
        self.dag_refresh_s = dag_refresh_s
        self.allowed_config_roots = allowed_config_roots or [str(REPO_ROOT), "/tmp"]  # noqa: S108
        self.timeout = timeout
        self.wait_for_dags = list(wait_for_dags or [])
        self.metadata_db_url = metadata_db_url
        """Airflow's metadata database (``postgresql+psycopg://...``); None: SQLite."""
        if triggerers < 1:
            raise ValueError("a stack needs at least one triggerer")
        self.triggerers = triggerers
        self.triggerer_jobs: dict[str, int] = {}
        """Each triggerer's Airflow job id (``trigger.triggerer_id``), by process name."""
        self._procs: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ paths
    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of this stack."""
        return self.state_dir / "airflow"

    @property
    def pid_dir(self) -> Path:
        """Where the pid records live."""
        return self.state_dir / "pids"

    @property
    def log_dir(self) -> Path:
        """One log file per process."""
        return self.state_dir / "logs"

    @property
    def launch_config_path(self) -> Path:
        """The launcher's user config written by :meth:`start`."""
        return self.state_dir / "launch.yaml"

    @property
    def airflow_url(self) -> str:
        """Base URL of the api-server."""
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def jid_url(self) -> str:
        """Base URL of the JID (without the ``/jid/ws`` path)."""
        return f"http://127.0.0.1:{self.jid_port}"

    # ---------------------------------------------------------------- secrets
    def _secrets(self) -> dict[str, str]:
        path = self.state_dir / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {
            "airflow_password": secrets.token_urlsafe(18),
            "airflow_jwt_secret": secrets.token_urlsafe(32),
            "airflow_secret_key": secrets.token_urlsafe(32),
            "jid_secret": secrets.token_urlsafe(32),
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(values, fh)
        return values

    @property
    def password(self) -> str:
        """The Airflow admin user's password."""
        return self._secrets()["airflow_password"]

    @property
    def username(self) -> str:
        """The Airflow admin user's name."""
        return ADMIN_USER

    @property
    def jid_token(self) -> str:
        """A JID token for the launcher and Airflow (long-lived, dev only)."""
        tok_path = self.state_dir / "jid_token"
        if tok_path.exists():
            return tok_path.read_text().strip()
        token = issue_token(
            self._secrets()["jid_secret"], ADMIN_USER, "*", JID_TOKEN_TTL_S, admin=True
        )
        fd = os.open(tok_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        return token

    # ---------------------------------------------------------------- env
    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def airflow_env(self) -> dict[str, str]:
        """Environment for every Airflow component."""
        sec = self._secrets()
        home = self.airflow_home
        env = self._base_env()
        conn = {
            "conn_type": "jid",
            "host": "127.0.0.1",
            "port": self.jid_port,
            "schema": "http",
            "password": self.jid_token,
        }
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_db_url
                or f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.airflow_port),
                "AIRFLOW__API__BASE_URL": self.airflow_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": sec["airflow_secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": sec["airflow_jwt_secret"],
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                # A worker's task supervisor waits in select() for up to this
                # many seconds; when it misses the task process's exit (seen
                # after a deferral), the worker slot stays taken that long, so
                # steps queued behind it start seconds late. 1 s bounds that
                # stall at the price of one heartbeat a second per running
                # task, which a laptop stack can afford (default 5).
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(self.dag_refresh_s),
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(self.dag_refresh_s),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.airflow_port + 1),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.airflow_port + 2),
                "AIRFLOW_CONN_JID_DEFAULT": json.dumps(conn),
            }
        )
        if self.metadata_db_url:  # a driver that also does asyncio: postgresql+psycopg
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = self.metadata_db_url
        else:
            for key in ("SQL_ALCHEMY_CONNECT_ARGS", "SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
                env[f"AIRFLOW__DATABASE__{key}"] = "lute.launch.airflow_sqlite.CONNECT_ARGS"
        env.update(self.extra_env)
        return env

    def jid_environment(self) -> dict[str, str]:
        """Environment of the JID process."""
        jid_dir = self.state_dir / "jid"
        env = self._base_env()
        env.update(
            {
                "JID_BACKEND": self.backend,
                "JID_AUTH_SECRET": self._secrets()["jid_secret"],
                "JID_DB_URL": f"sqlite:///{jid_dir / 'jid.db'}",
                "JID_STATE_DIR": str(jid_dir),
                "JID_ALLOWED_CONFIG_ROOTS": json.dumps(self.allowed_config_roots),
                # the launcher's private Kerberos cache copies (LUTE's -K) are
                # accepted from where it writes them
                "JID_KERBEROS_CACHE_ROOTS": json.dumps([str(cache_dir(os.environ))]),
                "JID_LOCAL_MAX_PARALLEL": "4",
                # local jobs are cheap to poll (an exit-code file each): a short
                # tick keeps each step's completion from waiting up to a second
                "JID_POLL_INTERVAL": "0.25",
            }
        )
        env.update(self.extra_env)
        env.update(self.jid_env)
        return env

    def jid_argv(self) -> list[str]:
        """The JID's command line."""
        return [_bin("jid-service"), "serve", "--host", "127.0.0.1", "--port", str(self.jid_port)]

    # ---------------------------------------------------------------- control
    def _write_passwords(self) -> None:
        # Pre-seed SimpleAuthManager's password file so the password is ours
        # (generated per stack) instead of one printed into a log.
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        path = self.airflow_home / "passwords.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({ADMIN_USER: self.password}, fh)

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> ProcessRecord:
        rec, proc = spawn_restartable(
            self.state_dir, name, argv, env, log_dir=self.log_dir, pid_dir=self.pid_dir
        )
        self._procs.append(proc)
        return rec

    def _reap(self) -> None:
        for proc in self._procs:
            proc.poll()

    def restart(self, component: str, timeout: float = 90.0) -> ProcessRecord:
        """Restart one component as it was started and wait until it is ready."""
        rec, proc = restart_component(self.state_dir, component, timeout=timeout, reap=self._reap)
        self._procs.append(proc)
        return rec

    def running(self) -> list[ProcessRecord]:
        """Records of this stack's processes that are still running."""
        return [r for r in read_records(self.pid_dir) if r.is_alive()]

    def start(self) -> Stack:
        """Start every component and wait until all are healthy (or raise StackError)."""
        if self.running():
            raise StackError(
                f"a stack already runs from {self.state_dir} "
                f"({', '.join(r.name for r in self.running())}); stop it first"
            )
        self._check_ports()
        for d in (self.state_dir, self.log_dir, self.pid_dir, self.state_dir / "jid"):
            d.mkdir(parents=True, exist_ok=True)
        self._write_passwords()
        t0 = time.monotonic()
        try:
            self._migrate()
            env = self.airflow_env()
            airflow = _bin("airflow")
            jid = self._spawn("jid", self.jid_argv(), self.jid_environment())
            recs = [jid]
            for comp in AIRFLOW_COMPONENTS:
                argv = [airflow, comp]
                if comp == "api-server":
                    argv += ["--host", "127.0.0.1", "--port", str(self.airflow_port)]
                recs.append(self._spawn(comp, argv, env))
            startup = Startup(recs, t0, self.timeout, self._reap)
            wait_healthy(startup, self.airflow_url, self.jid_url)
            if self.triggerers > 1:
                argv = [airflow, "triggerer"]
                self.triggerer_jobs = start_more_triggerers(self, startup, recs, argv, env)
            wait_dags(
                startup,
                self.airflow_url,
                self.username,
                self.password,
                self.wait_for_dags,
                self.log_dir / "dag-processor.log",
            )
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def ports(self) -> dict[str, int]:
        """Every loopback port this stack listens on, by what listens there."""
        return {
            "Airflow API server (--airflow-port)": self.airflow_port,
            "Airflow worker log server (--airflow-port + 1)": self.airflow_port + 1,
            "Airflow triggerer log server (--airflow-port + 2)": self.airflow_port + 2,
            **more_triggerer_ports(self.airflow_port, self.triggerers),
            "JID (--jid-port)": self.jid_port,
        }

    def _check_ports(self) -> None:
        # Checked before anything starts: a component that finds its port
        # taken would otherwise die after the others are up.
        ports = self.ports()
        if len(set(ports.values())) < len(ports):
            raise StackError(
                f"the JID port {self.jid_port} overlaps the Airflow ports "
                f"{self.airflow_port}-{self.airflow_port + 2}; choose another --jid-port"
            )
        taken = [f"{port} ({what})" for what, port in ports.items() if not port_is_free(port)]
        if taken:
            raise StackError(
                f"port(s) already in use on 127.0.0.1: {', '.join(taken)}; "
                "stop what holds them or choose other ports"
            )

    def _migrate(self) -> None:
        log = self.log_dir / "db-migrate.log"
        with open(log, "ab") as fh:
            try:
                rc = subprocess.run(
                    [_bin("airflow"), "db", "migrate"],
                    env=self.airflow_env(),
                    cwd=self.state_dir,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    timeout=self.timeout,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0:
            raise StackError(f"`airflow db migrate` failed (rc {rc}):\n{log_tail(log)}")

    def _write_state(self) -> None:
        prof = Profile(
            airflow_url=self.airflow_url,
            username=self.username,
            password=self.password,
            jid_url=self.jid_url,
            jid_token=self.jid_token,
        )
        write_config(self.launch_config_path, {"default": prof, "test": prof})
        state = {
            "airflow_url": self.airflow_url,
            "jid_url": self.jid_url,
            "backend": self.backend,
            "dags_folder": str(self.dags_folder),
            "launch_config": str(self.launch_config_path),
            "triggerer_jobs": self.triggerer_jobs,
            "started": dt.datetime.now(dt.UTC).isoformat(),
        }
        (self.state_dir / "stack.json").write_text(json.dumps(state, indent=2) + "\n")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop exactly the recorded processes (SIGTERM, SIGKILL after ``timeout``)."""
        stop_records(read_records(self.pid_dir), self.pid_dir, timeout=timeout, reap=self._reap)
        self._procs = [p for p in self._procs if p.poll() is None]
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "stack.json").unlink()

    def launcher_env(self) -> dict[str, str]:
        """Environment variables that point the launcher at this stack."""
        return {"LUTE_LAUNCH_CONFIG": str(self.launch_config_path)}

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
