"""The Airflow side: JID client, operator, trigger, connection type, workflow definitions.

Importing this package must not import Airflow (the launcher imports
``lute.airflow.workflow_defn`` without Airflow installed); the modules that
need Airflow import it themselves.
"""
