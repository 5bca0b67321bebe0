"""Definitions stored as Airflow Variables: their keys, their checks, and the launcher's choice.

The hand-over through a real Airflow (two launches at once, one again) is in
``tests/integration/airflow/test_real_airflow.py``.
"""

from __future__ import annotations

import pytest

from lute.airflow.variable_defs import parsed_by_airflow, variable_definitions
from lute.airflow.workflow_defn import (
    VARIABLE_PREFIX,
    definition_text,
    parse_definition,
    stored_text_definition,
    variable_key,
)
from lute.launch.defs_store import hand_over

TREE = "task_name: Tester\nnext: [{task_name: BinaryTester}]\n"


def test_the_key_is_content_addressed_like_the_file() -> None:
    named = parse_definition(TREE, name="sfx_tagged")
    assert variable_key(named) == f"{VARIABLE_PREFIX}sfx_tagged__{named.content_hash()}"
    unnamed = parse_definition(TREE)
    assert variable_key(unnamed) == VARIABLE_PREFIX + unnamed.content_hash()
    other = parse_definition("task_name: Tester\nnext: []\n", name="sfx_tagged")
    assert variable_key(other) != variable_key(named)
    assert len(variable_key(parse_definition(TREE, name="n" * 200))) <= 250  # Airflow's limit


def test_a_stored_text_is_read_back_only_if_it_hashes_to_its_key() -> None:
    defn = parse_definition(TREE, name="sfx")
    stem = variable_key(defn)[len(VARIABLE_PREFIX):]
    back = stored_text_definition(stem, definition_text(defn), "Variable x")
    assert back is not None and back.dag_id == defn.dag_id
    changed = definition_text(defn).replace("BinaryTester", "FailingTester")
    assert stored_text_definition(stem, changed, "Variable x") is None
    assert stored_text_definition(stem, "- not a tree", "Variable x") is None
    assert stored_text_definition("not-a-hash", definition_text(defn), "Variable x") is None


def test_without_an_airflow_supervisor_no_variable_is_read() -> None:
    # dag.test(), a bare DagBag, this test: only the files are read
    assert not parsed_by_airflow()
    assert variable_definitions() == []


def test_the_launcher_stores_files_by_default_and_refuses_unknown_stores(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LUTE_WORKFLOW_DEFS_DIR", str(tmp_path))
    defn = parse_definition(TREE, name="sfx")
    assert hand_over(defn, "files", airflow=None) == f"{defn.file_stem}.yaml"
    assert (tmp_path / f"{defn.file_stem}.yaml").read_text() == definition_text(defn)
    with pytest.raises(ValueError, match="defs_store must be one of files, airflow"):
        hand_over(defn, "s3", airflow=None)
