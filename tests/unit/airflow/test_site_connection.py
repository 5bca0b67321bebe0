"""One Airflow, several sites: a run's ARP_LOCATION picks its JID connection."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowException

from lute.airflow.hook import conn_id_for_location, conn_id_for_run, site_conn_id
from lute.airflow.operator import JIDSlurmOperator


def _connection(port: int) -> str:
    return json.dumps({"conn_type": "jid", "host": "127.0.0.1", "port": port,
                       "schema": "http", "password": f"token-{port}"})


@pytest.fixture
def two_sites(monkeypatch) -> None:
    """``jid_default`` on port 1001, ``jid_s3df`` on port 1002 (no connection for NERSC)."""
    monkeypatch.setenv("AIRFLOW_CONN_JID_DEFAULT", _connection(1001))
    monkeypatch.setenv("AIRFLOW_CONN_JID_S3DF", _connection(1002))


def test_a_site_connection_is_jid_and_the_location_lower_cased() -> None:
    assert site_conn_id("S3DF") == "jid_s3df"
    assert site_conn_id("nersc-perlmutter") == "jid_nersc-perlmutter"


@pytest.mark.parametrize("location", ["S3 DF", "s3df/../x", "", "é"])
def test_a_location_that_cannot_name_a_connection_is_refused(location: str) -> None:
    with pytest.raises(ValueError, match="cannot name a JID connection"):
        site_conn_id(location)


def test_the_site_connection_when_defined_else_jid_default() -> None:
    known = {"jid_s3df"}.__contains__
    assert conn_id_for_location("S3DF", exists=known) == "jid_s3df"
    assert conn_id_for_location("NERSC", exists=known) == "jid_default"
    assert conn_id_for_location(None, exists=known) == "jid_default"
    assert conn_id_for_location("", exists=known) == "jid_default"


def test_a_connection_given_to_the_operator_wins(two_sites) -> None:
    assert conn_id_for_run("jid_special", "S3DF") == "jid_special"
    assert conn_id_for_run("jid_default", "S3DF") == "jid_s3df"


@pytest.mark.parametrize(
    ("location", "port"),
    [("S3DF", 1002), ("s3df", 1002), ("NERSC", 1001), (None, 1001)],
)
def test_the_operator_talks_to_the_run_site_jid(two_sites, location, port) -> None:
    op = JIDSlurmOperator(task_id="Tester")
    conf = {} if location is None else {"ARP_LOCATION": location}
    with op._client(conf) as client:
        assert client.base_url == f"http://127.0.0.1:{port}"
        assert client.token == f"token-{port}"
    # the trigger of a deferred step waits on the same JID
    kwargs = op._trigger_kwargs({"_id": "a", "status": "RUNNING"}, None)
    assert kwargs["jid_conn_id"] == ("jid_s3df" if port == 1002 else "jid_default")


def test_a_bad_location_fails_the_step_naming_it(two_sites) -> None:
    op = JIDSlurmOperator(task_id="Tester")
    with pytest.raises(AirflowException, match="ARP_LOCATION 'S3 DF'"):
        op._client({"ARP_LOCATION": "S3 DF"})
