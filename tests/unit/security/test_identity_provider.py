"""Provider tokens checked against a real JWKS document served over HTTP on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jid_service.identity_provider import IdentityProvider, IdentityProviderConfig

ISSUER = "https://idp.example.org/realms/facility"
AUDIENCE = "jid"


class _Keys:
    """The key set the test's JWKS endpoint serves; tests replace it to rotate keys."""

    def __init__(self) -> None:
        self.jwks: dict = {"keys": []}
        self.fetches = 0


def _jwk(public_key, kid: str, alg: str) -> dict:
    data = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(public_key))
    data.update(kid=kid, alg=alg, use="sig")
    return data


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, _Keys]]:
    keys = _Keys()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            keys.fetches += 1
            body = json.dumps(keys.jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certs", keys
    finally:
        server.shutdown()
        server.server_close()


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _token(key, kid: str, alg: str = "RS256", **overrides) -> str:
    claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "experiments": ["xpp1234"],
              "exp": int(time.time()) + 300}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _provider(url: str, **extra) -> IdentityProvider:
    return IdentityProvider(IdentityProviderConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=url,
                                                   **extra))


def test_rs256_token_from_the_jwks_is_accepted_and_mapped(jwks_server, rsa_key) -> None:
    url, keys = jwks_server
    keys.jwks = {"keys": [_jwk(rsa_key.public_key(), "k1", "RS256")]}
    provider = _provider(url)
    token = _token(rsa_key, "k1")
    assert provider.claims_issuer(token)
    claims = provider.verify(token)
    assert (claims.user, claims.experiments, claims.admin) == ("alice", ["xpp1234"], False)


def test_es256_and_group_admin(jwks_server) -> None:
    url, keys = jwks_server
    key = ec.generate_private_key(ec.SECP256R1())
    keys.jwks = {"keys": [_jwk(key.public_key(), "e1", "ES256")]}
    provider = _provider(url, user_claim="preferred_username", experiments_claim="scope_exps",
                         admin_groups=["lcls-admins"])
    token = _token(key, "e1", alg="ES256", preferred_username="bob", scope_exps="xpp1 mfx2",
                   groups=["users", "lcls-admins"])
    claims = provider.verify(token)
    assert (claims.user, claims.experiments, claims.admin) == ("bob", ["xpp1", "mfx2"], True)


@pytest.mark.parametrize("overrides", [{"aud": "other"}, {"iss": "https://evil.example"},
                                       {"exp": int(time.time()) - 10}, {"aud": None}])
def test_wrong_claims_are_refused(jwks_server, rsa_key, overrides) -> None:
    url, keys = jwks_server
    keys.jwks = {"keys": [_jwk(rsa_key.public_key(), "k1", "RS256")]}
    with pytest.raises(jwt.PyJWTError):
        _provider(url).verify(_token(rsa_key, "k1", **overrides))


def test_unknown_kid_refetches_then_refuses(jwks_server, rsa_key) -> None:
    url, keys = jwks_server
    keys.jwks = {"keys": [_jwk(rsa_key.public_key(), "k1", "RS256")]}
    provider = IdentityProvider(IdentityProviderConfig(issuer=ISSUER, audience=AUDIENCE,
                                                       jwks_url=url))
    provider.verify(_token(rsa_key, "k1"))
    before = keys.fetches
    # a key the provider rotated in is found by fetching the document again
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys.jwks = {"keys": [_jwk(rsa_key.public_key(), "k1", "RS256"),
                          _jwk(new_key.public_key(), "k2", "RS256")]}
    provider._jwks.cooldown_duration = 0  # type: ignore[union-attr]
    assert provider.verify(_token(new_key, "k2")).user == "alice"
    assert keys.fetches > before
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.PyJWTError):
        provider.verify(_token(stranger, "k9"))


def test_alg_none_and_hs256_with_the_public_key_are_refused(jwks_server, rsa_key) -> None:
    url, keys = jwks_server
    keys.jwks = {"keys": [_jwk(rsa_key.public_key(), "k1", "RS256")]}
    provider = _provider(url)
    claims = {"sub": "mallory", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60,
              "experiments": "*", "admin": True}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    assert not provider.claims_issuer(unsigned)
    with pytest.raises(jwt.PyJWTError):
        provider.verify(unsigned)
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    # forged by hand: PyJWT itself refuses a PEM public key as an HMAC secret
    head = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = _b64(hmac.new(pem, head + b"." + body, hashlib.sha256).digest())
    confused = (head + b"." + body + b"." + sig).decode()
    assert not provider.claims_issuer(confused)
    with pytest.raises(jwt.PyJWTError):
        provider.verify(confused)


def test_config_needs_exactly_one_key_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        IdentityProviderConfig(issuer=ISSUER, audience=AUDIENCE)
