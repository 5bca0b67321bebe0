"""Who may do what: owners and admins cancel, run-scoped tokens, rotated secrets, site tokens."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jid_service.auth import issue_token
from jid_service.identity_provider import IdentityProviderConfig
from jid_service.settings import JIDSettings
from jid_service.signing_secrets import SecretError, signing_secrets

from .conftest import SECRET, running_app
from .test_api import start

BASE = "/jid/ws"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _running(client, job, headers):
    while job["status"] == "SUBMITTED":
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 5}, headers=headers)
        job = r.json()["value"][0]
    assert job["status"] == "RUNNING"
    return job


async def test_only_the_owner_or_an_admin_cancels(client, token, doc) -> None:
    alice, bob = _bearer(token(user="alice")), _bearer(token(user="bob"))
    admin = _bearer(token(user="ops", admin=True))
    first = await _running(client, await start(client, doc("Sleeper"), alice), alice)
    r = await client.post(f"{BASE}/exp1/kill_job", json=first, headers=bob)
    assert r.status_code == 403, r.text
    assert "owner" in r.json()["error"] and "'alice'" in r.json()["error"]
    # bob may still read it: an experiment's jobs are visible to its members
    r = await client.post(f"{BASE}/job_statuses", json=[first], headers=bob)
    assert r.json()["value"][0]["status"] == "RUNNING"
    r = await client.post(f"{BASE}/exp1/kill_job", json=first, headers=alice)
    assert r.json()["value"]["status"] == "EXITED"
    second = await _running(client, await start(client, doc("Sleeper"), alice), alice)
    r = await client.post(f"{BASE}/exp1/kill_job", json=second, headers=admin)
    assert r.json()["value"]["status"] == "EXITED"


async def test_run_scoped_token(client, token, doc) -> None:
    alice = _bearer(token(user="alice"))
    r = await client.post(f"{BASE}/exp1/run_token",
                          json={"arp_root_job_id": "root-1", "ttl": 600}, headers=alice)
    assert r.status_code == 200, r.text
    scoped = _bearer(r.json()["value"]["token"])
    claims = jwt.decode(r.json()["value"]["token"], SECRET, algorithms=["HS256"])
    assert claims["run"] == "root-1" and claims["experiments"] == ["exp1"]
    assert claims["admin"] is False and claims["exp"] <= time.time() + 601
    mine = await start(client, doc(arp_root_job_id="root-1"), scoped)
    other = await start(client, doc(arp_root_job_id="root-2"), alice)
    r = await client.post(f"{BASE}/exp1/start_job", json=doc(arp_root_job_id="root-2"),
                          headers=scoped)
    assert r.status_code == 403 and "root-1" in r.json()["error"]
    for path, body in ((f"{BASE}/exp1/job_log_file", other), (f"{BASE}/exp1/kill_job", other),
                       (f"{BASE}/exp1/job_log", {"job": other, "offset": 0, "limit": 10})):
        r = await client.post(path, json=body, headers=scoped)
        assert r.status_code == 403, (path, r.text)
    r = await client.post(f"{BASE}/job_statuses", json=[mine, other], headers=scoped)
    assert [d["_id"] for d in r.json()["value"]] == [mine["_id"]]
    r = await client.get(f"{BASE}/jobs", headers=scoped)
    assert [d["_id"] for d in r.json()["value"]] == [mine["_id"]]
    r = await client.get(f"{BASE}/jobs", params={"arp_root_job_id": "root-2"}, headers=scoped)
    assert r.status_code == 403
    # a scoped token issues nothing, and lifetimes are capped
    r = await client.post(f"{BASE}/exp1/run_token",
                          json={"arp_root_job_id": "root-1", "ttl": 60}, headers=scoped)
    assert r.status_code == 403
    r = await client.post(f"{BASE}/exp1/run_token",
                          json={"arp_root_job_id": "root-1", "ttl": 10**9}, headers=alice)
    assert r.status_code == 422 and "ttl" in r.json()["error"]
    r = await client.post(f"{BASE}/exp2/run_token",
                          json={"arp_root_job_id": "root-1", "ttl": 60}, headers=alice)
    assert r.status_code == 403


async def test_rotated_secret_still_verifies_and_new_tokens_use_the_first(
        settings: JIDSettings, doc) -> None:
    new = "new-secret-" + "f" * 40
    rotated = settings.model_copy(update={"auth_secret": new, "auth_previous_secrets": [SECRET]})
    async with running_app(rotated) as client:
        for secret in (new, SECRET):
            r = await client.post(f"{BASE}/exp1/render_job", json=doc(),
                                  headers=_bearer(issue_token(secret, "alice", "exp1", 60)))
            assert r.status_code == 200, r.text
        r = await client.post(f"{BASE}/exp1/render_job", json=doc(),
                              headers=_bearer(issue_token("x" * 40, "alice", "exp1", 60)))
        assert r.status_code == 401
        r = await client.post(f"{BASE}/exp1/run_token", json={"arp_root_job_id": "r", "ttl": 60},
                              headers=_bearer(issue_token(SECRET, "alice", "exp1", 60)))
        jwt.decode(r.json()["value"]["token"], new, algorithms=["HS256"])


def test_secret_file_must_be_private(settings: JIDSettings, tmp_path: Path) -> None:
    path = tmp_path / "jid.secret"
    path.write_text("a" * 40 + "\n" + "b" * 40 + "\n")
    path.chmod(0o644)
    from_file = settings.model_copy(update={"auth_secret": None, "auth_secret_file": path})
    with pytest.raises(SecretError, match="0644"):
        signing_secrets(from_file)
    path.chmod(0o600)
    assert signing_secrets(from_file) == ["a" * 40, "b" * 40]
    path.write_text("short\n")
    with pytest.raises(SecretError, match="too short"):
        signing_secrets(from_file)


async def test_identity_provider_tokens_through_the_app(settings: JIDSettings, doc) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    provider = IdentityProviderConfig(issuer="https://idp.example", audience="jid",
                                      public_key=pem, user_claim="preferred_username")
    with_idp = settings.model_copy(update={"identity_provider": provider})

    def site_token(**claims) -> str:
        base = {"preferred_username": "alice", "iss": "https://idp.example", "aud": "jid",
                "experiments": ["exp1"], "exp": int(time.time()) + 60}
        return jwt.encode({**base, **claims}, key, algorithm="RS256")

    async with running_app(with_idp) as client:
        r = await client.post(f"{BASE}/exp1/render_job", json=doc(),
                              headers=_bearer(site_token()))
        assert r.status_code == 200, r.text
        r = await client.post(f"{BASE}/exp1/render_job", json=doc(),
                              headers=_bearer(site_token(experiments=["exp2"])))
        assert r.status_code == 403
        for bad in ({"aud": "other"}, {"exp": int(time.time()) - 5}):
            r = await client.post(f"{BASE}/exp1/render_job", json=doc(),
                                  headers=_bearer(site_token(**bad)))
            assert r.status_code == 401, bad
        # the JID's own tokens keep working beside the provider's
        r = await client.post(f"{BASE}/exp1/render_job", json=doc(),
                              headers=_bearer(issue_token(SECRET, "alice", "exp1", 60)))
        assert r.status_code == 200


async def test_control_characters_in_a_user_claim_or_a_query_are_refused(client, doc) -> None:
    bad = issue_token(SECRET, "alice\x00root", "exp1", 60)
    r = await client.post(f"{BASE}/exp1/render_job", json=doc(), headers=_bearer(bad))
    assert r.status_code == 401 and "sub" in r.json()["error"]
    good = _bearer(issue_token(SECRET, "alice", "exp1", 60))
    r = await client.get(f"{BASE}/jobs", params={"arp_root_job_id": "root\x1b1"}, headers=good)
    assert r.status_code == 422 and "arp_root_job_id" in r.json()["error"]
