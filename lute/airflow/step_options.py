"""``StepOptions``: the operator's options that shape the job a step submits.

One typed object, handed from the operator to the trigger (as a plain dict in
the trigger's serialized kwargs) when a step starts in the triggerer, so both
build the control document the same way.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from lute.airflow.control_document import StepIdentity, build_control_document


class StepOptions(BaseModel):
    """Slurm caps and the account a step's job runs as (see ``JIDSlurmOperator``)."""

    model_config = ConfigDict(frozen=True)

    max_cores: int | None = None
    max_nodes: int | None = None
    require_partition: str | None = None
    custom_slurm_params: str | None = ""
    user: str | None = None

    @classmethod
    def of(cls, value: StepOptions | Mapping[str, Any] | None) -> StepOptions | None:
        """The options from themselves or their serialized dict (None stays None)."""
        if value is None or isinstance(value, StepOptions):
            return value
        return cls.model_validate(dict(value))

    def control_document(
        self, conf: Mapping[str, Any], task_id: str, identity: StepIdentity
    ) -> dict[str, Any]:
        """The control document of one try of a step with these options.

        Raises :class:`~lute.airflow.control_document.ControlDocumentError`
        when the run's conf lacks what the document needs.
        """
        return build_control_document(
            conf,
            task_id,
            identity,
            user=self.user or getpass.getuser(),
            max_cores=self.max_cores,
            max_nodes=self.max_nodes,
            require_partition=self.require_partition,
            custom_slurm_params=self.custom_slurm_params or "",
        )
