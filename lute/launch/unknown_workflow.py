"""Why Airflow has no DAG of a workflow: its file failed to import, or the name is misspelt.

DAG ids are ``lute_`` + the DAG file's stem, so an import error of that file
is the likely cause and Airflow keeps its traceback (``/api/v2/importErrors``);
otherwise the closest DAG ids are offered.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from lute.launch.airflow_api import AirflowClient, AirflowError
from lute.suggestions import close_names

DAG_PREFIX = "lute_"
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def file_stem_of(dag_id: str) -> str:
    """The DAG file stem a workflow's DAG id comes from."""
    return dag_id.removeprefix(DAG_PREFIX)


def import_error_text(error: dict[str, Any]) -> str:
    """``file: ExceptionType: message (line N of file)`` from one import error."""
    trace = str(error.get("stack_trace") or "").strip()
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    last = lines[-1] if lines else "(no traceback)"
    frames = _FRAME.findall(trace)
    where = f" (line {frames[-1][1]} of {frames[-1][0]})" if frames else ""
    return f"{error.get('filename')}: {last}{where}"


def unknown_workflow_message(airflow: AirflowClient, dag_id: str) -> str:
    """The message for a DAG Airflow does not have, naming the likely cause."""
    stem = file_stem_of(dag_id)
    try:
        errors = airflow.import_errors()
    except AirflowError:  # an account that may not read them: no hint from there
        errors = []
    own = [e for e in errors if PurePath(str(e.get("filename") or "")).stem == stem]
    if own:
        return (
            f"Airflow has no workflow {dag_id}: its DAG file failed to import: "
            + "; ".join(import_error_text(e) for e in own)
        )
    try:
        known = airflow.dag_ids()
    except AirflowError:
        known = []
    message = f"Airflow has no workflow {dag_id}"
    close = close_names(stem, [file_stem_of(d) for d in known if d.startswith(DAG_PREFIX)])
    if close:
        message += "; did you mean " + " or ".join(f"-w {c}" for c in close) + "?"
    elif known:
        workflows = sorted(file_stem_of(d) for d in known if d.startswith(DAG_PREFIX))
        message += f"; workflows: {', '.join(workflows) or 'none'}"
    if errors:
        message += (
            f" ({len(errors)} other DAG file(s) failed to import: "
            + ", ".join(str(e.get("filename")) for e in errors) + ")"
        )
    return message
