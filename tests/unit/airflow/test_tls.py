"""The ``ca_bundle`` of the ``jid`` connection and the JID clients' certificate errors.

The clients against a real https JID (nginx, a CA of the test's own) are in
``tests/integration/deploy/test_nginx_tls.py``.
"""

from __future__ import annotations

import json
import ssl

import httpx
import pytest
from airflow.sdk import Connection

from lute.airflow.client import JIDClient, JIDTLSError, JIDUnavailableError
from lute.airflow.hook import endpoint_from_connection
from lute.airflow.jid_errors import certificate_problem, transport_failure
from lute.airflow.tls import context_is_built, httpx_verify, ssl_context
from tests.integration.deploy.tls_material import make_tls_files


def _conn(**kw) -> Connection:
    extra = kw.pop("extra", None)
    return Connection(conn_id="jid_tls", conn_type="jid", host="jid.example.org", port=443,
                      schema=kw.pop("schema", "https"),
                      extra=None if extra is None else json.dumps(extra), **kw)


def test_the_connection_carries_its_ca_bundle_to_both_clients(tmp_path) -> None:
    endpoint = endpoint_from_connection(_conn(extra={"ca_bundle": "/etc/lute/jid-ca.pem"}))
    assert endpoint.ca_bundle == "/etc/lute/jid-ca.pem"
    assert endpoint_from_connection(_conn()).ca_bundle is None
    # Both clients are built from the endpoint with its bundle (read when they are built).
    missing = tmp_path / "missing.pem"
    endpoint = endpoint_from_connection(_conn(extra={"ca_bundle": str(missing)}))
    with pytest.raises(JIDTLSError, match=f"CA bundle {missing}: cannot read"):
        endpoint.client()
    with pytest.raises(JIDTLSError, match=f"CA bundle {missing}: cannot read"):
        endpoint.async_client()


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"extra": {"verify": False}}, "'verify' is not supported"),
    ({"extra": {"ca_bundle": "ca.pem"}}, "ca_bundle must be an absolute path"),
    ({"extra": {"ca_bundle": ["/a.pem"]}}, "ca_bundle must be the path of a PEM file"),
    ({"schema": "http", "extra": {"ca_bundle": "/a.pem"}}, "not https"),
])
def test_bad_tls_settings_are_named(kw, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        endpoint_from_connection(_conn(**kw))


def test_a_file_without_certificates_is_named(tmp_path) -> None:
    bundle = tmp_path / "empty.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(JIDTLSError, match="not a PEM bundle of CA certificates"):
        JIDClient("https://jid.example.org", ca_bundle=str(bundle))


def test_the_context_is_read_once_per_file_version(tmp_path) -> None:
    bundle = make_tls_files(tmp_path / "tls").ca
    first = ssl_context(str(bundle))
    assert ssl_context(str(bundle)) is first
    bundle.write_text(bundle.read_text() + "\n")  # replaced: read again
    assert ssl_context(str(bundle)) is not first


def test_a_certificate_failure_is_not_an_outage() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        assert certificate_problem(exc) == "unable to get local issuer certificate"
        error = transport_failure(exc, "GET", "/healthz")
    assert isinstance(error, JIDTLSError) and not isinstance(error, JIDUnavailableError)
    assert "unable to get local issuer certificate" in str(error)
    assert "ca_bundle" in str(error)
    refused = transport_failure(httpx.ConnectError("refused"), "GET", "/healthz")
    assert isinstance(refused, JIDUnavailableError)


def test_a_built_context_is_known_without_reading_the_file_again(tmp_path) -> None:
    bundle = str(make_tls_files(tmp_path / "tls").ca)
    assert not context_is_built(bundle)
    assert httpx_verify(bundle) is ssl_context(bundle)
    assert context_is_built(bundle)
    # the system's CAs: one context per process, as httpx would build it
    assert httpx_verify(None) is httpx_verify(None)
    assert context_is_built(None)
    assert not context_is_built(str(tmp_path / "missing.pem"))
