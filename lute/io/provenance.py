"""The code a managed task runs: versions of the distributions involved, and git state.

The distributions of a managed task are LUTE's own (``lute-jid``), the one
that registers the managed task and the one that registers its Task (through
entry points, :mod:`lute.extensions`; built-in ones are LUTE's). Each has its
installed version and, when installed in editable mode from a git checkout
(PEP 610 ``direct_url.json`` with ``dir_info.editable``, or setuptools'
``.egg-info`` in the source tree), the checkout's
revision, whether its packages have uncommitted changes to tracked files
(``dirty``) and a digest of those changes, so that two dirty runs compare
equal only with the same changes. ``git`` runs by argv with a bounded
timeout; a distribution that is not a checkout has no git fields.

``lute-run-task`` records it per run in ``<work_dir>/lute.db`` (table
``run_provenance``) and prints it as one log line (:data:`LOG_MARKER`), which
is where the JID finds it for ``done_job``: a reused job must have run the
code the new step would run. Only the standard library is imported here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from lute.io.db import ResultsDB

LUTE_DISTRIBUTION = "lute-jid"
GIT_TIMEOUT = 5.0
"""Seconds one ``git`` command may take."""
CACHE_SECONDS = 5.0
"""How long :func:`current` reuses what it found (the JID asks per ``done_job``)."""
LOG_MARKER = "code provenance: "
"""What starts the provenance part of its log line; JSON follows."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_provenance (
    run_id        INTEGER NOT NULL REFERENCES task_runs (id),
    distribution  TEXT NOT NULL,
    version       TEXT,
    git_revision  TEXT,
    git_dirty     INTEGER,
    git_changes   TEXT,
    PRIMARY KEY (run_id, distribution)
);
"""


@dataclass(frozen=True)
class CodeVersion:
    """One distribution's version; the git fields only for an editable install of a checkout."""

    version: str | None
    revision: str | None = None
    dirty: bool | None = None
    changes: str | None = None
    """SHA-256 of ``git diff HEAD`` of its packages (of the empty text when clean)."""

    def describe(self) -> str:
        """``0.1.0``, ``0.1.0 (git 1a2b3c4d5e6f)``, ``0.1.0 (git 1a2b3c4d5e6f, dirty)``."""
        text = self.version or "not installed"
        if self.revision:
            text += f" (git {self.revision[:12]}{', dirty' if self.dirty else ''})"
        return text


@dataclass(frozen=True)
class Provenance:
    """The code of one run: each involved distribution's :class:`CodeVersion`."""

    distributions: dict[str, CodeVersion]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (what the log line and the JID carry)."""
        return {name: asdict(code) for name, code in sorted(self.distributions.items())}

    @classmethod
    def from_json(cls, data: Any) -> Provenance | None:
        """The provenance ``to_json`` wrote; None if ``data`` is not one."""
        if not isinstance(data, dict) or not data:
            return None
        found = {}
        for name, code in data.items():
            if not isinstance(code, dict):
                return None
            fields = {k: code.get(k) for k in ("version", "revision", "dirty", "changes")}
            found[str(name)] = CodeVersion(**fields)
        return cls(found)

    def describe(self) -> str:
        """``lute-jid 0.1.0 (git 1a2b3c4d5e6f)``, one distribution after another."""
        return ", ".join(f"{name} {code.describe()}"
                         for name, code in sorted(self.distributions.items()))

    def log_line(self) -> str:
        """The line ``lute-run-task`` prints, which :func:`from_log` reads back."""
        return LOG_MARKER + json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def differences(recorded: Provenance, current: Provenance) -> list[str]:
    """How the code of ``current`` differs from ``recorded``; empty when it is the same."""
    out = []
    for name in sorted(recorded.distributions.keys() | current.distributions.keys()):
        old = recorded.distributions.get(name)
        new = current.distributions.get(name)
        if old is None or new is None:
            out.append(f"{name}: {'not' if old is None else 'no longer'} involved")
        elif old.version != new.version:
            out.append(f"{name} {old.version} -> {new.version}")
        elif old.revision != new.revision:
            out.append(f"{name} git {str(old.revision)[:12]} -> {str(new.revision)[:12]}")
        elif (old.dirty, old.changes) != (new.dirty, new.changes):
            out.append(f"{name}: other uncommitted changes")
    return out


def from_log(text: str) -> Provenance | None:
    """The provenance of the last run whose log line is in ``text``, if any."""
    at = text.rfind(LOG_MARKER)
    if at < 0:
        return None
    line = text[at + len(LOG_MARKER):].split("\n", 1)[0]
    try:
        data, _ = json.JSONDecoder().raw_decode(line)
    except ValueError:
        return None
    return Provenance.from_json(data)


# -- capture -------------------------------------------------------------------------------

def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, timeout=GIT_TIMEOUT,
            check=False, stdin=subprocess.DEVNULL,
            # never take the index lock: others may be using the checkout
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def git_state(checkout: Path, paths: tuple[str, ...] = ()) -> CodeVersion | None:
    """Revision, dirty flag and changes digest of ``checkout``; None if it is no checkout.

    ``paths`` limit the changes looked at (a distribution's packages).
    """
    revision = _git(checkout, "rev-parse", "--verify", "HEAD")
    if revision is None:
        return None
    diff = _git(checkout, "diff", "HEAD", "--binary", "--no-ext-diff", "--", *paths)
    if diff is None:
        return CodeVersion(None, revision.strip())
    return CodeVersion(None, revision.strip(), bool(diff),
                       hashlib.sha256(diff.encode()).hexdigest())


def _editable_checkout(dist: Any) -> Path | None:
    """Where an editable install's code lives; None for a copied (wheel) install."""
    text = dist.read_text("direct_url.json")
    if not text:
        # setuptools' source-tree metadata (``<checkout>/<name>.egg-info``), found first
        # when the checkout is the current directory: the code is imported from there
        if dist.read_text("PKG-INFO") is not None and dist.read_text("METADATA") is None:
            return Path(str(dist.locate_file("")))
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file" or not (info.get("dir_info") or {}).get("editable"):
        return None
    return Path(unquote(url.path))


def distribution_version(name: str) -> CodeVersion:
    """What is installed of distribution ``name`` (and its checkout's state, if editable)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return CodeVersion(None)
    version = dist.version
    checkout = _editable_checkout(dist)
    if checkout is None:
        return CodeVersion(version)
    packages = tuple(p for p in (dist.read_text("top_level.txt") or "").split()
                     if (checkout / p).exists())
    state = git_state(checkout, packages)
    if state is None:
        return CodeVersion(version)
    return CodeVersion(version, state.revision, state.dirty, state.changes)


def involved(managed_task: str, task: str) -> list[str]:
    """The distributions whose code managed task ``managed_task`` (Task ``task``) runs."""
    # from the entry points alone: what is not registered there is built in
    from lute.extensions import MANAGED_TASKS_GROUP, TASKS_GROUP, registered

    names = [LUTE_DISTRIBUTION]
    for group, name in ((MANAGED_TASKS_GROUP, managed_task), (TASKS_GROUP, task)):
        registration = registered(group).get(name)
        if registration is not None:
            names.append(registration.package)
    return sorted(set(names))


def capture(managed_task: str, task: str) -> Provenance:
    """The provenance of a run of ``managed_task`` (Task ``task``) started now."""
    return Provenance({name: distribution_version(name)
                       for name in involved(managed_task, task)})


_cache: dict[tuple[str, str], tuple[float, Provenance]] = {}
_cache_lock = threading.Lock()


def current(managed_task: str, task: str) -> Provenance:
    """:func:`capture` of ``managed_task``, reused for :data:`CACHE_SECONDS` (blocking)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get((managed_task, task))
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    found = capture(managed_task, task)
    with _cache_lock:
        _cache[(managed_task, task)] = (now, found)
    return found


def forget() -> None:
    """Drop what :func:`current` keeps."""
    with _cache_lock:
        _cache.clear()


# -- the results DB ------------------------------------------------------------------------

def record(db: ResultsDB, run_id: int, provenance: Provenance) -> None:
    """Store ``provenance`` as run ``run_id``'s rows of ``run_provenance``."""
    # the DB's own write transaction: short, BEGIN IMMEDIATE, under its busy timeout
    with db._write() as conn:
        conn.execute(_SCHEMA)
        conn.executemany(
            "INSERT OR REPLACE INTO run_provenance (run_id, distribution, version,"
            " git_revision, git_dirty, git_changes) VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, name, code.version, code.revision,
              None if code.dirty is None else int(code.dirty), code.changes)
             for name, code in provenance.distributions.items()])


def recorded(db: ResultsDB, run_id: int) -> Provenance | None:
    """Run ``run_id``'s provenance from the DB; None if none was recorded."""
    with db._write() as conn:  # a write: it creates the table in a DB that lacks it
        conn.execute(_SCHEMA)
        rows = conn.execute(
            "SELECT distribution, version, git_revision, git_dirty, git_changes"
            " FROM run_provenance WHERE run_id = ?", (run_id,)).fetchall()
    if not rows:
        return None
    return Provenance({row[0]: CodeVersion(row[1], row[2],
                                           None if row[3] is None else bool(row[3]), row[4])
                       for row in rows})


def record_run(db: ResultsDB, run_id: int, managed_task: str, task: str) -> str:
    """Capture and record the provenance of run ``run_id``; the log line saying it.

    Never fails the run: what cannot be found is said in the line instead (a
    job without provenance is then never reused by ``done_job``).
    """
    try:
        provenance = capture(managed_task, task)
    except Exception as err:
        return f"no code provenance: {type(err).__name__}: {err}"
    try:
        record(db, run_id, provenance)
    except sqlite3.Error as err:
        return f"{provenance.log_line()} (not recorded in the DB: {err})"
    return provenance.log_line()
