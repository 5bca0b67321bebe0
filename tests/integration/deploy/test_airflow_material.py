"""The Airflow-on-Kubernetes material, checked as far as this machine allows.

No container engine, Kubernetes cluster or Helm is available here, so the
image is not built and the chart is not rendered; these tests check what can
be checked offline: the build file copies what exists and keeps the Airflow
this project is tested with, the chart values reference the Secret that is
shipped, and each connection in it is one the operator accepts.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version

import yaml
from airflow.sdk import Connection

from lute.airflow.hook import endpoint_from_connection, site_conn_id
from tests.unit.airflow.support import REPO_ROOT

MATERIAL = REPO_ROOT / "deploy" / "airflow"


def _values() -> dict:
    return yaml.safe_load((MATERIAL / "values.yaml").read_text())


def _secret() -> dict:
    return yaml.safe_load((MATERIAL / "jid-connections.secret.yaml").read_text())


def test_the_image_keeps_the_tested_airflow_and_copies_what_exists() -> None:
    text = (MATERIAL / "Containerfile").read_text()
    (airflow,) = re.findall(r"^ARG AIRFLOW_VERSION=(\S+)$", text, re.M)
    assert airflow == version("apache-airflow")
    assert _values()["airflowVersion"] == airflow
    assert _values()["defaultAirflowTag"].startswith(airflow + "-lute")
    for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M):
        for source in line.split():
            assert (REPO_ROOT / source).exists(), source


def test_the_values_run_airflow_3_with_two_triggerers_and_git_synced_dags() -> None:
    values = _values()
    assert values["dagProcessor"]["enabled"] is True
    assert values["triggerer"]["enabled"] is True and values["triggerer"]["replicas"] == 2
    sync = values["dags"]["gitSync"]
    assert sync["enabled"] is True
    assert (REPO_ROOT / sync["subPath"]).is_dir()
    assert list((REPO_ROOT / sync["subPath"]).glob("*.py"))
    assert values["config"]["core"]["load_examples"] == "False"


def test_every_connection_the_values_name_is_in_the_shipped_secret() -> None:
    secret = _secret()
    keys = set(secret["stringData"])
    for entry in _values()["secret"]:
        assert entry["secretName"] == secret["metadata"]["name"]
        assert entry["secretKey"] in keys
        # the variable Airflow reads is the connection id the operator picks
        assert entry["envName"] == "AIRFLOW_CONN_" + entry["secretKey"].upper()


def test_each_shipped_connection_is_one_the_operator_accepts() -> None:
    for conn_id, text in _secret()["stringData"].items():
        assert conn_id == "jid_default" or conn_id == site_conn_id(conn_id.removeprefix("jid_"))
        conn = Connection(conn_id=conn_id, **json.loads(text))
        endpoint = endpoint_from_connection(conn)
        assert endpoint.base_url.startswith("https://")
        assert endpoint.base_path == "/jid/ws"
