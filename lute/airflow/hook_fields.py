"""The ``jid`` connection type's name and form layout, shared by the hook and the provider info.

Kept apart from the hook so that reading provider metadata does not import Airflow.
"""

from __future__ import annotations

CONN_TYPE = "jid"
HOOK_NAME = "Job Interface Daemon (JID)"
DEFAULT_CONN_ID = "jid_default"

UI_FIELD_BEHAVIOUR: dict = {
    "hidden_fields": ["login"],
    "relabeling": {
        "schema": "Scheme (http or https)",
        "password": "Token",
        "extra": "Extra (optional base_path, default /jid/ws; timeout; ca_bundle for https)",
    },
    "placeholders": {
        "host": "jid.example.org",
        "port": "28000",
        "schema": "https",
        "password": "JWT issued by `jid-service token`",
        "extra": '{"base_path": "/jid/ws", "timeout": 30, "ca_bundle": "/etc/lute/jid-ca.pem"}',
    },
}
