"""Dynamic workflow definitions: validation, hashing, storage."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lute.airflow.workflow_defn import (
    WorkflowDefinitionError,
    definitions_dir,
    load_definition,
    parse_definition,
    store_definition,
    stored_definitions,
)

TREE = textwrap.dedent(
    """
    task_name: Tester
    slurm_params: ''
    next:
      - task_name: BinaryTester
        slurm_params: '--ntasks=2'
        next: []
      - task_name: SocketTester
        next:
          - task_name: WriteTester
            next: []
    """
)


def test_parses_lute_tree() -> None:
    defn = parse_definition(TREE)
    assert [s.task_name for s in defn.steps()] == [
        "Tester",
        "BinaryTester",
        "SocketTester",
        "WriteTester",
    ]
    assert defn.steps()[1].slurm_params == "--ntasks=2"
    assert defn.dag_id.startswith("lute_dyn_")
    assert len(defn.dag_id) == len("lute_dyn_") + 12


def test_hash_ignores_formatting_and_key_order() -> None:
    same = "{next: [{next: [], task_name: BinaryTester, slurm_params: '--ntasks=2'},"
    same += " {task_name: SocketTester, next: [{task_name: WriteTester}]}], task_name: Tester}"
    assert parse_definition(TREE).content_hash() == parse_definition(same).content_hash()


def test_hash_differs_for_different_trees() -> None:
    other = TREE.replace("--ntasks=2", "--ntasks=3")
    assert parse_definition(TREE).dag_id != parse_definition(other).dag_id


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "mapping"),
        ("task_name: 'rm -rf'\nnext: []\n", "task_name"),
        ("task_name: Tester\nnext: []\nextra: 1\n", "extra"),
        ("next: []\n", "task_name"),
        ("task_name: [unclosed\n", "YAML"),
    ],
)
def test_bad_definitions_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        parse_definition(text, source="wf.yaml")
    assert "wf.yaml" in str(info.value)
    assert fragment in str(info.value)


def test_store_is_named_by_hash_and_round_trips(tmp_path) -> None:
    defn = parse_definition(TREE)
    path = store_definition(defn, tmp_path)
    assert path.name == f"{defn.content_hash()}.yaml"
    assert load_definition(path) == defn
    # Storing again replaces the file in place and leaves no temporary files.
    assert store_definition(defn, tmp_path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_stored_definitions_skips_bad_and_misnamed_files(tmp_path) -> None:
    good = store_definition(parse_definition(TREE), tmp_path)
    (tmp_path / "broken.yaml").write_text("task_name: [\n")
    (tmp_path / ("0" * 64 + ".yaml")).write_text("task_name: Tester\nnext: []\n")
    assert [p for p, _ in stored_definitions(tmp_path)] == [good]


def test_definitions_dir_from_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LUTE_WORKFLOW_DEFS_DIR", str(tmp_path))
    assert definitions_dir() == tmp_path
    monkeypatch.delenv("LUTE_WORKFLOW_DEFS_DIR")
    assert definitions_dir().parts[-3:] == ("workflows", "airflow", "dynamic_defs")


def test_module_does_not_import_airflow() -> None:
    code = (
        "import sys, lute.airflow.workflow_defn; "
        "sys.exit(1 if any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_file_names_its_dag_and_stored_file(tmp_path) -> None:
    from lute.airflow.workflow_defn import load_definition, store_definition, stored_definitions

    text = "task_name: Tester\nnext:\n  - task_name: BinaryTester\n"
    first = tmp_path / "SFX tagged-2.dag"
    first.write_text(text)
    second = tmp_path / "other.yaml"
    second.write_text(text)
    a, b = load_definition(first), load_definition(second)
    assert a.content_hash() == b.content_hash()  # the name is not part of the content
    assert a.dag_id == f"lute_dyn_sfx_tagged_2_{a.content_hash()[:8]}"
    assert b.dag_id == f"lute_dyn_other_{b.content_hash()[:8]}"
    defs = tmp_path / "defs"
    paths = {store_definition(a, defs).name, store_definition(b, defs).name}
    assert paths == {f"sfx_tagged_2__{a.content_hash()}.yaml", f"other__{a.content_hash()}.yaml"}
    # the DAG factory reads the same ids back; neither overwrote the other
    assert sorted(d.dag_id for _p, d in stored_definitions(defs)) == sorted([a.dag_id, b.dag_id])


def test_a_definition_without_a_name_keeps_the_hash_id(tmp_path) -> None:
    from lute.airflow.workflow_defn import parse_definition, store_definition, stored_definitions

    defn = parse_definition("task_name: Tester\n")
    assert defn.name is None and defn.dag_id == f"lute_dyn_{defn.content_hash()[:12]}"
    path = store_definition(defn, tmp_path)
    assert path.name == f"{defn.content_hash()}.yaml"
    [(_p, again)] = stored_definitions(tmp_path)
    assert again.dag_id == defn.dag_id
