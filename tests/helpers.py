"""What tests import (fixtures stay in conftest.py): the backend under test, the one backend skip, and running a
registered stage in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BACKEND = os.environ.get("TAOSR1_TEST_BACKEND", "delta-rs")
REPO = Path(__file__).resolve().parent.parent
SPARK_SUBMIT = str(Path(__import__("pyspark").__file__).parent / "bin" / "spark-submit")

# The one backend skip: tests that need the embedded default on a local JVM SparkSession (Python UDFs, the
# delta-rs commit protocol, spark-submit, the CLI) skip on the Spark Connect (delta-spark) run.
jvm_only = pytest.mark.skipif(BACKEND != "delta-rs", reason="needs the embedded default on a local JVM SparkSession "
                              "(not Spark Connect)")


def job(store, stage_name: str, /, **params):
    """Run a registered stage in-process on the test session's Spark, as the CLI and jobs/*.py do."""
    from taosr1.job import run_stage
    from taosr1.stages import STAGES

    stage = STAGES[stage_name].load()
    return run_stage(stage, store, stage.Params(**params))


def store_at(spark, path):
    from taosr1.config import Settings
    from taosr1.io import open_store

    return open_store(spark, Settings(warehouse=str(path), table_backend=BACKEND))
