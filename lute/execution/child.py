"""The Task process: ``python -m lute.execution.child FD``, or :func:`main` in a fork.

The Executor forks and calls :func:`main` where it can, else starts this
module in a new interpreter (:mod:`lute.execution.task_process`). Reads its
parameters from the channel on file descriptor FD, runs the Task's
lifecycle, and sends back either a result (with an optional binary payload)
or an error. Log output goes to stdout/stderr, which the Executor relays.
Started in a new interpreter it does not import pydantic: parameters arrive
already validated.
"""

from __future__ import annotations

import logging
import socket
import sys
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the Task described by the channel's first message."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.stderr.write("usage: python -m lute.execution.child FD (started by the Executor)\n")
        return 2
    from lute.execution.ipc import Channel, send_result

    channel = Channel(socket.socket(fileno=int(args[0])))
    init = channel.receive().message
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if init.get("debug") else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from lute.tasks.base import Params, TaskContext
    from lute.tasks.registry import task_class

    context = TaskContext(
        task_name=init["task"],
        managed_task=init["managed_task"],
        experiment=init["experiment"],
        run=init["run"],
        work_dir=Path(init["work_dir"]),
        run_id=int(init["run_id"]),
        debug=bool(init.get("debug")),
        config_path=init.get("config_path"),
    )
    try:
        task = task_class(init["task"])(Params(init["params"]), context)
        result = task.execute()
    except Exception as exc:
        text = traceback.format_exc()
        sys.stderr.write(text)
        sys.stderr.flush()
        channel.send({"type": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": text})
        return 1
    send_result(
        channel,
        {
            "type": "result",
            "summary": result.summary,
            "outputs": result.outputs,
            "payload_name": result.payload_name,
        },
        result.payload,
        init["payload_prefix"],
    )
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
