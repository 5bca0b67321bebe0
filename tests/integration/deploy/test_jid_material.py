"""The JID's deployment files: the systemd unit passes systemd's own checks, the settings load.

``systemd-analyze verify`` reports every unknown or malformed directive;
``systemd-analyze security --offline`` scores the unit's sandboxing (lower is
stricter). Each example settings file loads as the JID loads its settings.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jid_service.settings import load_settings
from jid_service.signing_secrets import SecretError, read_secret_file
from tests.unit.airflow.support import REPO_ROOT

MATERIAL = REPO_ROOT / "deploy" / "jid"
UNIT = MATERIAL / "lute-jid.service"
MAX_EXPOSURE = 2.0
"""systemd rates 0-10; below 2 is its "OK" band for a network daemon."""


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)", pytrace=False)
    return tool


def _installed_unit(tmp_path: Path) -> Path:
    """The unit with its ExecStart pointing at this checkout's jid-service (verify checks it)."""
    text = UNIT.read_text()
    script = Path(sys.executable).parent / "jid-service"
    assert "/opt/lute/.venv/bin/jid-service" in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/lute/.venv/bin/jid-service", str(script)))
    return unit


def test_systemd_accepts_every_directive_of_the_unit(tmp_path: Path) -> None:
    done = subprocess.run([_systemd_analyze(), "verify", str(_installed_unit(tmp_path))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_unit_is_sandboxed(tmp_path: Path) -> None:
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", str(_installed_unit(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_the_unit_outwaits_a_graceful_stop() -> None:
    """systemd must not SIGKILL a JID still finishing its requests and submissions."""
    text = UNIT.read_text()
    shutdown = float(re.search(r"--shutdown-timeout (\d+)", text).group(1))
    stop = float(re.search(r"^TimeoutStopSec=(\d+)", text, re.M).group(1))
    from jid_service.service import SUBMISSION_DRAIN_SECONDS

    assert stop > shutdown + SUBMISSION_DRAIN_SECONDS
    assert re.search(r"^KillMode=process$", text, re.M)  # local jobs outlive a restart


@pytest.mark.parametrize("backend", ["local", "slurm", "firecrest"])
def test_each_example_settings_file_loads(backend: str) -> None:
    settings = load_settings(MATERIAL / f"settings-{backend}.yaml")
    assert settings.backend == backend
    assert settings.effective_db_url.startswith("postgresql+psycopg://")
    assert settings.auth_secret is None  # the secret never lives in the settings file


def test_the_secret_file_must_be_private(tmp_path: Path) -> None:
    """What the unit's credential gives the JID (0400) is accepted; a readable file is not."""
    secret = tmp_path / "auth_secret"
    secret.write_text("s" * 48 + "\n")
    secret.chmod(0o400)
    assert read_secret_file(secret) == ["s" * 48]
    secret.chmod(0o644)
    with pytest.raises(SecretError, match="make it 0600 or 0400"):
        read_secret_file(secret)
