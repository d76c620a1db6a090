"""Every rejected row of every stage goes through here: one shape, one table, one partition per (stage, ds).

A stage hands over its rejected rows with ``raw`` (the record as it came, as text), ``reason`` (a code) and
``detail``; lineage columns (``source_file``, ``source_row``) are kept where the stage has them.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from taosr1.io.tables import TableStore, Txn, WriteResult

KEY = ["query_id", "product_id"]


def pair_key() -> Column:
    """The record key of a (query, product) pair."""
    return F.concat_ws("|", *KEY)


def rows(df: DataFrame, *, stage: str, ds: str, run_id: str, key: Column | None = None) -> DataFrame:
    """Shape rejected rows (``raw``, ``reason``, ``detail``, optional lineage) for the quarantine table."""
    col = lambda n: F.col(n) if n in df.columns else F.lit(None)  # noqa: E731
    return df.select(F.lit(stage).alias("stage"), F.lit(ds).alias("ds"),
                     col("source_file").cast("string").alias("source_file"),
                     col("source_row").cast("long").alias("source_row"),
                     (key if key is not None else F.lit(None)).cast("string").alias("record_key"),
                     F.col("raw").alias("raw"), F.col("reason").alias("reason"),
                     col("detail").cast("string").alias("detail"),
                     F.lit(run_id).alias("run_id"), F.current_timestamp().alias("quarantined_at"))


def publish(store: TableStore, rejected: DataFrame, *, stage: str, ds: str, run_id: str,
            key: Column | None = None, txn: Txn | None = None) -> WriteResult:
    """Replace the (stage, ds) partition of ``quarantine`` with these rows (re-runs never duplicate them)."""
    return store.write("quarantine", rows(rejected, stage=stage, ds=ds, run_id=run_id, key=key), "overwrite",
                       replace={"stage": stage, "ds": ds}, txn=txn)


def pair_rows(df: DataFrame, reason: Column | str, detail: Column | None = None) -> DataFrame:
    """Rejected (query, product) pairs: ``raw`` is the pair as JSON; ``reason`` a code or a column."""
    fields = [c for c in (*KEY, "query", "label") if c in df.columns]
    return (df.withColumn("reason", F.lit(reason) if isinstance(reason, str) else reason)
            .withColumn("detail", detail if detail is not None else F.concat(F.lit("product_id="), F.col("product_id")))
            .withColumn("raw", F.to_json(F.struct(*fields))))
