"""The DAG files: ids, shapes, no network, DB or analysis code at import; the factory.

Their parse time (target < 0.5 s each) is measured by benchmarks/dag_parse.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lute.airflow.workflow_defn import parse_definition, store_definition
from tests.unit.airflow.support import REPO_ROOT

DAG_DIR = REPO_ROOT / "workflows" / "airflow"
PROBE = Path(__file__).with_name("dag_parse_probe.py")


def _parse(files: list[Path], defs_dir: Path) -> dict:
    env = dict(os.environ, LUTE_WORKFLOW_DEFS_DIR=str(defs_dir))
    done = subprocess.run(
        [sys.executable, str(PROBE), *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    defs = tmp_path_factory.mktemp("defs")
    store_definition(
        parse_definition(
            "task_name: FrameSimulator\nnext:\n"
            "  - task_name: PeakFinder\n    slurm_params: '--ntasks=2'\n"
            "    next: [{task_name: PeakSummarizer}]\n"
            "  - task_name: PeakFinder\n    next: []\n"
        ),
        defs,
    )
    store_definition(parse_definition("task_name: Tester\nnext: [{task_name: ReadTester}]"), defs)
    (defs / "garbage.yaml").write_text("task_name: [\n")
    return _parse(sorted(DAG_DIR.glob("*.py")), defs)


# what would make a parse slow: the analysis code and its numeric stack, the
# JID, a database driver; none of it belongs in the DAG processor
HEAVY = ("numpy", "scipy", "matplotlib", "pandas", "lute.tasks", "lute.execution",
         "lute.io.db", "jid_service", "sqlalchemy", "psycopg", "firecrest")


def test_every_dag_file_parses_without_network_db_or_analysis_code(parsed) -> None:
    # the probe blocks sockets and SQLite: a file that used them would have failed
    assert set(parsed) >= {
        "test.py", "test_failure.py", "sfx_demo.py", "dynamic.py", "bench_parallel.py",
        "bench_chain.py",
    }
    for name, result in parsed.items():
        heavy = [m for m in result["loaded"]
                 if any(m == h or m.startswith(h + ".") for h in HEAVY)]
        assert heavy == [], (name, heavy)


def test_the_probe_sees_what_a_dag_file_imports(tmp_path) -> None:
    # without this, an empty list of heavy modules above could mean a blind probe
    dag = tmp_path / "heavy_dag.py"
    dag.write_text("import lute.tasks.frames  # noqa: F401\n")
    result = _parse([dag], tmp_path)["heavy_dag.py"]
    assert "lute.tasks.frames" in result["loaded"]


def test_dag_ids_follow_the_file_stem(parsed) -> None:
    for name, result in parsed.items():
        if name == "dynamic.py":
            continue
        assert f"lute_{Path(name).stem}" in result["dags"], (name, list(result["dags"]))


def test_lute_test_shape(parsed) -> None:
    assert parsed["test.py"]["dags"]["lute_test"] == {
        "Tester": ["BinaryTester", "SocketTester"],
        "BinaryTester": [],
        "SocketTester": ["WriteTester"],
        "WriteTester": ["ReadTester"],
        "ReadTester": [],
    }


def test_failure_and_demo_shapes(parsed) -> None:
    assert parsed["test_failure.py"]["dags"]["lute_test_failure"] == {
        "Tester": ["FailingTester"],
        "FailingTester": ["ReadTester"],
        "ReadTester": [],
    }
    assert parsed["sfx_demo.py"]["dags"]["lute_sfx_demo"] == {
        "FrameSimulator": ["FrameStatistician", "PeakFinder"],
        "PeakFinder": ["PeakSummarizer"],
        "FrameStatistician": [],
        "PeakSummarizer": [],
    }


def test_benchmark_dags(parsed) -> None:
    parallel = parsed["bench_parallel.py"]["dags"]["lute_bench_parallel"]
    assert sorted(parallel) == [f"s{i:02d}.Sleeper" for i in range(1, 13)]
    assert all(downstream == [] for downstream in parallel.values())
    in_triggerer = parsed["bench_parallel.py"]["dags"]["lute_bench_parallel_triggerer"]
    assert in_triggerer == parallel
    for baseline in ("lute_bench_parallel_sensors", "lute_bench_parallel_worker_sensors"):
        assert parsed["bench_parallel.py"]["dags"][baseline] == parallel
    chain = parsed["bench_chain.py"]["dags"]
    assert chain["lute_bench_chain"] == {
        "step1.Sleeper": ["step2.Sleeper"],
        "step2.Sleeper": ["step3.Sleeper"],
        "step3.Sleeper": [],
    }
    assert chain["lute_bench_chain_python"] == {
        "step1": ["step2"], "step2": ["step3"], "step3": [],
    }


def test_dynamic_factory_builds_one_dag_per_stored_definition(parsed) -> None:
    dags = parsed["dynamic.py"]["dags"]
    demo = parse_definition(
        "task_name: FrameSimulator\nnext:\n"
        "  - task_name: PeakFinder\n    slurm_params: '--ntasks=2'\n"
        "    next: [{task_name: PeakSummarizer}]\n"
        "  - task_name: PeakFinder\n    next: []\n"
    )
    simple = parse_definition("task_name: Tester\nnext: [{task_name: ReadTester}]")
    # The invalid file is skipped, not fatal.
    assert sorted(dags) == sorted([demo.dag_id, simple.dag_id])
    assert dags[simple.dag_id] == {"Tester": ["ReadTester"], "ReadTester": []}
    # A managed task used twice gets a task group to keep task ids unique.
    assert dags[demo.dag_id] == {
        "FrameSimulator": ["PeakFinder", "step2_PeakFinder.PeakFinder"],
        "PeakFinder": ["PeakSummarizer"],
        "PeakSummarizer": [],
        "step2_PeakFinder.PeakFinder": [],
    }


def test_the_probe_catches_network_and_db_access(tmp_path) -> None:
    for body in (
        "import httpx\nhttpx.get('http://127.0.0.1:9/')\n",
        "import sqlite3\nsqlite3.connect(':memory:')\n",
    ):
        bad = tmp_path / "bad_dag.py"
        bad.write_text(body)
        done = subprocess.run(
            [sys.executable, str(PROBE), str(bad)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode != 0
        assert "ForbiddenAtImportError" in done.stderr
