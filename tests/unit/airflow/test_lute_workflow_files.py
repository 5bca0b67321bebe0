"""LUTE's engine-neutral workflow files (``workflows/common/*.dag``) through ``-W``."""

from __future__ import annotations

import pytest

from lute.airflow.workflow_defn import (
    WorkflowDefinitionError,
    load_definition,
    parse_definition,
)

# written as LUTE's workflows/common/sfx_tagged.dag is: the tag, run_dependent, next
SFX_TAGGED = """!LUTE_DAG
task_name: "FrameSimulator"
slurm_params: ""
run_dependent: true
next:
- task_name: "PeakFinder"
  slurm_params: ""
  run_dependent: true
  next:
  - task_name: "PeakSummarizer"
    slurm_params: "--ntasks=1"
    run_dependent: false
    next: []
- task_name: "FrameStatistician"
  slurm_params: ""
  run_dependent: false
  next: []
"""


def test_a_lute_dag_file_loads(tmp_path) -> None:
    path = tmp_path / "sfx_tagged.dag"
    path.write_text(SFX_TAGGED)
    defn = load_definition(path)
    assert [s.task_name for s in defn.steps()] == [
        "FrameSimulator", "PeakFinder", "PeakSummarizer", "FrameStatistician"]
    assert [s.run_dependent for s in defn.steps()] == [True, True, False, False]
    assert defn.steps()[2].slurm_params == "--ntasks=1"


def test_run_dependent_and_the_tag_change_nothing_that_runs() -> None:
    """Same steps, with or without the tag and run_dependent: the same DAG."""
    plain = "".join(line for line in SFX_TAGGED.splitlines(keepends=True)[1:]
                    if "run_dependent" not in line)
    assert "run_dependent" not in plain
    assert parse_definition(plain).dag_id == parse_definition(SFX_TAGGED).dag_id
    assert "run_dependent" not in parse_definition(SFX_TAGGED).canonical_json()


def test_lute_test_dag_without_tag_still_loads() -> None:
    defn = parse_definition('task_name: "Tester"\nslurm_params: ""\nnext:\n'
                            '- task_name: "BinaryTester"\n  slurm_params: ""\n  next: []\n')
    assert defn.task_names() == ["Tester", "BinaryTester"]


@pytest.mark.parametrize(("text", "named"), [
    ("!ALL_FAILED\ntask_name: Tester\nnext: []\n", "the tag !ALL_FAILED (line 1)"),
    ("!LUTE_DAG\ntask_name: Tester\nnext:\n- !branch_daq2\n  daq2: {task_name: Tester}\n",
     "the tag !branch_daq2 (line 4)"),
    ("!LUTE_DAG [Tester]\n", "!LUTE_DAG must tag a mapping"),
    ("!LUTE_DAG\ntask_name: Tester\nrun_dependent: sometimes\nnext: []\n", "run_dependent"),
    ("!!python/object:os.system {}\n", "not valid YAML"),
])
def test_what_lute_files_may_say_but_this_does_not_run(text: str, named: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        parse_definition(text, source="wf.dag")
    assert "wf.dag" in str(info.value) and named in str(info.value)
