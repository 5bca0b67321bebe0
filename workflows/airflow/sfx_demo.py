"""The scientific demo pipeline: simulate frames, then find peaks and compute statistics.

``FrameSimulator >> [PeakFinder, FrameStatistician]``, ``PeakFinder >> PeakSummarizer``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from lute.airflow.operator import JIDSlurmOperator

dag_id = f"lute_{Path(__file__).stem}"

with DAG(
    dag_id=dag_id,
    description="Demo SFX-style pipeline with a parallel branch",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=16,
    tags=["lute", "demo"],
) as dag:
    simulator = JIDSlurmOperator(task_id="FrameSimulator", max_cores=2, max_nodes=1)
    peak_finder = JIDSlurmOperator(task_id="PeakFinder", max_cores=2, max_nodes=1)
    statistician = JIDSlurmOperator(task_id="FrameStatistician", max_cores=1, max_nodes=1)
    summarizer = JIDSlurmOperator(task_id="PeakSummarizer", max_cores=1, max_nodes=1)

    simulator >> [peak_finder, statistician]
    peak_finder >> summarizer
