"""The daemon's access log: one line per request, its path without the query string.

A query string is the caller's to write, and a token put there by mistake
(``?token=...``) must not land in a log file that outlives it. uvicorn's access
logger is handed the request line as an argument of its record;
:class:`PathOnly` cuts the query off that argument before any handler formats it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

ACCESS_LOGGER = "uvicorn.access"
_PATH_ARG = 2
"""Where the path is in an access record's arguments (client, method, path, version, status)."""


class PathOnly(logging.Filter):
    """Drop the query string from the path of an access-log record (the record is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record.args`` in place; always let the record through."""
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            path = args[_PATH_ARG]
            if isinstance(path, str) and "?" in path:
                record.args = (*args[:_PATH_ARG], path.partition("?")[0], *args[_PATH_ARG + 1:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with :class:`PathOnly` on its access logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["path_only"] = {"()": f"{__name__}.PathOnly"}
    access = config["loggers"].setdefault(ACCESS_LOGGER, {})
    access["filters"] = [*access.get("filters", []), "path_only"]
    return config
