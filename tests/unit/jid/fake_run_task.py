"""A stand-in for ``lute-run-task`` in the JID's unit tests: behaves by task name.

Tester exits 0, FailingTester exits 3, Sleeper sleeps until cancelled (or
``JID_FAKE_SLEEP`` seconds). Every run prints its argv and batch environment,
and the code provenance and config digest lines ``lute-run-task`` prints
(``done_job`` reads them).
"""

import os
import sys
import time

from lute.io.provenance import capture
from lute.io.step_config import log_line
from lute.managed_tasks import managed_task_names


def main() -> int:
    args = sys.argv[1:]
    name = args[args.index("-t") + 1]
    config = args[args.index("-c") + 1]
    print(f"fake task {name} config={config} debug={'--debug' in args}", flush=True)
    print(f"EXPERIMENT={os.environ.get('EXPERIMENT')} RUN_NUM={os.environ.get('RUN_NUM')}",
          flush=True)
    if name in managed_task_names():
        from lute.managed_tasks import get_managed_task

        task = get_managed_task(name).task_name
        print(f"{name}: {capture(name, task).log_line()}", flush=True)
        print(f"{name}: {log_line(config, task)}", flush=True)
    if name == "FailingTester":
        print("Task failed with return code: 3", flush=True)
        return 3
    if name == "Sleeper":
        deadline = time.monotonic() + float(os.environ.get("JID_FAKE_SLEEP", "60"))
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return 0
    print("héllo wörld ✓", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
