"""The launch's copy of the user's Kerberos credential cache, as LUTE's launcher makes it.

With ``KRB5CCNAME`` set to a file cache, every launch copies that cache to a
private file of its own (a unique name, mode 0600, in a 0700 directory) and
sends its path as ``conf["kerb_file"]``; each step's job then runs with
``KRB5CCNAME`` pointing at the copy, so a ``kinit`` or ``kdestroy`` in the
user's session during the run does not pull the ticket from under the jobs,
and two launches never share or overwrite a copy. The copy is removed when
the run ends.

The directory is ``$LUTE_KRB5_CACHE_DIR``, default ``~/.cache/lute/krb5``; it
must be on a file system the batch nodes see, under one of the JID's
``kerberos_cache_roots``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lute.launch.exits import EXIT_BAD_INPUT, LaunchError

CACHE_DIR_VARIABLE = "LUTE_KRB5_CACHE_DIR"
FILE_PREFIX = "FILE:"
_CACHE_TYPE = re.compile(r"^[A-Z]+:")


@dataclass(frozen=True)
class CacheCopy:
    """One launch's private copy of the Kerberos cache."""

    path: Path

    @property
    def kerb_file(self) -> str:
        """What goes in ``conf["kerb_file"]`` (and the job's ``KRB5CCNAME``)."""
        return f"{FILE_PREFIX}{self.path}"

    def remove(self) -> None:
        """Delete the copy (already gone: nothing to do)."""
        self.path.unlink(missing_ok=True)


def cache_dir(env: Mapping[str, str]) -> Path:
    """Where the launch's copies go."""
    configured = env.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "lute" / "krb5"


def source_cache(env: Mapping[str, str]) -> Path | None:
    """The user's file cache named by ``KRB5CCNAME``, or None when there is none to copy.

    Raises LaunchError for a cache that cannot travel with a batch job
    (``KEYRING:``, ``KCM:``, ``DIR:``...) or a file that does not exist.
    """
    name = env.get("KRB5CCNAME", "")
    if not name:
        return None
    path_text = name[len(FILE_PREFIX):] if name.startswith(FILE_PREFIX) else name
    if _CACHE_TYPE.match(path_text) or not path_text:
        raise LaunchError(
            EXIT_BAD_INPUT,
            f"KRB5CCNAME={name} is not a file cache: only a FILE: cache can be forwarded "
            "to the jobs (kinit -c FILE:/path, or unset KRB5CCNAME)",
        )
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise LaunchError(EXIT_BAD_INPUT, f"KRB5CCNAME={name}: no such cache file (run kinit)")
    return path


def copy_cache(env: Mapping[str, str]) -> CacheCopy | None:
    """Copy the user's cache to a new private file; None without ``KRB5CCNAME``."""
    source = source_cache(env)
    if source is None:
        return None
    directory = cache_dir(env)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        data = source.read_bytes()
        # mkstemp: a name no other launch has, created 0600 with O_EXCL
        fd, name = tempfile.mkstemp(prefix="krb5cc_lute_", dir=directory)
    except OSError as exc:
        raise LaunchError(
            EXIT_BAD_INPUT, f"cannot copy the Kerberos cache {source} to {directory}: {exc}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        raise LaunchError(EXIT_BAD_INPUT, f"cannot write the Kerberos cache copy: {exc}") from None
    return CacheCopy(Path(name))
