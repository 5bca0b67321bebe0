"""The launcher's exit codes and the two ways a launch stops early.

0 the run succeeded, 1 it failed (or the launcher was stopped by SIGTERM or
SIGINT, after marking the run failed), 2 bad arguments or config, 3 Airflow or
the JID unreachable or refusing the credentials.
"""

from __future__ import annotations

import signal

EXIT_SUCCESS = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


class LaunchError(Exception):
    """Stop the launch with ``code`` and a one-line message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class LaunchInterruptedError(Exception):
    """SIGTERM or SIGINT arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
