"""Search-log ingestion: raw files → bronze (as they came) → silver (typed, valid, deduplicated) + quarantine.

Per day, in one pass over the input (persisted once):
* every input row lands in bronze with its file and row number;
* each row is classified: ``quarantine`` (first failing rule gives the reason), ``duplicate`` (an ``event_id``
  already seen earlier in the day) or ``silver``;
* bronze, silver and quarantine partitions of that day are *replaced*, so re-running a day never duplicates;
* ``rows_in == silver (kept) + quarantined + duplicates (filtered)`` is checked against what the commits made
  visible.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from taosr1.errors import CountMismatch, InputError
from taosr1.ids import new_id
from taosr1.io.tables import TableStore
from taosr1.job import Context, Day, Params, Report, Stage, run_stage
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)
STAGE = "ingest_logs"
EVENT_TYPES = ("impression", "click", "add_to_cart", "order")
RAW_FIELDS = ("event_id", "event_type", "ts", "session_id", "user_id", "query_id", "query", "product_id", "position")
REQUIRED = ("event_id", "event_type", "ts", "session_id", "query", "product_id", "position")
TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss[.SSS][.SS][.S]XXX"


def day_files(input_path: str, ds: str) -> list[str]:
    """Input files of one day: ``<input>/ds=<day>/*.jsonl|*.json|*.parquet`` (a day folder may be empty)."""
    folder = Path(input_path) / f"ds={ds}"
    if not folder.is_dir():
        return []
    return sorted(str(p.resolve()) for p in folder.iterdir()
                  if p.suffix in (".jsonl", ".json", ".parquet") and not p.name.startswith(("_", ".")))


def days_between(start: str, end: str | None) -> list[str]:
    """Every day from ``start`` to ``end`` inclusive (yyyy-MM-dd); a bad date is an InputError naming it."""
    try:
        a = dt.date.fromisoformat(start)
        b = dt.date.fromisoformat(end or start)
    except ValueError as e:
        raise InputError(f"dates must be yyyy-MM-dd: {e}") from e
    if b < a:
        raise InputError(f"end {b} is before start {a}")
    return [f"{a + dt.timedelta(days=i):%Y-%m-%d}" for i in range((b - a).days + 1)]


def read_raw(spark: SparkSession, files: list[str]) -> DataFrame:
    """Rows as they came: ``source_file``, ``source_row`` (the 1-based line number, as an editor shows it) and
    ``raw`` (a JSON text)."""
    frames = []
    jsonl = [f for f in files if not f.endswith(".parquet")]
    parquet = [f for f in files if f.endswith(".parquet")]
    if jsonl:
        frames.append(spark.read.text(jsonl).select(F.input_file_name().alias("source_file"),
                                                     F.col("value").alias("raw")))
    if parquet:
        pq = spark.read.parquet(*parquet)
        cols = [c for c in pq.columns if c != "raw_text"]
        raw = F.to_json(F.struct(*cols))
        if "raw_text" in pq.columns:  # a record that could not be parsed upstream keeps its text
            raw = F.coalesce(F.col("raw_text"), raw)
        frames.append(pq.select(F.input_file_name().alias("source_file"), raw.alias("raw")))
    df = frames[0]
    for f in frames[1:]:
        df = df.unionByName(f)
    order = Window.partitionBy("source_file").orderBy("_mono")
    return (df.withColumn("_mono", F.monotonically_increasing_id())
            .withColumn("source_row", F.row_number().over(order).cast("long"))
            .drop("_mono"))


MAX_CHARS = {"query": 500, "event_id": 200, "session_id": 200, "user_id": 200, "query_id": 200, "product_id": 200}
ID_FIELDS = ("event_id", "session_id", "user_id", "query_id", "product_id")
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # C0 controls but tab, newline and carriage return, and DEL


def _reason(ds: str) -> Column:
    """The first rule a row breaks, as a reason code; null for a valid row."""
    j = lambda n: F.col(f"j.{n}")  # noqa: E731
    ts = F.try_to_timestamp(j("ts"), F.lit(TS_FORMAT))
    pos = F.expr("try_cast(j.position AS INT)")
    rules: list[tuple[Column, Column]] = [
        (F.col("_undecodable"), F.lit("undecodable_bytes")),
        (F.col("j._corrupt").isNotNull() | F.col("j").isNull(), F.lit("malformed_json"))]
    for n in RAW_FIELDS:  # an object or an array where a scalar belongs is never turned into text
        rules.append((F.col("raw").rlike(f'"{n}"\\s*:\\s*[\\[{{]'), F.lit(f"wrong_type:{n}")))
    for n in REQUIRED:
        rules.append((j(n).isNull() | (F.trim(j(n)) == ""), F.lit(f"missing_field:{n}")))
    for n in ID_FIELDS:
        rules.append((j(n).rlike(CONTROL), F.lit(f"control_characters:{n}")))
    for n, cap in MAX_CHARS.items():
        rules.append((F.length(j(n)) > cap, F.lit(f"too_long:{n}")))
    rules += [
        (~j("event_type").isin(*EVENT_TYPES), F.lit("invalid_event_type")),
        (ts.isNull(), F.lit("invalid_timestamp")),
        (F.date_format(ts, "yyyy-MM-dd") != F.lit(ds), F.lit("timestamp_outside_day")),
        (pos.isNull() | (pos < 1), F.lit("invalid_position")),
    ]
    expr = F.lit(None).cast("string")
    for cond, reason in reversed(rules):
        expr = F.when(cond, reason).otherwise(expr)
    return expr


def _detail(reason: Column) -> Column:
    return (F.when(reason == "invalid_event_type", F.concat(F.lit("event_type="), F.col("j.event_type")))
            .when(reason.isin("invalid_timestamp", "timestamp_outside_day"), F.concat(F.lit("ts="), F.col("j.ts")))
            .when(reason == "invalid_position", F.concat(F.lit("position="), F.col("j.position")))
            .when(reason == "malformed_json", F.lit("not a JSON object"))
            .when(reason == "conflicting_duplicate", F.concat(F.lit("event_id="), F.col("j.event_id"),
                                                              F.lit(" arrived with different content")))
            .when(reason.startswith("too_long:"), F.lit("longer than the field's cap"))
            .when(reason == "undecodable_bytes", F.lit("not UTF-8; raw kept as base64"))
            .otherwise(F.lit(None)))


def classify(raw: DataFrame, ds: str) -> DataFrame:
    """Parse and classify every row: ``status`` is silver | duplicate | quarantine (with ``reason``).

    Bytes that are not UTF-8 are kept as ``base64:<bytes>`` so every reader can read bronze and quarantine; an
    ``event_id`` seen twice with *different* content is a conflict (all its rows quarantined), identical repeats
    are duplicates."""
    bytes_ = F.col("raw").cast("binary")
    undecodable = F.col("raw") != F.decode(F.encode(F.col("raw"), "UTF-8"), "UTF-8")
    raw = (raw.withColumn("_undecodable", F.coalesce(undecodable, F.lit(False)))
           .withColumn("raw", F.when(F.col("_undecodable"), F.concat(F.lit("base64:"), F.base64(bytes_)))
                       .otherwise(F.col("raw"))))
    schema = ", ".join(f"{n} string" for n in RAW_FIELDS) + ", _corrupt string"
    parsed = raw.withColumn("j", F.from_json("raw", schema, {"mode": "PERMISSIVE",
                                                              "columnNameOfCorruptRecord": "_corrupt"}))
    parsed = parsed.withColumn("reason", _reason(ds))
    content = F.sha2(F.to_json(F.struct(*[F.col(f"j.{n}") for n in RAW_FIELDS if n != "event_id"])), 256)
    by_event = Window.partitionBy(F.col("j.event_id"))
    versions = F.size(F.collect_set(F.when(F.col("reason").isNull(), content)).over(by_event))
    parsed = parsed.withColumn("reason", F.when(F.col("reason").isNull() & (versions > 1),
                                                F.lit("conflicting_duplicate")).otherwise(F.col("reason")))
    parsed = parsed.withColumn("detail", _detail(F.col("reason")))
    first = Window.partitionBy(F.col("j.event_id")).orderBy("source_file", "source_row")
    rank = F.when(F.col("reason").isNull(), F.row_number().over(first))
    return (parsed.withColumn("_rank", rank)
            .withColumn("status", F.when(F.col("reason").isNotNull(), "quarantine")
                        .when(F.col("_rank") == 1, "silver").otherwise("duplicate"))
            .drop("_rank", "_undecodable"))


def _clean_query(q: Column) -> Column:
    """The query as users typed it, minus control characters (each becomes a space) and runs of white space."""
    return F.trim(F.regexp_replace(F.regexp_replace(q, CONTROL, " "), r"\s+", " "))


def _silver(classified: DataFrame, ds: str, run_id: str) -> DataFrame:
    j = lambda n: F.col(f"j.{n}")  # noqa: E731
    qid = F.coalesce(F.when(F.trim(j("query_id")) != "", j("query_id")),
                     F.concat(F.lit("q-"), F.regexp_replace(F.lower(F.trim(j("query"))), r"\s+", "-")))
    return classified.where("status = 'silver'").select(
        F.lit(ds).alias("ds"), j("event_id").alias("event_id"), j("event_type").alias("event_type"),
        F.try_to_timestamp(j("ts"), F.lit(TS_FORMAT)).alias("ts"), j("session_id").alias("session_id"),
        j("user_id").alias("user_id"), qid.alias("query_id"), _clean_query(j("query")).alias("query"),
        j("product_id").alias("product_id"), F.expr("try_cast(j.position AS INT)").alias("position"),
        "source_file", "source_row", F.lit(run_id).alias("ingest_run_id"))


class IngestParams(Params):
    input: str = Field(default="warehouse/raw/search_logs", description="Raw log folder with ds=yyyy-MM-dd/ "
                       "sub-folders.")
    ds: Day = Field(description="The day to ingest (yyyy-MM-dd).")
    gate: bool = Field(default=True, description="Run the search_log quality gate before publishing.")
    min_valid_share: float = Field(default=0.9, ge=0, le=1, description="Gate: least share of valid rows.")
    gate_sample_rows: int = Field(default=100_000, ge=1, description="Gate: row-level expectations run on at most "
                                  "this many silver rows (a seeded sample); the whole day is checked by aggregates.")
    data_docs: bool = Field(default=True, description="Rebuild the Data Docs site after a passing gate (a failing "
                            "gate always does); a multi-day ingest rebuilds it once, after its last day.")



class IngestDay(Stage[IngestParams]):
    """One day of raw logs → bronze, silver and quarantine partitions of that day, replaced together once the
    quality gate (``quality/search_log.json``) passed; a failing gate raises and leaves every table as it was."""

    name = STAGE
    Params = IngestParams
    reads = ()
    writes = ("search_log_bronze", "search_log", "quarantine")

    def run_id(self, params: IngestParams) -> str:
        return new_id(STAGE, params.ds)

    def run(self, ctx: Context, p: IngestParams) -> None:
        if not Path(p.input).exists():
            raise InputError(f"input path {p.input} does not exist")
        spark, store, ds = ctx.spark, ctx.store, p.ds
        files = day_files(p.input, ds)
        ctx.report.info["params"] = {"files": len(files)}
        if not files:
            log_event(log, "ingest.no_input", ds=ds, input=p.input)
            raw = spark.createDataFrame([], "source_file string, raw string, source_row long")
        else:
            raw = read_raw(spark, files)
        classified = classify(raw, ds).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # every count the run checks comes from this one aggregation (no count per table, no re-count)
            by_status_reason = classified.groupBy("status", "reason").agg(F.count("*").alias("n")).collect()
            expected: dict[str, int] = {}
            reasons: dict[str, int] = {}
            for r in by_status_reason:
                expected[r["status"]] = expected.get(r["status"], 0) + r["n"]
                if r["reason"] is not None:
                    reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["n"]
            bronze = classified.select(F.lit(ds).alias("ds"), "source_file", "source_row", "raw",
                                       F.lit(ctx.run_id).alias("ingest_run_id"),
                                       F.current_timestamp().alias("ingested_at"))
            part = {"ds": ds}
            silver = _silver(classified, ds, ctx.run_id)
            if p.gate and files:  # before anything of the day is published
                from taosr1.quality.frames import search_log_frames
                from taosr1.quality.gates import require, run_gate

                require(run_gate("search_log", search_log_frames(silver, expected, p.gate_sample_rows),
                                 f"{store.root}/quality", f"{STAGE}-{ds}", {"min_valid_share": p.min_valid_share},
                                 docs=p.data_docs))
            w_bronze = ctx.write("search_log_bronze", bronze, "overwrite", replace=part)
            w_silver = ctx.write("search_log", silver, "overwrite", replace=part)
            w_quar = ctx.quarantine(classified.where("status = 'quarantine'"), key=F.col("j.event_id"))
        finally:
            classified.unpersist()
        # what the commits made visible, against what classification counted
        c = ctx.report.counts
        c.rows_in, c.kept, c.quarantined = w_bronze.rows, w_silver.rows, w_quar.rows
        c.filtered = {"duplicate": int(expected.get("duplicate", 0))}
        c.extra = {f"reason:{k}": v for k, v in reasons.items()}
        want = (sum(expected.values()), expected.get("silver", 0), expected.get("quarantine", 0))
        if want != (c.rows_in, c.kept, c.quarantined):
            raise CountMismatch(f"ingest of {ds}: classified (in, silver, quarantine) = {want} but the commits hold "
                                f"{(c.rows_in, c.kept, c.quarantined)}; dedup {c.filtered['duplicate']}")


def ingest_logs(store: TableStore, input_path: str, start: str, end: str | None = None,
                **options: Any) -> list[Report]:
    """Ingest every day in ``[start, end]``; each day is its own idempotent run, recorded in ``job_runs``, with
    ``options`` the other :class:`IngestParams` fields. Data Docs are rebuilt once, after the last day, not per day."""
    days = days_between(start, end)
    return [run_stage(IngestDay(), store, IngestParams(input=input_path, ds=ds, **options, data_docs=ds == days[-1]))
            for ds in days]
