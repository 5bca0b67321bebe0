"""Provider metadata: registers the ``jid`` connection type with Airflow.

Airflow finds this function through the ``apache_airflow_provider`` entry
point declared in pyproject.toml, the same way it finds its own providers, so
the connection form offers "Job Interface Daemon (JID)" with its own fields.
Importing this module must stay cheap and must not import Airflow.
"""

from __future__ import annotations

from typing import Any

from lute.airflow.hook_fields import CONN_TYPE, HOOK_NAME, UI_FIELD_BEHAVIOUR


def get_provider_info() -> dict[str, Any]:
    """The provider description Airflow's ProvidersManager reads."""
    return {
        "package-name": "lute-jid",
        "name": "LUTE JID",
        "description": "Run LUTE managed tasks on HPC batch nodes through a job interface daemon",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "LUTE JID",
                "external-doc-url": "https://github.com/slac-lcls/lute",
                "tags": ["software"],
            }
        ],
        "operators": [
            {"integration-name": "LUTE JID", "python-modules": ["lute.airflow.operator"]}
        ],
        "hooks": [{"integration-name": "LUTE JID", "python-modules": ["lute.airflow.hook"]}],
        "triggers": [
            {"integration-name": "LUTE JID", "python-modules": ["lute.airflow.trigger"]}
        ],
        "connection-types": [
            {
                "hook-class-name": "lute.airflow.hook.JIDHook",
                "hook-name": HOOK_NAME,
                "connection-type": CONN_TYPE,
                "ui-field-behaviour": {
                    "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
                    "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
                    "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
                },
            }
        ],
    }
