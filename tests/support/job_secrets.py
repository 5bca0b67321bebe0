"""What the secret-leak tests share: a Task that prints its environment, and /proc readers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

SITE_SECRET_VARIABLE = "SITE_API_KEY"
"""A credential in the daemon's environment that no site listed for jobs."""


def printenv_config(directory: Path, base_config: Path) -> Path:
    """``base_config`` with ``TestBinary`` running ``env env``: the job prints its environment."""
    docs = list(yaml.safe_load_all(base_config.read_text()))
    header, tasks = docs[0], docs[1]
    tasks["TestBinary"] = {"executable": "/usr/bin/env", "long_format": False,
                           "path": "/usr/bin/env"}
    path = directory / "printenv.yaml"
    path.write_text(yaml.safe_dump(header) + "...\n---\n" + yaml.safe_dump(tasks) + "...\n")
    return path


def environments_with(marker: str) -> dict[int, dict[str, str]]:
    """The environment of every process whose environment holds ``marker`` (``NAME=value``)."""
    found: dict[int, dict[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        pairs = [item.decode(errors="replace") for item in raw.split(b"\0") if item]
        if marker in pairs:
            found[int(entry.name)] = dict(p.split("=", 1) for p in pairs if "=" in p)
    return found


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = [item.decode(errors="replace") for item in raw.split(b"\0") if item]
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def process_tree(root: int, timeout: float, minimum: int = 3) -> dict[int, dict[str, str]]:
    """The environment block of ``root`` and its descendants, once there are ``minimum``.

    For processes forked rather than started by ``exec`` the block is the one
    their first ancestor started with: what ``/proc`` shows any local user.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids, todo = [], [root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            with_children = Path(f"/proc/{pid}/task/{pid}/children")
            try:
                todo.extend(int(c) for c in with_children.read_text().split())
            except OSError:
                continue
        found = {pid: env for pid in pids if (env := _environ(pid)) is not None}
        if len(found) >= minimum or time.monotonic() >= deadline:
            assert len(found) >= minimum, found
            return found
        time.sleep(0.2)


def leaked(env: dict[str, str], secret: str) -> list[str]:
    """Names in ``env`` that are the daemon's own or carry ``secret``/the site credential."""
    return sorted(name for name, value in env.items()
                  if name.upper().startswith("JID_") or secret in value
                  or name == SITE_SECRET_VARIABLE)


def job_processes(marker: str, timeout: float, minimum: int = 2) -> dict[int, dict[str, str]]:
    """:func:`environments_with` once at least ``minimum`` processes carry ``marker``."""
    deadline = time.monotonic() + timeout
    while len(found := environments_with(marker)) < minimum and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(found) >= minimum, found
    return found
