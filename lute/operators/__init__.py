"""LUTE's import path of its Airflow operators (``lute.operators.jidoperators``)."""
