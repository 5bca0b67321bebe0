"""Tokens from a site's identity provider (OIDC/Keycloak, an eLog token service).

Facilities already issue signed tokens to their users; the JID accepts them
beside its own HS256 tokens. A token is taken from the provider only when its
header names an asymmetric algorithm the provider is configured for and its
``iss`` is the provider's: the signature is checked with the provider's public
key (from its JWKS document, cached and fetched again for an unknown ``kid``,
or a PEM key given in the settings), and ``iss``, ``aud`` and ``exp`` are
required. Claims then map to a user, experiments and the admin flag as the
settings say (:class:`IdentityProviderConfig`).
"""

from __future__ import annotations

from typing import Any, Literal

import jwt
from pydantic import BaseModel, Field, model_validator

AsymmetricAlgorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]


class IdentityProviderConfig(BaseModel):
    """Where a site's tokens come from and how their claims map to JID permissions."""

    issuer: str = Field(description="the tokens' `iss`, compared exactly")
    audience: str = Field(description="the `aud` a token must carry")
    jwks_url: str | None = Field(
        default=None,
        description="the provider's JWKS document (keys cached, refreshed on a new kid)",
    )
    public_key: str | None = Field(
        default=None, description="a PEM public key, instead of jwks_url"
    )
    algorithms: list[AsymmetricAlgorithm] = Field(default_factory=lambda: ["RS256", "ES256"])
    user_claim: str = Field(default="sub", description="the claim that names the user")
    experiments_claim: str = Field(
        default="experiments",
        description='the claim listing the experiments (a list, a space-separated string, or "*")',
    )
    admin_claim: str = Field(default="admin", description="a boolean claim that makes an admin")
    groups_claim: str = Field(default="groups", description="the claim listing the user's groups")
    admin_groups: list[str] = Field(
        default_factory=list, description="members of any of these groups are admins"
    )
    jwks_cache_seconds: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _one_key_source(self) -> IdentityProviderConfig:
        if (self.jwks_url is None) == (self.public_key is None):
            raise ValueError("identity provider: set exactly one of jwks_url and public_key")
        return self


class ProviderClaims(BaseModel):
    """What a verified provider token says about its holder."""

    user: str
    experiments: list[str] | Literal["*"]
    admin: bool


class IdentityProvider:
    """Verifies one provider's tokens and maps their claims."""

    def __init__(self, config: IdentityProviderConfig) -> None:
        self.config = config
        self._jwks = (
            jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=config.jwks_cache_seconds,
                            timeout=10)
            if config.jwks_url else None
        )

    def claims_issuer(self, token: str) -> bool:
        """True when ``token`` (unverified) names this provider's algorithms and issuer.

        Only then is it verified here; any other token is the JID's own.
        """
        try:
            header = jwt.get_unverified_header(token)
            payload = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return (header.get("alg") in self.config.algorithms
                and payload.get("iss") == self.config.issuer)

    def verify(self, token: str) -> ProviderClaims:
        """The mapped claims of a valid provider token; raise ``jwt.PyJWTError`` otherwise.

        Blocking (a JWKS fetch on a new ``kid``): call from a worker thread.
        """
        key: Any
        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
        else:
            key = self.config.public_key
        claims = jwt.decode(
            token, key, algorithms=list(self.config.algorithms), audience=self.config.audience,
            issuer=self.config.issuer, options={"require": ["exp", "iss", "aud"]},
        )
        return self.map_claims(claims)

    def map_claims(self, claims: dict[str, Any]) -> ProviderClaims:
        """User, experiments and admin flag from verified claims, as configured."""
        cfg = self.config
        user = claims.get(cfg.user_claim)
        if not isinstance(user, str) or not user:
            raise jwt.InvalidTokenError(f"bad {cfg.user_claim!r} claim")
        raw = claims.get(cfg.experiments_claim, [])
        if isinstance(raw, str):
            raw = "*" if raw.strip() == "*" else raw.split()
        if raw != "*" and not (isinstance(raw, list) and all(isinstance(e, str) for e in raw)):
            raise jwt.InvalidTokenError(f"bad {cfg.experiments_claim!r} claim")
        groups = claims.get(cfg.groups_claim, [])
        in_admin_group = isinstance(groups, list) and bool(set(cfg.admin_groups) & set(groups))
        admin = claims.get(cfg.admin_claim) is True or in_admin_group
        experiments: list[str] | Literal["*"] = "*" if raw == "*" or "*" in raw else list(raw)
        return ProviderClaims(user=user, experiments=experiments, admin=admin)
