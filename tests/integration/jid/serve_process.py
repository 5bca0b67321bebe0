"""The JID integration tests' daemon (local backend), task config and control documents."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.support.jid_server import JidServer

REPO = Path(__file__).resolve().parents[3]
EXPERIMENT = "exp00001"


def write_task_config(directory: Path, sleep_seconds: float = 2.0) -> Path:
    """The repository's config/test.yaml, with its work dir and Sleep time adapted."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "work").mkdir(exist_ok=True)
    text = (REPO / "config" / "test.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    header, tasks = docs[0], docs[1]
    header["work_dir"] = str(directory / "work")
    tasks["Sleep"] = {"seconds": sleep_seconds, "print_interval": 0.5}
    path = directory / "test.yaml"
    path.write_text(yaml.safe_dump(header) + "...\n---\n" + yaml.safe_dump(tasks) + "...\n")
    return path


def control_document(task: str, config: Path, experiment: str = EXPERIMENT,
                     root: str = "root-1") -> dict[str, Any]:
    """A control document as LUTE's JIDSlurmOperator builds it."""
    return {
        "_id": str(uuid.uuid4()),
        "arp_root_job_id": root,
        "experiment": experiment,
        "run_num": "7",
        "user": "tester",
        "status": "",
        "tool_id": "",
        "def_id": str(uuid.uuid4()),
        "def": {
            "_id": str(uuid.uuid4()),
            "name": task,
            "executable": str(REPO / "launch_scripts" / "submit_slurm.sh"),
            "trigger": "MANUAL",
            "location": "S3DF",
            "parameters": f"--taskname {task} --config {config} --partition=debug --ntasks=1",
            "run_as_user": "tester",
        },
    }


class ServeProcess(JidServer):
    """The JID daemon with the local backend and a token for this suite's experiment."""

    def __init__(self, directory: Path, config_roots: list[Path],
                 extra_settings: dict[str, Any] | None = None) -> None:
        super().__init__(directory, config_roots, extra_settings, experiments=[EXPERIMENT])
