"""The dev stack's settings and state files (no servers started)."""

import json
import stat

import jwt
import pytest

from lute.launch.devstack import build_parser
from lute.launch.stack import REPO_ROOT, Stack


def test_airflow_env_is_loopback_and_self_consistent(tmp_path):
    s = Stack(tmp_path / "st", airflow_port=34580, jid_port=34500, parallelism=2)
    env = s.airflow_env()
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:34580"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "workflows" / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    # Airflow imports the SQLite connection arguments by name: they must resolve
    from pydantic import ImportString, TypeAdapter

    args = TypeAdapter(ImportString).validate_python(
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"])
    assert args["timeout"] >= 30
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] == (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"])
    assert {env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]} == {"34581", "34582"}
    conn = json.loads(env["AIRFLOW_CONN_JID_DEFAULT"])
    assert (conn["conn_type"], conn["host"], conn["port"]) == ("jid", "127.0.0.1", 34500)
    # the connection's token is one the JID accepts: signed with the JID's secret
    claims = jwt.decode(conn["password"], s.jid_environment()["JID_AUTH_SECRET"],
                        algorithms=["HS256"])
    assert claims["experiments"] == "*"


def test_secrets_are_private_and_stable(tmp_path):
    s = Stack(tmp_path / "st")
    first = s.password
    assert Stack(tmp_path / "st").password == first  # kept across restarts
    assert Stack(tmp_path / "other").password != first
    for name in ("secrets.json", "jid_token"):
        s.jid_token  # noqa: B018 - creates the token file
        mode = stat.S_IMODE((tmp_path / "st" / name).stat().st_mode)
        assert mode == 0o600, name


def test_extra_env_reaches_both_and_jid_env_only_the_jid(tmp_path):
    s = Stack(tmp_path / "st", extra_env={"LUTE_WORKFLOW_DEFS_DIR": "/d"},
              jid_env={"JID_LOCAL_MAX_PARALLEL": "1"}, backend="slurm")
    assert s.airflow_env()["LUTE_WORKFLOW_DEFS_DIR"] == "/d"
    jenv = s.jid_environment()
    assert jenv["LUTE_WORKFLOW_DEFS_DIR"] == "/d"
    assert jenv["JID_LOCAL_MAX_PARALLEL"] == "1"
    assert jenv["JID_BACKEND"] == "slurm"
    assert s.airflow_env().get("JID_LOCAL_MAX_PARALLEL") != "1"


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match="backend"):
        Stack(tmp_path, backend="kubernetes")


def test_cli_parses_up_down_status():
    p = build_parser()
    a = p.parse_args(
        ["--state-dir", "/x", "up", "--slurm", "--airflow-port", "1", "--jid-port", "2"]
    )
    assert (a.command, a.slurm, a.airflow_port, a.jid_port, a.state_dir) == ("up", True, 1, 2, "/x")
    assert p.parse_args(["down"]).command == "down"
    assert p.parse_args(["status"]).command == "status"
    assert p.parse_args(["up"]).airflow_port == 28080
    assert p.parse_args(["status", "--state-dir", "/y"]).state_dir == "/y"
    assert p.parse_args(["up", "--allow-config-root", "/a", "--allow-config-root", "/b"]
                        ).allow_config_root == ["/a", "/b"]


def test_status_and_down_with_nothing_recorded(tmp_path, capsys):
    from lute.launch.devstack import main

    assert main(["--state-dir", str(tmp_path), "status"]) == 3
    assert main(["--state-dir", str(tmp_path), "down"]) == 0
    assert "nothing recorded" in capsys.readouterr().out


def test_restart_without_a_stack_says_so(tmp_path, capsys):
    from lute.launch.devstack import main

    assert main(["restart", "jid", "--state-dir", str(tmp_path)]) == 1
    assert "no restartable components recorded" in capsys.readouterr().err


def test_restart_keeps_how_each_component_started_private(tmp_path):
    from lute.launch.readiness import StackError
    from lute.launch.restart import SpawnSpec, read_spec, write_spec

    spec = SpawnSpec(["jid-service", "serve"], {"JID_AUTH_SECRET": "s"}, str(tmp_path),
                     str(tmp_path / "logs"), str(tmp_path / "pids"))
    write_spec(tmp_path, "jid", spec)
    assert read_spec(tmp_path, "jid") == spec
    assert (tmp_path / "spawn" / "jid.json").stat().st_mode & 0o077 == 0
    with pytest.raises(StackError, match=r"no component 'jdi' .*; did you mean 'jid'"):
        read_spec(tmp_path, "jdi")
