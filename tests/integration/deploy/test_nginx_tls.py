"""The shipped nginx site in front of a real JID: TLS with a CA of the test's own, --root-path.

The operator's blocking JID client, given the site's CA bundle through
``SSL_CERT_FILE``, submits and follows a job through the proxy; a client that
does not trust the CA is refused. A ``jid`` connection whose extra names the
CA bundle serves the hook's blocking client, the trigger (asyncio, the
endpoint resolved through ``JIDHook.aget_endpoint``) and the launcher's
client; without it each fails at once naming the certificate problem. Needs
Debian's ``nginx``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from lute.airflow.client import JIDClient, JIDTLSError
from lute.airflow.hook import JIDHook
from lute.airflow.trigger import JIDJobTrigger
from lute.launch.exits import LaunchError
from lute.launch.output import Output
from lute.launch.ports import free_port_block
from lute.launch.preflight import connect_jid
from lute.launch.userconfig import Profile
from tests.integration.airflow.conftest import JIDProcess, run_dag_test
from tests.integration.jid.serve_process import (
    EXPERIMENT,
    ServeProcess,
    control_document,
    write_task_config,
)
from tests.support.jid_server import jid_service_argv
from tests.unit.airflow.support import REPO_ROOT, run_conf, write_test_config

from .tls_material import make_tls_files

pytestmark = pytest.mark.timeout(180)

SITE = REPO_ROOT / "deploy" / "nginx" / "lute-jid.conf"
PREFIX = "/arps3dfjid"


def _render_site(jid_port: int, https_port: int, http_port: int, cert: Path, key: Path,
                 logs: Path) -> str:
    """The shipped site with this test's ports, certificate and log files."""
    text = SITE.read_text()
    replacements = {
        "server 127.0.0.1:28000;": f"server 127.0.0.1:{jid_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "/etc/ssl/certs/jid.example.org.pem": str(cert),
        "/etc/ssl/private/jid.example.org.key": str(key),
        "/var/log/nginx/": f"{logs}/",
    }
    for old, new in replacements.items():
        assert old in text, f"the shipped site no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def jid(tmp_path: Path) -> Iterator[ServeProcess]:
    """A JID started with --root-path, as the systemd unit starts it."""
    server = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"])
    log = (tmp_path / "jid.log").open("wb")
    server.proc = subprocess.Popen(
        [*jid_service_argv(), "serve", "--host", "127.0.0.1", "--port", str(server.port),
         "--root-path", PREFIX],
        stdout=log, stderr=subprocess.STDOUT, env=server.env(), start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200:
                break
        assert server.proc.poll() is None, (tmp_path / "jid.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the JID did not start"
        time.sleep(0.1)
    try:
        yield server
    finally:
        server.stop()
        log.close()


@dataclass(frozen=True)
class Proxy:
    """The running nginx: its https URL of the JID (prefix included), plain http port, CA."""

    base: str
    http_port: int
    ca: Path


@pytest.fixture
def proxy(tmp_path: Path, jid: ServeProcess) -> Iterator[Proxy]:
    """nginx with the shipped site in front of ``jid``."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed (Debian package nginx)", pytrace=False)
    tls = make_tls_files(tmp_path / "tls")
    https_port = free_port_block(2, exclude={jid.port})
    work = tmp_path / "nginx"
    for sub in ("logs", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "site.conf").write_text(_render_site(jid.port, https_port, https_port + 1,
                                                 tls.cert, tls.key, work / "logs"))
    temp = work / "tmp"
    (work / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/logs/error.log;
{"user root root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    access_log {work}/logs/access.log;
    include {work}/site.conf;
}}
""")
    check = subprocess.run([nginx, "-t", "-p", str(work), "-c", str(work / "nginx.conf")],
                           capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-p", str(work), "-c", str(work / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"https://127.0.0.1:{https_port}{PREFIX}"
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", verify=ssl.create_default_context(
                    cafile=str(tls.ca)), timeout=5).status_code == 200:
                break
        assert proc.poll() is None, (work / "logs" / "error.log").read_text()
        assert time.monotonic() < deadline, (work / "logs" / "error.log").read_text()
        time.sleep(0.1)
    try:
        yield Proxy(base, https_port + 1, tls.ca)
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # nginx's fast shutdown; started by this fixture
        proc.wait(timeout=30)


def test_a_job_through_nginx_and_tls(tmp_path: Path, jid: ServeProcess, proxy: Proxy,
                                     monkeypatch) -> None:
    base = proxy.base
    # without the site's CA the proxy is not trusted
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=5)
    # with it (what a deployment sets for Airflow's processes), the operator's
    # client submits and follows a job through nginx
    monkeypatch.setenv("SSL_CERT_FILE", str(proxy.ca))
    config = write_task_config(tmp_path / "cfg", sleep_seconds=1)
    with JIDClient(base, token=jid.token) as client:
        client.healthz()
        job = client.start_job(control_document("Tester", config))
        assert job["tool_id"]
        while job["status"] not in ("DONE", "FAILED", "EXITED"):
            (job,) = client.wait([job], timeout=10)
        assert job["status"] == "DONE"
        assert "Test passed" in client.job_log_file(job)
        listed = client.request("GET", f"jobs?experiment={EXPERIMENT}")
        assert [j["_id"] for j in listed] == [job["_id"]]
    # --root-path: the JID's API description names the prefix it is served under
    openapi = httpx.get(f"{base}/openapi.json", timeout=10).json()
    assert openapi["servers"] == [{"url": PREFIX}]
    # /metrics answers the local Prometheus only (this test is on loopback)
    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 200
    # plain http is sent to https
    redirect = httpx.get(f"http://127.0.0.1:{proxy.http_port}{PREFIX}/healthz", timeout=5)
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")


def _connection(proxy: Proxy, token: str, ca_bundle: Path | None) -> str:
    extra = {"ca_bundle": str(ca_bundle)} if ca_bundle else {}
    return json.dumps({"conn_type": "jid", "host": proxy.base, "password": token,
                       "extra": extra})


async def test_the_connections_ca_bundle_serves_hook_trigger_and_launcher(
        tmp_path: Path, jid: ServeProcess, proxy: Proxy, monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_JID_TLS", _connection(proxy, jid.token, proxy.ca))
    monkeypatch.setenv("AIRFLOW_CONN_JID_UNTRUSTED", _connection(proxy, jid.token, None))
    config = write_task_config(tmp_path / "cfg", sleep_seconds=1)

    # the hook's blocking client (the operator's) verifies against the bundle
    with JIDHook("jid_tls").get_conn() as client:
        client.healthz()
        job = client.start_job(control_document("Tester", config))
    # the trigger resolves the same connection on its loop and follows the job
    trigger = JIDJobTrigger(job=job, jid_conn_id="jid_tls", wait_timeout=5.0)
    (event,) = [e.payload async for e in trigger.run()]
    assert event["status"] == "finished", event
    assert event["job"]["status"] == "DONE"

    # without the bundle: refused at once (no retries), naming the certificate problem
    with JIDHook("jid_untrusted").get_conn() as client, pytest.raises(JIDTLSError) as refused:
        client.healthz()
    assert "certificate" in str(refused.value)
    assert "unable to get local issuer certificate" in str(refused.value)
    started = time.monotonic()
    untrusted = JIDJobTrigger(job=job | {"status": "RUNNING"}, jid_conn_id="jid_untrusted",
                              outage_timeout=600.0)
    (event,) = [e.payload async for e in untrusted.run()]
    assert event["status"] == "error"
    assert "unable to get local issuer certificate" in event["message"]
    assert time.monotonic() - started < 60, "a certificate failure must not be waited out"

    # the launcher's client, from its user config's jid_ca_bundle
    ctx = SimpleNamespace(authorization=jid.token, arp_job_id="root-1", experiment=EXPERIMENT)
    out = Output()
    trusted = connect_jid(Profile(jid_url=proxy.base, jid_ca_bundle=str(proxy.ca)), ctx, out)
    assert trusted is not None
    trusted.close()
    with pytest.raises(LaunchError, match="unable to get local issuer certificate"):
        connect_jid(Profile(jid_url=proxy.base), ctx, out)


@pytest.mark.airflow
@pytest.mark.timeout(400)
def test_a_workflow_through_nginx_and_tls(tmp_path: Path, jid: ServeProcess, proxy: Proxy,
                                          monkeypatch) -> None:
    """A whole workflow in real Airflow whose site's JID is the one behind the proxy."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    # the run's ARP_LOCATION picks jid_tls; jid_default (direct) is not used
    monkeypatch.setenv("AIRFLOW_CONN_JID_TLS", _connection(proxy, jid.token, proxy.ca))
    config = write_test_config(tmp_path / "cfg")
    direct = JIDProcess(jid.base, jid.port, "not-the-token", config, tmp_path / "jid")
    conf = run_conf(config, experiment=EXPERIMENT, ARP_LOCATION="TLS")
    outcome = run_dag_test(tmp_path / "run", direct, "test.py", "lute_test", conf)
    assert outcome["state"] == "success", outcome["output"][-3000:]
    with JIDClient(jid.base, token=jid.token) as client:
        jobs = client.request("GET", f"jobs?arp_root_job_id={conf['ARP_ROOT_JOB_ID']}")
    assert jobs and {j["status"] for j in jobs} == {"DONE"}
    # every submission went through nginx
    access = (tmp_path / "nginx" / "logs" / "lute-jid.access.log").read_text()
    assert access.count(f"POST {PREFIX}/jid/ws/{EXPERIMENT}/start_job") == len(jobs)
