"""The launcher's command line: LUTE's arguments, and everything else for Slurm."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lute.launch.exits import EXIT_BAD_INPUT, LaunchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise LaunchError(EXIT_BAD_INPUT, f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The launcher's arguments (LUTE's, plus ``--dry-run`` and ``--airflow-url``)."""
    parser = _Parser(
        prog="launch_airflow.py",
        description="Trigger an Airflow workflow of managed tasks and follow it to its end. "
        "Unknown arguments are passed to Slurm for every managed task.",
        # a prefix of our options must never swallow a Slurm option
        allow_abbrev=False,
    )
    parser.add_argument("-a", "--admin", action="store_true", help="use the admin credentials")
    parser.add_argument("-c", "--config", required=True, help="path to the task config YAML")
    parser.add_argument("-d", "--debug", action="store_true", help="run the tasks in debug mode")
    parser.add_argument("--test", action="store_true", help="use the test Airflow instance")
    parser.add_argument("-w", "--workflow", default="test", help="workflow: DAG lute_<name>")
    parser.add_argument(
        "-W", "--workflow_defn", default="", help="YAML file with a dynamic workflow definition"
    )
    parser.add_argument("-e", "--experiment", help="experiment (when not started by the ARP)")
    parser.add_argument("-r", "--run", help="run number (when not started by the ARP)")
    parser.add_argument(
        "--dry-run", action="store_true", help="render every job's submission, submit nothing"
    )
    parser.add_argument(
        "--skip-done",
        action="store_true",
        help="reuse each step's earlier DONE job (same experiment, run, managed task, "
        "parameters and unchanged config) instead of submitting it again",
    )
    parser.add_argument("--airflow-url", help="Airflow base URL (overrides the user config)")
    parser.add_argument(
        "--parse-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for Airflow to parse a -W workflow (default 120)",
    )
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Known arguments and the Slurm arguments (everything else, in order)."""
    args, slurm_args = build_parser().parse_known_args(list(argv))
    return args, slurm_args
