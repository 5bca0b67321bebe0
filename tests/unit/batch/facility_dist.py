"""A small facility package, installed as a real distribution into a directory for sys.path.

``importlib.metadata`` finds it by its ``.dist-info`` (``METADATA`` and
``entry_points.txt``), exactly as it finds a package ``pip install --target``
put there.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = '''\
"""Parameters of the facility's Task."""

from pydantic import Field

from lute.io.models.base import TaskParameters


class GreetParameters(TaskParameters):
    """Who to greet, how often."""

    name: str = "world"
    repeat: int = Field(1, ge=1)
'''

TASKS = '''\
"""The facility's Task."""

from lute.tasks.base import Task


class Greet(Task):
    """Prints a greeting and records it."""

    def run(self) -> None:
        """Greet ``repeat`` times."""
        for _ in range(self.params.repeat):
            print(f"hello {self.params.name}", flush=True)
        self.result.summary = {"greeted": self.params.name}
'''

MANAGED = '''\
"""The facility's managed tasks."""

from lute.execution.executor import Executor

Greeter = Executor("Greet")
'''


def install_facility(
    site: Path, package: str = "facility_pkg", dist: str = "facility-tasks",
    managed: str = "Greeter", task: str = "Greet",
) -> Path:
    """Write the package and its dist-info under ``site``; ``site`` for sys.path."""
    code = site / package
    code.mkdir(parents=True, exist_ok=True)
    (code / "__init__.py").write_text('"""A facility\'s LUTE Tasks."""\n')
    (code / "params.py").write_text(PARAMS.replace("Greet", task))
    (code / "tasks.py").write_text(TASKS.replace("Greet", task))
    (code / "managed.py").write_text(
        MANAGED.replace("Greeter", managed).replace('"Greet"', f'"{task}"')
    )
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[lute.tasks]\n{task} = {package}.tasks:{task}\n\n"
        f"[lute.task_models]\n{task} = {package}.params:{task}Parameters\n\n"
        f"[lute.managed_tasks]\n{managed} = {package}.managed:{managed}\n"
    )
    return site
