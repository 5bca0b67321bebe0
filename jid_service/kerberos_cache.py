"""The Kerberos credential cache a caller forwards with ``-K``, checked before a job gets it.

LUTE's launcher copies the user's ``KRB5CCNAME`` cache and its operator sends
``-K <cache>`` in ``def.parameters``; the job then runs with ``KRB5CCNAME``
set to it. The JID accepts the value only when it names, as ``FILE:<path>``
or a plain absolute path, an existing regular file under one of the site's
``kerberos_cache_roots`` (symlinks resolved, no ``..``), owned by the account
the JID runs as: jobs run as that account, so a cache of anyone else could
never be read by them, and a caller cannot hand a job another user's
credentials. Other cache types (``KEYRING:``, ``KCM:``, ``DIR:``...) belong
to one host and cannot travel with a batch job; they are refused.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from jid_service.errors import InvalidRequestError
from jid_service.host_paths import under_any

FILE_PREFIX = "FILE:"
_CACHE_TYPE = re.compile(r"^[A-Z]+:")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def check_kerberos_cache(raw: str, roots: Sequence[Path]) -> str:
    """The job's ``KRB5CCNAME`` (``FILE:<resolved path>``) for ``-K raw``, or refuse it."""
    what = f"-K {raw!r}"
    found = _CONTROL_CHARACTER.search(raw)
    if found:
        raise InvalidRequestError(
            f"-K: contains the control character U+{ord(found.group()):04X}"
        )
    if not roots:
        raise InvalidRequestError(
            f"{what}: this JID accepts no Kerberos cache (kerberos_cache_roots is empty)"
        )
    path_text = raw[len(FILE_PREFIX):] if raw.startswith(FILE_PREFIX) else raw
    if _CACHE_TYPE.match(path_text) or (path_text != raw and not path_text):
        raise InvalidRequestError(f"{what}: only a FILE: cache (a file path) can be forwarded")
    path = Path(path_text)
    if not path.is_absolute():
        raise InvalidRequestError(f"{what}: the cache must be an absolute path")
    if ".." in path.parts:
        raise InvalidRequestError(f"{what}: the cache path must not contain '..'")
    try:
        resolved = path.resolve(strict=True)
        info = resolved.stat()
    except (OSError, RuntimeError):
        raise InvalidRequestError(f"{what}: no such cache file") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidRequestError(f"{what}: the cache is not a regular file")
    if not under_any(resolved, roots):
        raise InvalidRequestError(f"{what}: the cache is not under a Kerberos cache root")
    if info.st_uid != os.getuid():
        raise InvalidRequestError(f"{what}: the cache is not owned by the JID's account")
    return f"{FILE_PREFIX}{resolved}"

