"""One dev stack for the modules of this package: launcher messages, restarts, the tutorial.

Its DAG folder is a temporary copy holding the test and dynamic workflows and
one DAG file that fails to import; modules add their own DAG files to
``stack.dags_folder``. The stack is started once for the package and stopped
when its last module ends.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lute.launch.stack import REPO_ROOT, Stack
from tests.integration.launch.support import launcher_env, stack_ports

BROKEN_DAG = '''\
from datetime import datetime

from airflow.sdk import DAG

from lute.airflow.operator import JIDSlurmOperator

with DAG(dag_id="lute_broken", schedule=None, start_date=datetime(2024, 1)) as dag:
    JIDSlurmOperator(task_id="Tester")
'''


@pytest.fixture(scope="package")
def defs_dir(tmp_path_factory) -> Path:
    """Where the package's dynamic workflow definitions are stored."""
    return tmp_path_factory.mktemp("dynamic_defs")


@pytest.fixture(scope="package")
def stack(tmp_path_factory, defs_dir):
    """The package's stack: lute_test, the dynamic workflows and a broken DAG file."""
    dags = tmp_path_factory.mktemp("dags")
    for name in ("test.py", "dynamic.py"):
        shutil.copy(REPO_ROOT / "workflows" / "airflow" / name, dags / name)
    (dags / "broken.py").write_text(BROKEN_DAG)
    airflow_port, jid_port = stack_ports()
    with Stack(
        tmp_path_factory.mktemp("stack"), airflow_port=airflow_port, jid_port=jid_port,
        dags_folder=dags, extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(defs_dir)},
        wait_for_dags=["lute_test"], dag_refresh_s=2,
    ) as s:
        yield s


@pytest.fixture
def env(stack, defs_dir):
    """The environment of a launcher run against the package's stack."""
    return launcher_env(stack, defs_dir)
