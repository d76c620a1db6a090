"""The one place that builds the SparkSession.

``local[*]`` when nothing else is said; anything ``spark-submit --master/--conf`` (or ``SPARK_REMOTE`` for Spark
Connect) sets wins, so the same job runs on a laptop and on a YARN, Kubernetes or standalone cluster.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Mapping

from pyspark.sql import SparkSession

# Defaults that every run needs; a value given on the command line or in spark-defaults wins.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Delta (and delta-rs) need INT64 micros, not Spark's legacy INT96 timestamps.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Keep Python workers (and the model an engine loaded in them) alive between tasks.
    "spark.python.worker.reuse": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "true",
}
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
}


def is_remote(spark: SparkSession) -> bool:
    """True for a Spark Connect session (no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def task_log() -> str:
    """Where a local session's failed-task reports (executor stack traces) go: ``$TAOSR1_SPARK_LOG``, else a file
    in the temp folder; the console keeps Spark's warnings and the job's own one-line error."""
    return os.environ.get("TAOSR1_SPARK_LOG") or os.path.join(tempfile.gettempdir(), f"taosr1-spark-{os.getuid()}.log")


def _logging_options() -> str:
    from importlib import resources

    config = resources.files("taosr1.resources").joinpath("log4j2.properties")
    os.environ["TAOSR1_SPARK_LOG"] = task_log()
    return f"-Dlog4j2.configurationFile=file:{config} -Dtaosr1.spark.log={task_log()}"


def get_spark(app_name: str = "taosr1", conf: Mapping[str, str] | None = None) -> SparkSession:
    """Return the active session or build one: local by default, the submitter's master when submitted."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    remote = os.environ.get("SPARK_REMOTE") or (conf or {}).get("spark.remote")
    if remote:
        return SparkSession.builder.remote(remote).appName(app_name).getOrCreate()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    submitted_by_user = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started the JVM with its own conf
    if not submitted_by_user:
        os.environ.setdefault("PYSPARK_SUBMIT_ARGS",
                              f"--driver-memory {os.environ.get('TAOSR1_DRIVER_MEMORY', '4g')} "
                              f"--driver-java-options {shlex.quote(_logging_options())} pyspark-shell")
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # starts (or joins spark-submit's) JVM so its conf is visible
    submitted = SparkConf()
    builder = SparkSession.builder.appName(app_name)
    defaults = dict(DEFAULT_CONF)
    if not submitted_by_user:
        builder = builder.master(os.environ.get("TAOSR1_SPARK_MASTER", "local[*]"))
        defaults.update(LOCAL_CONF)
    for key, value in defaults.items():
        if not submitted.contains(key):
            builder = builder.config(key, value)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("TAOSR1_SPARK_LOG_LEVEL", "WARN"))
    return spark
