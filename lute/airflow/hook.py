"""``JIDHook``: turns a ``jid`` Airflow connection into JID clients.

Connection fields: ``host``, ``port``, ``schema`` (``http`` or ``https``),
``password`` (the JID token); optional extra ``{"base_path": "/jid/ws",
"timeout": 30, "ca_bundle": "/etc/lute/jid-ca.pem"}``. A ``host`` that
already holds a URL (``https://jid:28000``) is accepted too. ``ca_bundle``
(https only) is the PEM bundle of the CAs that signed the JID's certificate;
without it the system's CAs are trusted. ``verify: false`` is refused
(:mod:`lute.airflow.tls` says why).

One Airflow may serve several sites, each with its JID: a run's
``ARP_LOCATION`` picks the connection ``jid_<location>`` (lower-cased), and
``jid_default`` serves the runs of a site without one
(:func:`conn_id_for_location`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from lute.airflow.client import DEFAULT_BASE_PATH, AsyncJIDClient, JIDClient
from lute.airflow.hook_fields import CONN_TYPE, DEFAULT_CONN_ID, HOOK_NAME, UI_FIELD_BEHAVIOUR
from lute.airflow.recent_endpoints import RecentLookups
from lute.airflow.retry_policy import NO_RETRY, RetryPolicy
from lute.airflow.tls import check_ca_bundle, context_is_built


@dataclass(frozen=True)
class JIDEndpoint:
    """Where the JID listens and the token to use; the token is kept out of ``repr``."""

    base_url: str
    base_path: str = DEFAULT_BASE_PATH
    timeout: float = 30.0
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    """PEM bundle of the CAs to trust (https); None: the system's."""

    def client(self, token: str | None = None) -> JIDClient:
        """A blocking client; ``token`` overrides the connection's."""
        return JIDClient(
            self.base_url, token=token or self.token, base_path=self.base_path,
            timeout=self.timeout, ca_bundle=self.ca_bundle,
        )

    def async_client(
        self, retry: RetryPolicy = NO_RETRY, transport: httpx.AsyncBaseTransport | None = None
    ) -> AsyncJIDClient:
        """An asyncio client; building it reads the CA bundle, so call it in a thread."""
        return AsyncJIDClient(
            self.base_url, token=self.token, base_path=self.base_path, timeout=self.timeout,
            retry=retry, transport=transport, ca_bundle=self.ca_bundle,
        )

    async def aasync_client(
        self, retry: RetryPolicy = NO_RETRY, transport: httpx.AsyncBaseTransport | None = None
    ) -> AsyncJIDClient:
        """:meth:`async_client` from an event loop, without blocking it.

        Only the first client of a CA bundle (or of the system's CAs) reads
        them, in a thread; later ones are built on the loop, so a trigger
        does not queue for a free thread behind others that wait on
        Airflow's supervisor.
        """
        if context_is_built(self.ca_bundle):
            return self.async_client(retry, transport)
        return await asyncio.to_thread(self.async_client, retry, transport)


def endpoint_from_connection(conn: Any) -> JIDEndpoint:
    """Read host, port, schema, password and extra of an Airflow connection."""
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"connection {conn.conn_id!r} has no host")
    extra: dict[str, Any] = {}
    raw_extra = conn.extra
    if raw_extra:
        extra = json.loads(raw_extra) if isinstance(raw_extra, str) else dict(raw_extra)
    if "://" in host:
        base_url = host.rstrip("/")
    else:
        scheme = (conn.schema or "http").strip().lower()
        if scheme not in ("http", "https"):
            raise ValueError(
                f"connection {conn.conn_id!r}: schema must be http or https, not {scheme!r}"
            )
        base_url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    return JIDEndpoint(
        base_url=base_url,
        base_path=str(extra.get("base_path", DEFAULT_BASE_PATH)),
        timeout=float(extra.get("timeout", 30.0)),
        token=conn.password or None,
        ca_bundle=_ca_bundle(conn.conn_id, base_url, extra),
    )


def _ca_bundle(conn_id: str, base_url: str, extra: dict[str, Any]) -> str | None:
    where = f"connection {conn_id!r}"
    if "verify" in extra:
        raise ValueError(
            f"{where}: extra 'verify' is not supported: certificate checks cannot be "
            "turned off (the token would go to an unverified peer); give the CA that "
            "signed the JID's certificate (or the certificate itself) as 'ca_bundle'"
        )
    ca_bundle = check_ca_bundle(extra.get("ca_bundle"), where)
    if ca_bundle and not base_url.startswith("https://"):
        raise ValueError(f"{where}: ca_bundle is set but the JID is not https: {base_url}")
    return ca_bundle


SITE_CONN_PREFIX = "jid_"
"""A site's connection id is this prefix and its ``ARP_LOCATION``, lower-cased."""
_LOCATION = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def site_conn_id(location: str) -> str:
    """The connection id of a site: ``S3DF`` -> ``jid_s3df``.

    ValueError for a location that cannot name a connection.
    """
    if not _LOCATION.fullmatch(location):
        raise ValueError(
            f"ARP_LOCATION {location!r} cannot name a JID connection: use letters, "
            "digits, '_', '.' and '-' only"
        )
    return SITE_CONN_PREFIX + location.lower()


def connection_exists(conn_id: str) -> bool:
    """True if Airflow knows a connection of that id (secrets backends included)."""
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def conn_id_for_location(
    location: str | None,
    fallback: str = DEFAULT_CONN_ID,
    exists: Callable[[str], bool] = connection_exists,
) -> str:
    """The JID connection of a run at ``location``: ``jid_<location>`` if defined, else
    ``fallback``."""
    if not location:
        return fallback
    candidate = site_conn_id(str(location))
    return candidate if exists(candidate) else fallback


def conn_id_for_run(configured: str, location: str | None) -> str:
    """A step's connection: ``configured`` if it is not ``jid_default``, else the site's."""
    if configured != DEFAULT_CONN_ID:
        return configured
    return conn_id_for_location(location)


RECENT_ENDPOINTS: RecentLookups[JIDEndpoint] = RecentLookups()
"""The connection lookups of this process's event loop (the triggerer's triggers share them)."""


class JIDHook(BaseHook):
    """Hook of the ``jid`` connection type."""

    conn_name_attr = "jid_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(self, jid_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.jid_conn_id = jid_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout of the connection in the UI."""
        return UI_FIELD_BEHAVIOUR

    def get_endpoint(self) -> JIDEndpoint:
        """The JID address and token of this hook's connection."""
        return endpoint_from_connection(self.get_connection(self.jid_conn_id))

    async def aget_endpoint(self) -> JIDEndpoint:
        """Like :meth:`get_endpoint`, without blocking the event loop.

        One lookup per connection serves the process's concurrent and
        following asks for a few seconds (:mod:`lute.airflow.recent_endpoints`).
        """
        async def lookup() -> JIDEndpoint:
            return endpoint_from_connection(await self.aget_connection(self.jid_conn_id))

        return await RECENT_ENDPOINTS.get(self.jid_conn_id, lookup)

    def get_conn(self) -> JIDClient:
        """A blocking JID client for this connection."""
        return self.get_endpoint().client()

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's "Test" button: calls the JID's /healthz."""
        try:
            with self.get_conn() as client:
                client.healthz()
        except Exception as exc:
            return False, str(exc)
        return True, "JID is healthy"
