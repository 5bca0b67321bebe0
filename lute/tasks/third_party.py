"""ThirdPartyTask: run an external program with an argv built from parameters.

The argv is a list, never a shell string. Parameter fields declare how they
appear on the command line through pydantic field metadata
(``json_schema_extra``):

* ``{"flag": "-n"}``: a bool adds the bare flag when true; any other value
  adds ``-n VALUE`` (lists repeat the flag per item); None omits it;
* ``{"positional": True}``: the value (or each item of a list) is appended
  after the flags, in field order.

The model field ``executable`` names the program. When the parameter model
sets the class attribute ``template_name`` and the parameter
``template_output`` is given, the Jinja2 template of that name (from
``lute/tasks/templates``) is first rendered with the parameters (and
``template_values``) into that file, for programs that read a config file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from lute.tasks.base import Task

TEMPLATE_DIR = Path(__file__).parent / "templates"


class ThirdPartyTask(Task):
    """Runs ``params.executable`` with flags from field metadata."""

    def build_argv(self) -> list[str]:
        """The program's argv from the parameters and the model's field metadata."""
        from lute.io.models import model_for

        fields = model_for(self.context.task_name).model_fields
        argv = [str(self.params.executable)]
        positional: list[str] = []
        values = self.params.to_dict()
        for name, info in fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            value = values.get(name)
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            if "flag" in extra:
                flag = str(extra["flag"])
                if isinstance(value, bool):
                    if value:
                        argv.append(flag)
                    continue
                for item in items:
                    argv.extend([flag, _text(item)])
            elif extra.get("positional"):
                positional.extend(_text(item) for item in items)
        return argv + positional

    def render_template(self) -> Path | None:
        """Render the model's template into ``template_output`` if both are set."""
        from lute.io.models import model_for

        name = getattr(model_for(self.context.task_name), "template_name", None)
        target = self.params.get("template_output")
        if not name or not target:
            return None
        import jinja2

        # plain-text config files for programs, not HTML: escaping would corrupt them
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701
        )
        values = {**self.params.to_dict(), **(self.params.get("template_values") or {})}
        values.setdefault("context", self.context)
        text = env.get_template(name).render(**values)
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.log.info("rendered template %s into %s", name, path)
        return path

    def pre_run(self) -> None:
        """Render the config template, if any."""
        rendered = self.render_template()
        if rendered is not None:
            self.result.outputs["template_output"] = str(rendered)

    def run(self) -> None:
        """Run the program; its output goes to the Task's log; non-zero exit fails."""
        argv = self.build_argv()
        self.log.info("running %s", argv)
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, check=False, cwd=self.context.work_dir
        )
        self.result.summary.update({"argv": argv, "returncode": proc.returncode})
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with code {proc.returncode}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
