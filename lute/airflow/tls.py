"""How the JID clients trust the JID's TLS certificate: a CA bundle, never "don't verify".

A JID behind a site's own certificate authority is reached by giving the PEM
bundle of that CA (``ca_bundle``: the ``jid`` connection's extra, the
launcher's ``jid_ca_bundle``); without one the clients trust the system's CAs
(httpx's default, ``SSL_CERT_FILE`` honoured). Turning verification off is
not offered: the clients send the JID token as a bearer credential, which an
unverified peer would receive, and a self-signed certificate is trusted just
as well by naming it as the bundle.

Building a context reads the bundle from disk, so callers on an event loop
build clients in a thread; the context is kept per file (path, size, mtime),
so many clients of one JID read the bundle once, and a replaced bundle is
read again.
"""

from __future__ import annotations

import functools
import os
import ssl

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


@functools.lru_cache(maxsize=16)
def _context(path: str, size: int, mtime_ns: int) -> ssl.SSLContext:
    del size, mtime_ns  # part of the cache key only: a changed file is read again
    return ssl.create_default_context(cafile=path)


def ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """A verifying client context trusting exactly the CAs of ``ca_bundle``.

    Blocking (stat and read of the file). Raises :class:`JIDTLSError` naming
    the file when it cannot be read or holds no certificate.
    """
    try:
        info = os.stat(ca_bundle)
        return _context(ca_bundle, info.st_size, info.st_mtime_ns)
    except ssl.SSLError as exc:  # an OSError too: first
        raise JIDTLSError(
            f"CA bundle {ca_bundle}: not a PEM bundle of CA certificates ({exc.reason})"
        ) from None
    except OSError as exc:
        raise JIDTLSError(f"CA bundle {ca_bundle}: cannot read: {exc.strerror}") from None


def httpx_verify(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """What to give httpx's ``verify=``: the bundle's context, or True (the system's CAs)."""
    return ssl_context(ca_bundle) if ca_bundle else True
