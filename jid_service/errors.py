"""The error every route raises to answer with a clean envelope and a 4xx/5xx status."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error answered as ``{"success": false, "value": null, "error": message}``."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers or {}
