"""The table layer: path-based Delta tables under one warehouse root, checked against their contracts.

Two backends implement :class:`TableStore`:

* ``delta-spark`` (production): Spark's own Delta writer, ``replaceWhere`` and ``MERGE INTO``; needs the Delta
  jars on the cluster (or ``--packages``), or a Spark Connect server with native Delta.
* ``delta-rs`` (embedded default): executors write Parquet in parallel and the driver commits the files as one
  Delta transaction with delta-rs; reads resolve a version's files through the Delta log.

Both give the same tables: analysts can read them with Spark SQL, delta-rs, DuckDB or polars.
"""

from __future__ import annotations

import abc
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from taosr1 import contracts
from taosr1.config import Settings
from taosr1.contracts import Contract
from taosr1.errors import SchemaViolation
from taosr1.layout import table_path
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)

Mode = Literal["append", "overwrite"]

# Optimistic-concurrency conflicts of delta-rs and Delta Lake: another writer committed first; retry on the new
# snapshot, as Delta's own writers do. ConcurrentTransaction (the same application id) is retried too: the retry's
# app-transaction check then sees the other writer's commit and skips.
CONFLICTS = ("CommitFailedError", "ConcurrentAppendException", "ConcurrentDeleteReadException",
             "ConcurrentDeleteDeleteException", "ConcurrentWriteException", "MetadataChangedException",
             "DeltaConcurrentModificationException", "ConcurrentTransactionException")
COMMIT_ATTEMPTS = int(os.environ.get("TAOSR1_COMMIT_ATTEMPTS", "8"))


def is_conflict(e: BaseException) -> bool:
    """A concurrent writer's commit won this one's version (the table is fine; try again)."""
    names = {t.__name__ for t in type(e).__mro__}
    return bool(names & set(CONFLICTS)) or any(n in str(e)[:2000] for n in CONFLICTS[1:])


def with_commit_retries(table: str, fn, attempts: int | None = None):  # noqa: ANN001, ANN201 - any commit
    """``fn()``, again on a fresh snapshot after a concurrent writer's conflict (jittered back-off, bounded)."""
    attempts = attempts or COMMIT_ATTEMPTS
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - re-raised unless it is a conflict
            if not is_conflict(e) or i == attempts - 1:
                raise
            wait = min(2.0, 0.05 * 2 ** i) * (0.5 + random.random())
            log_event(log, "table.commit_retry", table=table, attempt=i + 1, wait_s=round(wait, 2),
                      error=type(e).__name__)
            time.sleep(wait)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class WriteResult:
    """What a commit did: the table, its new version, rows and files added (``skipped``: the commit was already
    made by this run, or a newer run of the same key committed first)."""

    table: str
    version: int
    rows: int
    files: int | None
    partitions: Mapping[str, str] = field(default_factory=dict)
    skipped: bool = False


@dataclass(frozen=True)
class Txn:
    """A Delta application transaction (``txnAppId``/``txnVersion``): the table remembers the highest version
    committed per app id, so a commit whose version is not above it is skipped. ``app_id`` names one write of one
    run key (a stage, its day or corpus, the table, the write's number in the run); ``version`` is the run's start
    time in ms, so a retried run skips what it already committed and a stale run never overwrites a newer one."""

    app_id: str
    version: int


def txn_app_id(stage: str, key: str, table: str, seq: int) -> str:
    """The app id of a run's ``seq``-th write to ``table`` (shared by every run of the same stage and key)."""
    return f"taosr1/{stage}/{key}/{table}#{seq}"


_commits = 0


def _crash_point() -> None:
    """Test hook for the kill-after-each-commit tests: with ``TAOSR1_CRASH_AFTER_COMMIT=N`` the process dies
    (exit 137, no cleanup, like kill -9) right after its N-th commit."""
    global _commits
    _commits += 1
    at = os.environ.get("TAOSR1_CRASH_AFTER_COMMIT")
    if at and _commits == int(at):
        os._exit(137)


def _predicate(where: Mapping[str, str]) -> str:
    """SQL text of an equality filter on partition columns (values are quoted and escaped)."""
    parts = []
    for col, val in where.items():
        escaped = str(val).replace("'", "''")
        parts.append(f"{col} = '{escaped}'")
    return " AND ".join(parts)


class TableStore(abc.ABC):
    """Reads and writes the project's tables by name; every write is checked against the table's contract."""

    backend: str = ""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.root = settings.warehouse_uri()

    # -- locations -------------------------------------------------------------------------------------------
    def path(self, table: str) -> str:
        """Location of a table: ``<warehouse>/<layer>/<table>``."""
        return table_path(self.root, table)

    def exists(self, table: str) -> bool:
        """Whether the table has a Delta log."""
        return DeltaTable.is_deltatable(self.path(table))

    def delta(self, table: str, version: int | None = None) -> DeltaTable:
        """The delta-rs handle of a table (log reader; works for tables either backend wrote)."""
        return DeltaTable(self.path(table), version=version)

    def version(self, table: str) -> int | None:
        """Current version, or ``None`` if the table does not exist yet."""
        return self.delta(table).version() if self.exists(table) else None

    def history(self, table: str) -> list[dict]:
        """Commit history, newest first."""
        return self.delta(table).history()

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self, table: str, version: int | None = None, *, check: bool = True) -> DataFrame:
        """Read a table (optionally an older version) as a Spark DataFrame in contract column order."""
        c = contracts.load(table)
        if not self.exists(table):
            raise FileNotFoundError(f"table '{table}' does not exist at {self.path(table)}; run the job that "
                                    f"writes it first")
        df = self._read(c, version)
        if check:
            c.check_schema(df.schema)
        return df.select(*[f.name for f in c.schema.fields])

    def count(self, table: str, where: Mapping[str, str] | None = None) -> int:
        """Row count of the current version (optionally of some partitions)."""
        df = self.read(table, check=False)
        if where:
            df = df.where(_predicate(where))
        return df.count()

    def register_views(self, tables: Sequence[str] | None = None) -> list[str]:
        """Make tables queryable by name in Spark SQL (temp views of the current versions)."""
        done = []
        for t in tables or contracts.all_tables():
            if self.exists(t):
                self.read(t, check=False).createOrReplaceTempView(t)
                done.append(t)
        return done

    # -- writing ---------------------------------------------------------------------------------------------
    def txn_version(self, table: str, app_id: str) -> int | None:
        """The highest version the table recorded for an application transaction (None: never committed)."""
        return self.delta(table).transaction_version(app_id) if self.exists(table) else None

    def write(self, table: str, df: DataFrame, mode: Mode = "append",
              replace: Mapping[str, str] | None = None, txn: Txn | None = None) -> WriteResult:
        """Append, overwrite the table, or (``mode="overwrite"`` + ``replace``) replace exactly some partitions.

        ``replace`` maps partition columns to values, e.g. ``{"ds": "2026-11-21"}``; a row outside it is an error,
        so a re-run of a day can never touch another day. The commit is atomic: readers see the old or the new
        version, never a half-written one.
        """
        c = contracts.load(table)
        df = c.conform(df)
        if replace:
            if mode != "overwrite":
                raise ValueError("replace= needs mode='overwrite'")
            unknown = [k for k in replace if k not in c.partition_by]
            if unknown:
                raise SchemaViolation(table, unknown[0], f"replace= names a column that is not a partition column "
                                                         f"(partitions: {list(c.partition_by)})")

        def attempt() -> WriteResult:
            done = self.txn_version(table, txn.app_id) if txn is not None else None
            if txn is not None and done is not None and done >= txn.version:  # this run's, or a newer run's, commit
                log_event(log, "table.commit_skipped", table=table, app_id=txn.app_id, txn_version=txn.version,
                          table_txn_version=done)
                return WriteResult(table, self.version(table) or 0, 0, 0, dict(replace or {}), skipped=True)
            return self._write(c, df, mode, dict(replace or {}), txn)

        result = with_commit_retries(table, attempt)
        if result.skipped:
            return result
        log_event(log, "table.commit", table=table, backend=self.backend, version=result.version,
                  rows=result.rows, files=result.files, mode=mode, replace=dict(replace or {}),
                  **({"app_id": txn.app_id} if txn else {}))
        _crash_point()
        return result

    def merge(self, table: str, df: DataFrame, keys: Sequence[str]) -> WriteResult:
        """Upsert ``df`` into ``table`` on ``keys`` (update matches, insert the rest) in one commit."""
        c = contracts.load(table)
        df = c.conform(df)
        if not self.exists(table):
            return with_commit_retries(table, lambda: self._write(c, df, "append", {}) if not self.exists(table)
                                       else self._merge(c, df, list(keys)))
        result = with_commit_retries(table, lambda: self._merge(c, df, list(keys)))
        log_event(log, "table.merge", table=table, backend=self.backend, version=result.version, rows=result.rows)
        _crash_point()
        return result

    def _check_primary_key(self, c: Contract, df: DataFrame) -> None:
        """One aggregate over the key columns of the rows being written: a key that occurs twice stops the write
        and is named. (Checked per write: a partition replacement covers the whole partition it replaces.)"""
        if not c.primary_key:
            return
        dup = (df.groupBy(*c.primary_key).count().where(F.col("count") > 1).limit(1).collect())
        if dup:
            key = {k: dup[0][k] for k in c.primary_key}
            raise SchemaViolation(c.table, ",".join(c.primary_key),
                                  f"primary key occurs {dup[0]['count']} times in one write: {key}")

    def _check_required_not_null(self, c: Contract, df: DataFrame, only: Sequence[str] | None = None) -> None:
        """One aggregate pass counting nulls in required fields (the delta-rs backend reads footers instead)."""
        names = list(only) if only is not None else c.required
        if not names:
            return
        row = df.select([F.sum(F.col(n).isNull().cast("long")).alias(n) for n in names]).first()
        for n in names:
            if row and row[n]:
                raise SchemaViolation(c.table, n, f"required field is null in {row[n]} row(s)")

    @abc.abstractmethod
    def _read(self, c: Contract, version: int | None) -> DataFrame: ...

    @abc.abstractmethod
    def _write(self, c: Contract, df: DataFrame, mode: Mode, replace: dict[str, str],
               txn: Txn | None = None) -> WriteResult: ...

    @abc.abstractmethod
    def _merge(self, c: Contract, df: DataFrame, keys: list[str]) -> WriteResult: ...
