"""How the JID clients trust the JID's TLS certificate: a CA bundle, never "don't verify".

A JID behind a site's own certificate authority is reached by giving the PEM
bundle of that CA (``ca_bundle``: the ``jid`` connection's extra, the
launcher's ``jid_ca_bundle``); without one the clients trust the system's CAs
(httpx's default, ``SSL_CERT_FILE`` honoured). Turning verification off is
not offered: the clients send the JID token as a bearer credential, which an
unverified peer would receive, and a self-signed certificate is trusted just
as well by naming it as the bundle.

Building a context reads the bundle from disk (the system's CAs too), so
callers on an event loop build the first client in a thread; the context is
kept per file (path, size, mtime), and the system's per ``SSL_CERT_FILE`` and
``SSL_CERT_DIR``, so many clients of one JID read the CAs once, a replaced
bundle is read again, and once a context is built a client is built on the
loop (:func:`context_is_built`) without waiting for a free thread.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

import httpx

from lute.airflow.jid_errors import JIDTLSError


def check_ca_bundle(value: object, where: str) -> str | None:
    """A ``ca_bundle`` setting as an absolute path, None when unset (ValueError if bad).

    Only the form is checked here (no file access: this runs on event loops);
    the file is read when a client is built.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: ca_bundle must be the path of a PEM file, not {value!r}")
    path = os.path.expanduser(value.strip())
    if not os.path.isabs(path):
        raise ValueError(f"{where}: ca_bundle must be an absolute path, not {value!r}")
    return path


_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
"""Built contexts: ("bundle", path, size, mtime_ns) or ("system", SSL_CERT_FILE, SSL_CERT_DIR)."""
_MAX_CONTEXTS = 16


def _kept(key: tuple[object, ...], build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = _contexts.get(key)
    if context is None:
        context = build()
        if len(_contexts) >= _MAX_CONTEXTS:  # bundles replaced many times: start afresh
            _contexts.clear()
        _contexts[key] = context
    return context


def _bundle_key(path: str) -> tuple[object, ...]:
    info = os.stat(path)
    return ("bundle", path, info.st_size, info.st_mtime_ns)


def _system_key() -> tuple[object, ...]:
    return ("system", os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """A verifying client context trusting exactly the CAs of ``ca_bundle``.

    Blocking (stat and read of the file). Raises :class:`JIDTLSError` naming
    the file when it cannot be read or holds no certificate.
    """
    try:
        return _kept(_bundle_key(ca_bundle), lambda: ssl.create_default_context(cafile=ca_bundle))
    except ssl.SSLError as exc:  # an OSError too: first
        raise JIDTLSError(
            f"CA bundle {ca_bundle}: not a PEM bundle of CA certificates ({exc.reason})"
        ) from None
    except OSError as exc:
        raise JIDTLSError(f"CA bundle {ca_bundle}: cannot read: {exc.strerror}") from None


def system_context() -> ssl.SSLContext:
    """httpx's default verifying context (the system's CAs, ``SSL_CERT_FILE`` honoured)."""
    return _kept(_system_key(), httpx.create_ssl_context)


def httpx_verify(ca_bundle: str | None) -> ssl.SSLContext:
    """What to give httpx's ``verify=``: the bundle's context, or the system's CAs'."""
    return ssl_context(ca_bundle) if ca_bundle else system_context()


def context_is_built(ca_bundle: str | None) -> bool:
    """True when :func:`httpx_verify` would only look its context up (a ``stat`` at most)."""
    try:
        key = _bundle_key(ca_bundle) if ca_bundle else _system_key()
    except OSError:
        return False  # the thread that builds the client reports it
    return key in _contexts
