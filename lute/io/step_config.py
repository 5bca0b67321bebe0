"""What one step reads of its config file, as one digest: the header and its Task's section.

A rerun may stand in an earlier job for a step only while this digest is the
same: an edit to another Task's section of the same file changes nothing for
this step, an edit to its own section or to the header does. The digest is
of the file's text as written (before substitution), so the batch side,
which records it in the job's log, and the JID, which compares it with the
file as it is now, compute it alike without reading the environment.
Standard library and PyYAML only: the JID imports it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

LOG_MARKER = "config digest: "
"""How the job's log line saying the digest begins."""


def step_digest(config: Path, task: str) -> str | None:
    """The digest of ``config``'s header and Task ``task``'s section; None if unreadable."""
    try:
        docs = [d for d in yaml.safe_load_all(Path(config).read_text()) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if len(docs) != 2 or not all(isinstance(d, dict) for d in docs):
        return None
    header, tasks = docs
    payload: dict[str, Any] = {"header": header, "task": task, "section": tasks.get(task)}
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def log_line(config: Path, task: str) -> str:
    """The log line a run writes of what it read of its config."""
    digest = step_digest(config, task)
    return f"{LOG_MARKER}{digest}" if digest else "no config digest: the config cannot be read"


def from_log(text: str) -> str | None:
    """The digest of the last run whose line is in ``text``, if any."""
    at = text.rfind(LOG_MARKER)
    if at < 0:
        return None
    digest = text[at + len(LOG_MARKER):].split("\n", 1)[0].strip()
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else None
