"""The ``jid`` connection type: provider registration and reading a connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from airflow.sdk import Connection

from lute.airflow.hook import endpoint_from_connection
from lute.airflow.provider import get_provider_info


def test_provider_info_declares_the_jid_connection_type() -> None:
    info = get_provider_info()
    (entry,) = info["connection-types"]
    assert entry["connection-type"] == "jid"
    assert entry["hook-class-name"] == "lute.airflow.hook.JIDHook"
    assert "password" in entry["ui-field-behaviour"]["relabeling"]


def test_airflow_discovers_the_connection_type() -> None:
    code = (
        "import json\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "pm = ProvidersManager()\n"
        "hook = pm.hooks['jid']\n"
        "print(json.dumps({'cls': hook.hook_class_name, 'name': hook.hook_name,"
        " 'fields': pm.field_behaviours.get('jid')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["cls"] == "lute.airflow.hook.JIDHook"
    assert found["name"] == "Job Interface Daemon (JID)"
    assert found["fields"]["hidden_fields"] == ["login"]


def test_endpoint_from_connection_fields() -> None:
    conn = Connection(
        conn_id="jid_x", conn_type="jid", host="jid.example.org", port=28000, schema="https",
        password="tok", extra=json.dumps({"base_path": "/custom/ws", "timeout": 5}),
    )
    endpoint = endpoint_from_connection(conn)
    assert endpoint.base_url == "https://jid.example.org:28000"
    assert endpoint.base_path == "/custom/ws"
    assert endpoint.timeout == 5.0
    assert endpoint.token == "tok"
    assert "tok" not in repr(endpoint)


def test_endpoint_defaults_and_url_hosts() -> None:
    conn = Connection(conn_id="jid_y", conn_type="jid", host="127.0.0.1")
    endpoint = endpoint_from_connection(conn)
    assert endpoint.base_url == "http://127.0.0.1"
    assert endpoint.base_path == "/jid/ws"
    assert endpoint.token is None
    conn = Connection(conn_id="jid_z", conn_type="jid", host="https://jid:1234/")
    assert endpoint_from_connection(conn).base_url == "https://jid:1234"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"host": ""}, "no host"), ({"host": "h", "schema": "ftp"}, "http or https")],
)
def test_bad_connections_are_named(kwargs, fragment) -> None:
    conn = Connection(conn_id="jid_bad", conn_type="jid", **kwargs)
    with pytest.raises(ValueError, match=fragment):
        endpoint_from_connection(conn)


def test_connection_from_environment_variable() -> None:
    code = (
        "from lute.airflow.hook import JIDHook\n"
        "e = JIDHook().get_endpoint()\n"
        "print(e.base_url, e.base_path, e.token)\n"
    )
    env = dict(os.environ)
    env["AIRFLOW_CONN_JID_DEFAULT"] = json.dumps(
        {"conn_type": "jid", "host": "127.0.0.1", "port": 28000, "schema": "http",
         "password": "envtoken"}
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "http://127.0.0.1:28000 /jid/ws envtoken"
