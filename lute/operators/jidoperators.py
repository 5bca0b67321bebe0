"""LUTE's import line, ``from lute.operators.jidoperators import JIDSlurmOperator``, kept working.

Everything here is :mod:`lute.airflow.compat`'s; see ``docs/airflow.md``
("Migrating from LUTE").
"""

from lute.airflow.compat import DAG, JIDSlurmOperator, RequestOnlyOperator, dag

__all__ = ["DAG", "JIDSlurmOperator", "RequestOnlyOperator", "dag"]
