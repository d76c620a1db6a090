"""The one door to the tables: the store for a session, its Delta backend chosen by the settings."""

from __future__ import annotations

from pyspark.sql import SparkSession

from taosr1.config import Settings
from taosr1.io.delta_rs import DeltaRsStore
from taosr1.io.delta_spark import DeltaSparkStore
from taosr1.io.tables import TableStore
from taosr1.spark import is_remote


def choose_backend(spark: SparkSession, requested: str = "auto") -> str:
    """``auto``: delta-spark on Spark Connect or when the Delta extension is on the JVM classpath, else delta-rs."""
    if requested != "auto":
        return requested
    if is_remote(spark):
        return "delta-spark"
    try:
        spark.sparkContext._jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension")  # type: ignore[union-attr]
        return "delta-spark"
    except Exception:  # noqa: BLE001 - py4j raises its own error type for a missing class
        return "delta-rs"


def open_store(spark: SparkSession, settings: Settings | None = None) -> TableStore:
    """The table store for this session, backend chosen by settings (``auto`` by default)."""
    settings = settings or Settings.from_env()
    backend = choose_backend(spark, settings.table_backend)
    return DeltaSparkStore(spark, settings) if backend == "delta-spark" else DeltaRsStore(spark, settings)
