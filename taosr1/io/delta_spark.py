"""Spark-native Delta backend: ``format("delta")``, ``replaceWhere``, ``MERGE INTO`` and time travel.

The production path on a cluster that has the Delta jars (``--packages io.delta:delta-spark_2.13:<ver>`` or
jars on the image with ``spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension``), and on a Spark Connect
server with native Delta (pysail, used by the tests here). Versions and history are read from the Delta log with
delta-rs, which works whoever wrote the table.
"""

from __future__ import annotations

import uuid
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1.contracts import Contract
from taosr1.errors import SchemaViolation
from taosr1.io.tables import Mode, TableStore, Txn, WriteResult, _predicate


class DeltaSparkStore(TableStore):
    """Delta tables written and read by Spark itself."""

    backend = "delta-spark"

    def _read(self, c: Contract, version: int | None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(c.table))

    def _write(self, c: Contract, df: DataFrame, mode: Mode, replace: dict[str, str],
               txn: Txn | None = None) -> WriteResult:
        self._check_required_not_null(c, df)
        if replace:
            # replaceWhere fails on rows outside the predicate; we check first to name the field like delta-rs does.
            inside = reduce(lambda a, b: a & b, [F.col(k) == F.lit(v) for k, v in replace.items()])
            outside = df.where(~inside).limit(1).collect()
            if outside:
                k = next(iter(replace))
                raise SchemaViolation(c.table, k, f"a row has {k}={outside[0][k]!r}, outside the partition being "
                                                  f"replaced ({_predicate(replace)})")
        self._check_primary_key(c, df)
        exists = self.exists(c.table)
        writer = df.write.format("delta").mode(mode)
        if c.partition_by:
            writer = writer.partitionBy(*c.partition_by)
        if replace and exists:  # a new table is simply created
            writer = writer.option("replaceWhere", _predicate(replace))
        if txn is not None:  # Delta's idempotent writes: the same app transaction, recorded in the log
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        writer.save(self.path(c.table))
        rows, files = self._last_commit_metrics(c, ("numOutputRows",), ("numAddedFiles", "numOutputFiles"))
        if rows is None:  # a writer that records no metrics: count what the commit made visible
            rows = self.count(c.table, replace) if (replace or mode == "overwrite") else self._added_rows(c)
        return WriteResult(c.table, self.version(c.table) or 0, rows, files, replace)

    def _added_rows(self, c: Contract) -> int:
        """Rows of an append from the versions' difference (both read through the Delta log)."""
        v = self.version(c.table) or 0
        before = self.read(c.table, v - 1, check=False).count() if v > 0 else 0
        return self.read(c.table, check=False).count() - before

    def _last_commit_metrics(self, c: Contract, row_keys: tuple[str, ...],
                             file_keys: tuple[str, ...]) -> tuple[int | None, int | None]:
        """Rows and files of the newest commit, from the Delta log's operationMetrics."""
        metrics = (self.history(c.table) or [{}])[0].get("operationMetrics") or {}
        pick = lambda keys: next((int(metrics[k]) for k in keys if k in metrics), None)  # noqa: E731
        rows = pick(row_keys)
        if rows is None and "numTargetRowsInserted" in metrics:
            rows = int(metrics["numTargetRowsInserted"]) + int(metrics.get("numTargetRowsUpdated", 0))
        return rows, pick(file_keys)

    def _merge(self, c: Contract, df: DataFrame, keys: list[str]) -> WriteResult:
        view = f"taosr1_merge_src_{uuid.uuid4().hex[:8]}"
        df.createOrReplaceTempView(view)
        # Only code-defined key names, a generated view name and the warehouse path reach this text, never user data;
        # DeltaTable.forPath (the API form) is not available on Spark Connect servers such as Sail.
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        self.spark.sql(f"MERGE INTO delta.`{self.path(c.table)}` AS t USING {view} AS s ON {on} "
                       f"WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
        self.spark.catalog.dropTempView(view)
        rows, files = self._last_commit_metrics(c, (), ("numTargetFilesAdded", "numAddedFiles"))
        return WriteResult(c.table, self.version(c.table) or 0, rows if rows is not None else df.count(), files)
