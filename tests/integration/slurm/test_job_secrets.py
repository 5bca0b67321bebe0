"""A real Slurm job sees none of the daemon's secrets: sbatch exports only the job's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.slurm.cluster import write_config
from tests.integration.slurm.jid_process import (
    EXPERIMENT,
    JidProcess,
    control_document,
    value,
    wait_statuses,
)
from tests.support.job_secrets import (
    SITE_SECRET_VARIABLE,
    job_processes,
    leaked,
    printenv_config,
)

pytestmark = pytest.mark.slurm


class LeakyEnvironmentJid(JidProcess):
    """The daemon started the careless way: its secret and a site credential in its env."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["JID_AUTH_SECRET"] = self.secret
        env[SITE_SECRET_VARIABLE] = "site-credential-" + self.secret[:8]
        env["SITE_SCRATCH"] = "/scratch/site"
        return env


def test_slurm_job_environment_holds_no_secret(slurm_cluster: None, tmp_path: Path) -> None:
    cfg_dir = tmp_path / "cfg"
    base = write_config(cfg_dir, sleep_seconds=30)
    printenv = printenv_config(cfg_dir, base)
    jid = LeakyEnvironmentJid(tmp_path / "jid", [cfg_dir],
                              extra_settings={"job_env_passthrough": ["SITE_SCRATCH"]})
    with jid:
        printed = value(jid.post(f"/{EXPERIMENT}/start_job",
                                 control_document("BinaryTester", printenv)))
        sleeper = value(jid.post(f"/{EXPERIMENT}/start_job", control_document("Sleeper", base)))
        done = wait_statuses(jid, [printed])[printed["_id"]]
        assert done["status"] == "DONE", done
        log = value(jid.post(f"/{EXPERIMENT}/job_log_file", done))
        assert "SITE_SCRATCH=/scratch/site" in log and "SLURM_JOB_ID=" in log, log
        assert jid.secret not in log and "JID_" not in log and SITE_SECRET_VARIABLE not in log
        marker = f"SLURM_JOB_ID={sleeper['tool_id']}"
        for pid, env in job_processes(marker, timeout=60).items():
            assert leaked(env, jid.secret) == [], pid
        jid.post(f"/{EXPERIMENT}/kill_job", sleeper)
