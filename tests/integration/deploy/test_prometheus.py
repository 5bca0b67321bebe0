"""The Prometheus material: rules and config pass promtool, and a real Prometheus scrapes a JID.

Needs Debian's ``prometheus`` package (``prometheus`` and ``promtool``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lute.launch.ports import free_port_block
from tests.integration.jid.serve_process import ServeProcess
from tests.unit.airflow.support import REPO_ROOT

pytestmark = pytest.mark.timeout(180)

MATERIAL = REPO_ROOT / "deploy" / "prometheus"
RULES = MATERIAL / "jid-alerts.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package prometheus)", pytrace=False)
    return path


def _promtool(*args: str, cwd: Path = MATERIAL) -> str:
    done = subprocess.run([_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_alert_rules_pass_promtool() -> None:
    out = _promtool("check", "rules", RULES.name)
    assert "SUCCESS: 6 rules found" in out


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    out = _promtool("test", "rules", "jid-alerts.test.yml")
    assert "SUCCESS" in out


def test_the_scrape_configuration_passes_promtool() -> None:
    _promtool("check", "config", "prometheus.yml")


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def _until(what: str, check, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def jid(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"])
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_a_real_prometheus_scrapes_the_jid_with_the_shipped_config(tmp_path: Path,
                                                                     jid: ServeProcess) -> None:
    config = yaml.safe_load((MATERIAL / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str(RULES)]
    (job,) = config["scrape_configs"]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{jid.port}"]
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port_block(1, exclude={jid.port})
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [_tool("prometheus"), f"--config.file={config_file}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        up = _until("the JID scraped", lambda: [
            r for r in _query(base, 'up{job="lute-jid"}') if r["value"][1] == "1"])
        assert up[0]["metric"]["site"] == "s3df"
        _until("a poll tick seen", lambda: [
            r for r in _query(base, "jid_backend_available") if r["value"][1] == "1"])
        ticks = _query(base, 'jid_poll_ticks_total{outcome="ok"}')
        assert ticks and float(ticks[0]["value"][1]) > 0
        rules = httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
        loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
        assert set(loaded) == {"JIDDown", "JIDBackendUnavailable", "JIDPollTicksFailing",
                               "JIDNoSuccessfulTick", "JIDJobsStuck", "JIDInternalErrors"}
        _until("every rule evaluated", lambda: all(
            r["health"] == "ok" for g in httpx.get(f"{base}/api/v1/rules", timeout=10)
            .json()["data"]["groups"] for r in g["rules"]))
        # the JID goes away: Prometheus sees it down (what JIDDown alerts on)
        jid.stop()
        _until("the JID seen down", lambda: [
            r for r in _query(base, 'up{job="lute-jid"}') if r["value"][1] == "0"])
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()
