"""The launcher's user config: permissions, profiles, environment overrides."""

import os

import pytest

from lute.launch.userconfig import (
    LaunchConfigError,
    Profile,
    default_path,
    read_profile,
    write_config,
)

CONTENT = """
default:
  airflow_url: http://127.0.0.1:1
  username: u
  password: secret-pw
  jid_url: http://127.0.0.1:2
  jid_token: jt
test:
  airflow_url: http://127.0.0.1:3
  token: tt
"""


def _write(path, text, mode):
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610])
def test_group_or_world_access_is_refused(tmp_path, mode):
    p = _write(tmp_path / "launch.yaml", CONTENT, mode)
    with pytest.raises(LaunchConfigError) as err:
        read_profile(path=p, env={})
    assert "chmod 600" in str(err.value)
    assert "secret-pw" not in str(err.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_is_accepted(tmp_path, mode):
    p = _write(tmp_path / "launch.yaml", CONTENT, mode)
    prof = read_profile(path=p, env={})
    assert prof.airflow_url == "http://127.0.0.1:1"
    assert prof.password == "secret-pw"
    assert "secret-pw" not in repr(prof) and "jt" not in str(prof)
    test = read_profile("test", path=p, env={})
    assert test.token == "tt" and test.password is None


def test_environment_overrides_fields(tmp_path):
    p = _write(tmp_path / "launch.yaml", CONTENT, 0o600)
    prof = read_profile(path=p, env={"LUTE_AIRFLOW_URL": "http://h:9", "LUTE_JID_TOKEN": "x"})
    assert prof.airflow_url == "http://h:9"
    assert prof.jid_token == "x"
    assert prof.username == "u"


def test_env_only_without_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    prof = read_profile(env={"LUTE_AIRFLOW_URL": "http://h:9"})
    assert prof.airflow_url == "http://h:9"


def test_config_from_env_var_must_exist(tmp_path):
    with pytest.raises(LaunchConfigError, match="no such file"):
        read_profile(env={"LUTE_LAUNCH_CONFIG": str(tmp_path / "missing.yaml")})


def test_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path({}) == tmp_path / ".config" / "lute" / "launch.yaml"
    assert default_path({"LUTE_LAUNCH_CONFIG": "/x/y.yaml"}) == tmp_path.__class__("/x/y.yaml")


def test_unknown_profile_and_keys_are_errors(tmp_path):
    p = _write(tmp_path / "a.yaml", "prod: {}\n", 0o600)
    with pytest.raises(LaunchConfigError, match="unknown profile"):
        read_profile(path=p, env={})
    q = _write(tmp_path / "b.yaml", "default: {airflow_uri: x}\n", 0o600)
    with pytest.raises(LaunchConfigError, match="airflow_uri"):
        read_profile(path=q, env={})


def test_write_config_is_private_and_round_trips(tmp_path):
    path = tmp_path / "sub" / "launch.yaml"
    prof = Profile(airflow_url="http://a", username="admin", password="pw", jid_token="t")
    write_config(path, {"default": prof, "test": prof})
    assert (path.stat().st_mode & 0o777) == 0o600
    assert read_profile("test", path=path, env={}) == prof


def test_jid_ca_bundle_and_defs_store_from_file_and_environment(tmp_path):
    p = _write(tmp_path / "launch.yaml",
               "default: {jid_url: 'https://jid:1', jid_ca_bundle: /etc/ca.pem}\n", 0o600)
    prof = read_profile(path=p, env={})
    assert prof.jid_ca_bundle == "/etc/ca.pem"
    assert prof.defs_store == "files"
    prof = read_profile(path=p, env={"LUTE_JID_CA_BUNDLE": "/site/ca.pem",
                                     "LUTE_DEFS_STORE": "airflow"})
    assert prof.jid_ca_bundle == "/site/ca.pem"
    assert prof.defs_store == "airflow"


@pytest.mark.parametrize(("env", "fragment"), [
    ({"LUTE_JID_CA_BUNDLE": "relative/ca.pem"}, "jid_ca_bundle (Value error, jid_ca_bundle: "
                                                "ca_bundle must be an absolute path"),
    ({"LUTE_DEFS_STORE": "s3"}, "defs_store ("),
])
def test_bad_jid_ca_bundle_and_defs_store_are_named(tmp_path, env, fragment):
    with pytest.raises(LaunchConfigError) as err:
        read_profile(path=_write(tmp_path / "l.yaml", "default: {}\n", 0o600), env=env)
    assert fragment in str(err.value)
