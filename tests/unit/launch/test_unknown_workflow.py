"""The text of an Airflow import error, as the launcher shows it."""

from __future__ import annotations

from lute.launch.unknown_workflow import file_stem_of, import_error_text

TRACE = """Traceback (most recent call last):
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
  File "/srv/dags/broken.py", line 7, in <module>
    with DAG(dag_id="lute_broken", start_date=datetime(2024, 1)) as dag:
TypeError: function missing required argument 'day' (pos 3)
"""


def test_an_import_error_shows_the_exception_and_the_line_of_the_dag_file() -> None:
    text = import_error_text({"filename": "broken.py", "stack_trace": TRACE})
    assert text == (
        "broken.py: TypeError: function missing required argument 'day' (pos 3)"
        " (line 7 of /srv/dags/broken.py)"
    )


def test_an_import_error_without_a_traceback_says_so() -> None:
    assert import_error_text({"filename": "x.py", "stack_trace": ""}) == "x.py: (no traceback)"


def test_a_workflow_dag_id_names_its_file() -> None:
    assert file_stem_of("lute_sfx_demo") == "sfx_demo"
