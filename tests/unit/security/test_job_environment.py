"""A job's environment is built by allow-list: nothing of the daemon's own leaks."""

from __future__ import annotations

from jid_service.job_environment import SCHEDULER_PREFIXES, job_environment

DAEMON_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/jid",
    "LANG": "C.UTF-8",
    "JID_AUTH_SECRET": "s3cr3t" * 8,
    "JID_DB_URL": "postgresql://jid:pw@db/jid",
    "AWS_SECRET_ACCESS_KEY": "nope",
    "LUTE_PYTHON": "/opt/lute/bin/python",
    "SLURM_CONF": "/etc/slurm/slurm.conf",
    "SITE_SCRATCH": "/scratch",
}


def test_base_and_job_variables_only() -> None:
    env = job_environment(DAEMON_ENV, job_variables={"EXPERIMENT": "xpp1", "RUN_NUM": "7"})
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/home/jid", "LANG": "C.UTF-8",
                   "LUTE_PYTHON": "/opt/lute/bin/python", "EXPERIMENT": "xpp1", "RUN_NUM": "7"}


def test_site_passthrough_and_scheduler_prefixes() -> None:
    env = job_environment(DAEMON_ENV, passthrough=["SITE_SCRATCH"], prefixes=SCHEDULER_PREFIXES)
    assert env["SITE_SCRATCH"] == "/scratch"
    assert env["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_jid_variables_never_pass_even_when_listed_or_set_by_the_job() -> None:
    env = job_environment(DAEMON_ENV, passthrough=["JID_AUTH_SECRET", "jid_db_url"],
                          job_variables={"JID_AUTH_SECRET": "x", "Jid_Other": "y"},
                          prefixes=("J",))
    assert not [name for name in env if name.upper().startswith("JID_")]
