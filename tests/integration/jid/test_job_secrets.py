"""A real local job sees none of the daemon's secrets, in its log or its processes."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from tests.integration.jid.serve_process import (
    EXPERIMENT,
    ServeProcess,
    control_document,
    write_task_config,
)
from tests.support.job_secrets import (
    SITE_SECRET_VARIABLE,
    leaked,
    printenv_config,
    process_tree,
)


class LeakyEnvironmentJid(ServeProcess):
    """The daemon started the careless way: its secret and a site credential in its env."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["JID_AUTH_SECRET"] = self.secret
        env["JID_DB_URL"] = f"sqlite:///{self.directory / 'jid.db'}"
        env[SITE_SECRET_VARIABLE] = "site-credential-" + self.secret[:8]
        env["LUTE_SITE_NOTE"] = "passes"
        return env


def test_local_job_environment_holds_no_secret(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "cfg"
    base = write_task_config(cfg_dir, sleep_seconds=30)
    printenv = printenv_config(cfg_dir, base)
    with LeakyEnvironmentJid(tmp_path / "jid", [cfg_dir]) as jid:
        printed = jid.value(jid.post(f"/{EXPERIMENT}/start_job",
                                     control_document("BinaryTester", printenv)))
        sleeper = jid.value(jid.post(f"/{EXPERIMENT}/start_job",
                                     control_document("Sleeper", base)))
        [done] = jid.wait_final([printed])
        assert done["status"] == "DONE", done
        log = jid.value(jid.post(f"/{EXPERIMENT}/job_log_file", done))
        assert "PATH=" in log and "LUTE_SITE_NOTE=passes" in log, log
        assert "RUN_NUM=" in log and "EXPERIMENT=" in log
        assert jid.secret not in log and "JID_" not in log and SITE_SECRET_VARIABLE not in log
        # every process of the running job: runner, lute-run-task, the Task
        # (forked by the local backend's fork server, so found from the runner)
        pid_file = tmp_path / "jid" / "state" / "local" / "jobs" / sleeper["tool_id"] / "pid"
        for _ in range(150):
            if pid_file.exists():
                break
            time.sleep(0.2)
        runner = int(pid_file.read_text().split()[0])
        for pid, env in process_tree(runner, timeout=30).items():
            assert leaked(env, jid.secret) == [], pid
        # the daemon's own files are its account's alone
        state = tmp_path / "jid" / "state"
        for path in (state, state / "local", state / "local" / "jobs", state / "local" / "logs"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        for spec in (state / "local" / "jobs").glob("*/spec.json"):
            assert stat.S_IMODE(spec.stat().st_mode) & 0o077 == 0, spec
        for log_file in (state / "local" / "logs").iterdir():
            assert stat.S_IMODE(log_file.stat().st_mode) & 0o077 == 0, log_file
        db = tmp_path / "jid" / "jid.db"
        assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0
        jid.post(f"/{EXPERIMENT}/kill_job", sleeper)
