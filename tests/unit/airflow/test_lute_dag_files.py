"""DAG files written as LUTE's (Airflow 2 style) under Airflow 3: what fails, the fixes.

Each file is parsed by the real Airflow in a fresh process (``dag_parse_probe.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.unit.airflow.support import REPO_ROOT

PROBE = Path(__file__).with_name("dag_parse_probe.py")
RUFF = Path(sys.executable).with_name("ruff")

# as LUTE's workflows/airflow/test.py, only with its Airflow 2 schedule_interval
LUTE_STYLE = '''"""A LUTE DAG."""

from datetime import datetime
import os
from airflow import DAG
{operator_import}

dag_id: str = f"lute_{{os.path.splitext(os.path.basename(__file__))[0]}}"

dag: DAG = DAG(
    dag_id=dag_id,
    start_date=datetime(1970, 1, 1),
    schedule_interval=None,
    description="Run managed test Task in sequence and parallel",
)

tester: JIDSlurmOperator = JIDSlurmOperator(max_cores=2, task_id="Tester", dag=dag)
binary_tester: JIDSlurmOperator = JIDSlurmOperator(
    max_cores=5, task_id="BinaryTester", dag=dag
)
tester >> binary_tester
'''
LUTE_IMPORT = "from lute.operators.jidoperators import JIDSlurmOperator"

DECORATED = '''from datetime import datetime
from lute.operators.jidoperators import JIDSlurmOperator, RequestOnlyOperator, dag


@dag(dag_id="lute_decorated", start_date=datetime(1970, 1, 1), schedule_interval=None)
def decorated():
    JIDSlurmOperator(task_id="Tester") >> RequestOnlyOperator(task_id="BinaryTester")


the_dag = decorated()  # the probe finds DAGs among the module's names
'''


def _probe(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROBE), *map(str, files)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=REPO_ROOT)


def _dags(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_lute_dag_fails_as_is_and_parses_after_the_documented_command(tmp_path) -> None:
    path = tmp_path / "test.py"
    path.write_text(LUTE_STYLE.format(operator_import=LUTE_IMPORT))
    failed = _probe(path)
    assert failed.returncode != 0
    assert "schedule_interval" in failed.stderr

    ruff = shutil.which("ruff") or str(RUFF)
    fixed = subprocess.run([ruff, "check", "--isolated", "--select", "AIR301", "--fix",
                            str(path)], capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "schedule=None" in path.read_text() and "schedule_interval" not in path.read_text()
    assert _dags(_probe(path))["test.py"]["dags"] == {
        "lute_test": {"Tester": ["BinaryTester"], "BinaryTester": []}}


def test_lute_dag_parses_unchanged_with_the_compat_dag(tmp_path) -> None:
    """Only the imports changed: DAG from the compat module takes schedule_interval."""
    path = tmp_path / "smd.py"
    path.write_text(LUTE_STYLE.format(operator_import=LUTE_IMPORT).replace(
        "from airflow import DAG", "from lute.operators.jidoperators import DAG"))
    assert _dags(_probe(path))["smd.py"]["dags"] == {
        "lute_smd": {"Tester": ["BinaryTester"], "BinaryTester": []}}


def test_decorator_and_request_only_operator_parse(tmp_path) -> None:
    path = tmp_path / "decorated.py"
    path.write_text(DECORATED)
    assert _dags(_probe(path))["decorated.py"]["dags"] == {
        "lute_decorated": {"Tester": ["BinaryTester"], "BinaryTester": []}}


def test_both_schedules_is_refused(tmp_path) -> None:
    path = tmp_path / "both.py"
    path.write_text(LUTE_STYLE.format(operator_import=LUTE_IMPORT).replace(
        "from airflow import DAG", "from lute.operators.jidoperators import DAG").replace(
        "schedule_interval=None,", "schedule_interval=None, schedule=None,"))
    done = _probe(path)
    assert done.returncode != 0 and "schedule or schedule_interval, not both" in done.stderr
