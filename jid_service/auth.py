"""Bearer-token authentication: HS256 JWTs with the user, experiments and admin flag.

Claims: ``sub`` (user), ``experiments`` (a list, or ``"*"`` for all), ``admin``
(bool), ``exp`` (expiry, required). Tokens are never logged: errors name the
problem, not the token.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from jid_service.errors import ForbiddenError, UnauthenticatedError

ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may touch."""

    user: str
    experiments: frozenset[str] | None
    """None means every experiment (``"*"``)."""
    admin: bool = False

    def may_see(self, experiment: str) -> bool:
        """True when the token covers ``experiment``."""
        return self.experiments is None or experiment in self.experiments

    def require_experiment(self, experiment: str) -> None:
        """Raise ForbiddenError unless the token covers ``experiment``."""
        if not self.may_see(experiment):
            raise ForbiddenError(f"token does not allow experiment {experiment!r}")


def issue_token(
    secret: str,
    user: str,
    experiments: Iterable[str] | str,
    ttl: float,
    admin: bool = False,
) -> str:
    """A signed token for ``user`` on ``experiments`` (or ``"*"``) valid ``ttl`` seconds."""
    if isinstance(experiments, str):
        exps: str | list[str] = "*" if experiments == "*" else [experiments]
    else:
        exps = sorted(set(experiments))
        if "*" in exps:
            exps = "*"
    now = int(time.time())
    claims = {"sub": user, "experiments": exps, "admin": admin, "iat": now, "exp": now + int(ttl)}
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


def principal_from_header(header: str | None, secret: str) -> Principal:
    """Decode an ``Authorization`` header value; UnauthenticatedError if missing or bad."""
    token = bearer_token(header)
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise UnauthenticatedError("token expired") from None
    except jwt.PyJWTError as err:
        # The message names the failed check only, never the token itself.
        raise UnauthenticatedError(f"invalid token: {type(err).__name__}") from None
    user = claims.get("sub")
    exps = claims.get("experiments", [])
    admin = claims.get("admin", False)
    if not isinstance(user, str) or not user:
        raise UnauthenticatedError("invalid token: bad 'sub' claim")
    if not isinstance(admin, bool):
        raise UnauthenticatedError("invalid token: bad 'admin' claim")
    if exps == "*":
        experiments: frozenset[str] | None = None
    elif isinstance(exps, list) and all(isinstance(e, str) for e in exps):
        experiments = None if "*" in exps else frozenset(exps)
    else:
        raise UnauthenticatedError("invalid token: bad 'experiments' claim")
    return Principal(user=user, experiments=experiments, admin=admin)
