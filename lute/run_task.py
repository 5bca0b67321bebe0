"""``lute-run-task -c CONFIG -t NAME [--debug] [--skip-done]``: run one managed task.

``lute-run-task --list`` shows every managed task, its Task and its package
(:mod:`lute.catalog`); ``lute-run-task --check -c CONFIG [-t NAME]`` checks the
config's Task sections (or NAME's Task only) against their parameter models
and runs nothing (:mod:`lute.io.param_check`; exit 0 fine, 2 problems found).

Exit status: 0 only when the Task COMPLETED (or was skipped because an
identical run COMPLETED); 2 for an unknown managed task or a config error
(nothing is run or recorded); 1 when the Task FAILED; 124 on TIMEDOUT;
128+N when cancelled by signal N.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lute-run-task",
        description="Run a LUTE managed task and record it in the work dir's DB.",
    )
    parser.add_argument("-c", "--config", help="path of the task config YAML")
    parser.add_argument("-t", "--taskname", help="managed task name, e.g. Tester")
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    parser.add_argument(
        "--skip-done",
        action="store_true",
        help="do not rerun when an identical run already COMPLETED",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the managed tasks, their Tasks and packages"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the config's Task sections (with -t: that Task's only), run nothing",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lute-run-task``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        from lute.catalog import print_catalog

        print_catalog(sys.stdout)
        return 0
    if not args.config or not (args.taskname or args.check):
        parser.error("-c/--config and -t/--taskname are required (or --check -c, or --list)")
    if args.check and not args.taskname:
        from lute.io.param_check import report

        return report(args.config, None, sys.stdout, sys.stderr)
    from lute.managed_tasks import get_managed_task, managed_task_names

    try:
        executor = get_managed_task(args.taskname)
    except KeyError:
        import difflib  # only for this message: not imported on every run

        names = managed_task_names()
        close = difflib.get_close_matches(args.taskname, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        sys.stderr.write(
            f"lute-run-task: unknown managed task {args.taskname!r}.{hint}\n"
            f"Known managed tasks: {', '.join(names)}\n"
        )
        return EXIT_USAGE
    if args.check:
        from lute.io.param_check import report

        return report(args.config, [executor.task_name], sys.stdout, sys.stderr)
    outcome = executor.execute(
        args.config, managed_name=args.taskname, debug=args.debug, skip_done=args.skip_done
    )
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
