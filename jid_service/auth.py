"""Bearer-token authentication: the JID's own HS256 tokens and a site's provider tokens.

Own tokens carry ``sub`` (user), ``experiments`` (a list, or ``"*"`` for all),
``admin`` (bool), ``exp`` (expiry, required) and, for a run-scoped token,
``run`` (the ``arp_root_job_id`` it is bound to). They are verified against
every configured secret (so a secret can be rotated: sign with the new one,
keep the old one until its tokens expire) and signed with the first. Tokens of
a site's identity provider are verified by :mod:`jid_service.identity_provider`.
Tokens are never logged: errors name the problem, not the token.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jwt

from jid_service.errors import ForbiddenError, UnauthenticatedError
from jid_service.identity_provider import IdentityProvider

ALGORITHM = "HS256"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""A user name is stored and shown: no control characters (PostgreSQL refuses NUL)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may touch."""

    user: str
    experiments: frozenset[str] | None
    """None means every experiment (``"*"``)."""
    admin: bool = False
    run: str | None = None
    """The ``arp_root_job_id`` a run-scoped token is bound to; None for any run."""

    def may_see(self, experiment: str) -> bool:
        """True when the token covers ``experiment``."""
        return self.experiments is None or experiment in self.experiments

    def require_experiment(self, experiment: str) -> None:
        """Raise ForbiddenError unless the token covers ``experiment``."""
        if not self.may_see(experiment):
            raise ForbiddenError(f"token does not allow experiment {experiment!r}")

    def may_see_run(self, arp_root_job_id: str | None) -> bool:
        """True unless the token is bound to a run other than ``arp_root_job_id``."""
        return self.run is None or arp_root_job_id == self.run

    def require_run(self, arp_root_job_id: str | None) -> None:
        """Raise ForbiddenError when a run-scoped token meets another run's job."""
        if not self.may_see_run(arp_root_job_id):
            raise ForbiddenError(
                f"token is bound to run {self.run!r}, not arp_root_job_id {arp_root_job_id!r}"
            )

    def require_owner(self, owner: str | None) -> None:
        """Raise ForbiddenError unless the caller submitted the job or is an admin."""
        if not self.admin and owner != self.user:
            raise ForbiddenError(
                f"only the job's owner ({owner!r}) or an admin may cancel it; "
                f"the token is {self.user!r}'s"
            )


def issue_token(
    secret: str,
    user: str,
    experiments: Iterable[str] | str,
    ttl: float,
    admin: bool = False,
    run: str | None = None,
) -> str:
    """A signed token for ``user`` on ``experiments`` (or ``"*"``) valid ``ttl`` seconds.

    With ``run``, the token is bound to that ``arp_root_job_id``.
    """
    if isinstance(experiments, str):
        exps: str | list[str] = "*" if experiments == "*" else [experiments]
    else:
        exps = sorted(set(experiments))
        if "*" in exps:
            exps = "*"
    now = int(time.time())
    claims: dict[str, object] = {"sub": user, "experiments": exps, "admin": admin, "iat": now,
                                 "exp": now + int(ttl)}
    if run is not None:
        claims["run"] = run
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` value; UnauthenticatedError if none."""
    if not header:
        raise UnauthenticatedError("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthenticatedError("Authorization header must be 'Bearer <token>'")
    return token


def _principal_from_claims(claims: dict[str, object]) -> Principal:
    user = claims.get("sub")
    exps = claims.get("experiments", [])
    admin = claims.get("admin", False)
    run = claims.get("run")
    if not isinstance(user, str) or not user or _CONTROL.search(user):
        raise UnauthenticatedError("invalid token: bad 'sub' claim")
    if not isinstance(admin, bool):
        raise UnauthenticatedError("invalid token: bad 'admin' claim")
    if run is not None and (not isinstance(run, str) or not run):
        raise UnauthenticatedError("invalid token: bad 'run' claim")
    if exps == "*":
        experiments: frozenset[str] | None = None
    elif isinstance(exps, list) and all(isinstance(e, str) for e in exps):
        experiments = None if "*" in exps else frozenset(exps)
    else:
        raise UnauthenticatedError("invalid token: bad 'experiments' claim")
    return Principal(user=user, experiments=experiments, admin=admin, run=run)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or refuses it."""

    def __init__(self, secrets: Sequence[str], provider: IdentityProvider | None = None) -> None:
        if not secrets:
            raise ValueError("at least one signing secret is needed")
        self.secrets = tuple(secrets)
        self.provider = provider

    @property
    def signing_secret(self) -> str:
        """The secret new tokens are signed with (the first one)."""
        return self.secrets[0]

    def own_claims(self, token: str) -> dict[str, object]:
        """Claims of a token signed with any of the secrets; UnauthenticatedError otherwise."""
        failure: jwt.PyJWTError | None = None
        for secret in self.secrets:
            try:
                return jwt.decode(token, secret, algorithms=[ALGORITHM],
                                  options={"require": ["exp", "sub"]})
            except jwt.InvalidSignatureError as err:
                failure = err  # maybe signed with another (rotated) secret
            except jwt.ExpiredSignatureError:
                raise UnauthenticatedError("token expired") from None
            except jwt.PyJWTError as err:
                # The message names the failed check only, never the token itself.
                raise UnauthenticatedError(f"invalid token: {type(err).__name__}") from None
        raise UnauthenticatedError(f"invalid token: {type(failure).__name__}")

    async def principal(self, header: str | None) -> Principal:
        """The caller named by ``header``; UnauthenticatedError if missing or bad."""
        token = bearer_token(header)
        if self.provider is not None and self.provider.claims_issuer(token):
            try:
                # a JWKS fetch may block: keep it off the event loop
                mapped = await asyncio.to_thread(self.provider.verify, token)
            except jwt.ExpiredSignatureError:
                raise UnauthenticatedError("token expired") from None
            except jwt.PyJWTError as err:
                raise UnauthenticatedError(
                    f"invalid identity-provider token: {type(err).__name__}"
                ) from None
            if _CONTROL.search(mapped.user):
                raise UnauthenticatedError("invalid identity-provider token: bad user claim")
            experiments = None if mapped.experiments == "*" else frozenset(mapped.experiments)
            return Principal(user=mapped.user, experiments=experiments, admin=mapped.admin)
        return _principal_from_claims(self.own_claims(token))
