"""Parse time of each DAG file in workflows/airflow, against a minimal DAG parsed in the same run.

Each parse runs in a fresh process (Airflow preloaded, as in the DAG
processor, and nothing else, so every file pays the same first-use costs and
includes importing the project's modules; sockets and SQLite blocked). The
baseline is a DAG file with one EmptyOperator, parsed the same way. Printed
per file: median seconds (target < 0.5 s) and the ratio to the baseline.

Usage: ``python benchmarks/dag_parse.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_DIR = REPO_ROOT / "workflows" / "airflow"
PROBE = REPO_ROOT / "tests" / "unit" / "airflow" / "dag_parse_probe.py"
TARGET_S = 0.5
BASELINE = '''\
import datetime
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("baseline", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
    EmptyOperator(task_id="nothing")
'''
SAMPLE_WORKFLOW = "task_name: Tester\nnext:\n  - task_name: ReadTester\n    next: []\n"


def main() -> int:
    """Parse the files ``--repeats`` times; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lute-dag-parse-") as tmp:
        baseline = Path(tmp) / "baseline_dag.py"
        baseline.write_text(BASELINE)
        defs = Path(tmp) / "defs"
        defs.mkdir()
        sys.path.insert(0, str(REPO_ROOT))
        from lute.airflow.workflow_defn import parse_definition, store_definition

        store_definition(parse_definition(SAMPLE_WORKFLOW), defs)
        files = [baseline, *sorted(DAG_DIR.glob("*.py"))]
        env = dict(os.environ, LUTE_WORKFLOW_DEFS_DIR=str(defs))
        times: dict[str, list[float]] = {f.name: [] for f in files}
        for _ in range(args.repeats):
            for file in files:  # interleaved, so drifting machine load hits all alike
                done = subprocess.run([sys.executable, str(PROBE), str(file)], env=env,
                                      capture_output=True, text=True, timeout=300, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])[file.name]
                times[file.name].append(result["seconds"])
    base = statistics.median(times.pop(baseline.name))
    print(f"baseline (one EmptyOperator DAG): median {base * 1000:.1f} ms "
          f"over {args.repeats} parses")
    worst = 0.0
    for name, samples in times.items():
        median = statistics.median(samples)
        worst = max(worst, median)
        print(f"{name:20s} median {median * 1000:7.1f} ms  ratio to baseline {median / base:5.1f}")
    verdict = "met" if worst < TARGET_S else "NOT met"
    print(f"slowest file {worst * 1000:.1f} ms (target < {TARGET_S * 1000:.0f} ms each: {verdict})")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
