"""Shared wiring for the taosr1 DAGs: where the repo's jobs are, default parameters, retries. No secrets here:
the Spark master comes from the Airflow connection (``spark_default``), everything else from DAG params or
``TAOSR1_*`` environment variables on the workers."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

REPO = Path(os.environ.get("TAOSR1_REPO", Path(__file__).resolve().parents[1]))
JOBS = REPO / "jobs"
WAREHOUSE = os.environ.get("TAOSR1_WAREHOUSE", str(REPO / "warehouse"))
PYTHON = os.environ.get("TAOSR1_PYTHON", str(REPO / ".venv" / "bin" / "python"))

DEFAULT_ARGS = {
    "owner": "search-relevance",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=3),
}

# Environment for spark-submit: the project's Python on driver and executors.
SPARK_ENV = {"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON, "TAOSR1_WAREHOUSE": WAREHOUSE}

