"""Nightly catalog scoring: the day's query-product pairs → label probabilities → CumPT tiers → ``relevance_scores``.

* input: every pair shown that day (silver ``search_log`` impressions, deduplicated), or a candidate table;
* product attributes are joined; pairs whose product is unknown or has no title go to quarantine with a reason, as
  do pairs the engine could not score (after bisecting and retrying);
* one forward pass per pair (``label_probs``), tiers by CumPT with the model's calibrated thresholds;
* the day's partition is replaced atomically (other model versions' rows of that day are kept, so drift between
  versions can be queried); ``--incremental`` scores only pairs the current model version has not scored yet.
Counts add up: ``pairs_in == scored + quarantined (+ already_scored in incremental mode)``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from taosr1.engines.base import EngineConfig
from taosr1.engines.spark_runner import with_label_probs
from taosr1.errors import CountMismatch, InputError
from taosr1.ingest.logs import quarantine_rows
from taosr1.io.tables import TableStore
from taosr1.model.loading import model_name, model_version
from taosr1.obs import get_logger, log_event
from taosr1.prompts.template import PROMPT_VERSION
from taosr1.runs import record_run
from taosr1.scoring.cumpt import Thresholds, level_column, load_thresholds, tier_column

log = get_logger(__name__)
STAGE = "score_catalog"
KEY = ["query_id", "product_id"]


@dataclass
class ScoreReport:
    ds: str
    run_id: str
    model_version: str
    thresholds: dict
    pairs_in: int = 0
    scored: int = 0
    quarantined: int = 0
    already_scored: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    table_version: int | None = None

    def adds_up(self) -> bool:
        return self.pairs_in == self.scored + self.quarantined + self.already_scored


def day_pairs(store: TableStore, ds: str, candidates: str | None = None) -> DataFrame:
    """Pairs to score: the day's impressions (distinct), or a candidate Delta/Parquet table with query_id, query,
    product_id (and optionally ds)."""
    spark = store.spark
    if candidates:
        from deltalake import DeltaTable

        if "://" not in candidates and not Path(candidates).exists():
            raise InputError(f"candidate table {candidates} does not exist")
        if ("://" in candidates or Path(candidates).is_dir()) and DeltaTable.is_deltatable(candidates):
            dt_ = DeltaTable(candidates)
            src = spark.read.option("basePath", candidates).parquet(*dt_.file_uris()) if dt_.file_uris() else None
        else:
            src = spark.read.parquet(candidates)
        if src is None:
            return spark.createDataFrame([], "query_id string, query string, product_id string")
        missing = [c for c in ("query_id", "query", "product_id") if c not in src.columns]
        if missing:
            raise InputError(f"candidate table {candidates} lacks column(s) {missing}")
        if "ds" in src.columns:
            src = src.where(F.col("ds") == ds)
        return src.select("query_id", "query", "product_id").dropDuplicates(KEY)
    if not store.exists("search_log"):
        raise InputError("no silver search_log table: run `taosr1 ingest` first (or pass --candidates)")
    shown = store.read("search_log").where((F.col("ds") == ds) & (F.col("event_type") == "impression"))
    return shown.groupBy(*KEY).agg(F.min("query").alias("query"))


def _with_products(store: TableStore, pairs: DataFrame) -> DataFrame:
    products = store.read("products").dropDuplicates(["product_id"]).select(
        "product_id", "title", "category", "brand", "price", "attributes", "description",
        F.lit(True).alias("_known"))
    return pairs.join(products, "product_id", "left")


def score_catalog(spark: SparkSession, store: TableStore, ds: str, engine: EngineConfig, *,
                  beta_cum: float | None = None, candidates: str | None = None, incremental: bool = False,
                  run_id: str | None = None, gate: bool = True) -> ScoreReport:
    """Score one day into ``relevance_scores`` (see module docstring)."""
    try:
        dt.date.fromisoformat(ds)
    except ValueError as e:
        raise InputError(f"--ds must be yyyy-MM-dd, got {ds!r}") from e
    version = model_version(engine.model_path)
    th, origin = (Thresholds.cum(beta_cum), f"beta_cum={beta_cum}") if beta_cum is not None else \
        load_thresholds(engine.model_path)
    run_id = run_id or f"{STAGE}-{ds}-{uuid.uuid4().hex[:8]}"
    rep = ScoreReport(ds, run_id, version, {"t4": th.t4, "t3": th.t3, "t2": th.t2, "origin": origin})
    params = {"engine": engine.backend, "model": engine.model_path, "candidates": candidates,
              "incremental": incremental, "thresholds": rep.thresholds}
    with record_run(store, STAGE, run_id, ds=ds, params=params) as rec:
        pairs = day_pairs(store, ds, candidates).persist(StorageLevel.MEMORY_AND_DISK)
        rep.pairs_in = pairs.count()
        existing = (store.read("relevance_scores").where(F.col("ds") == ds)
                    if store.exists("relevance_scores") else None)
        todo = pairs
        if incremental and existing is not None:
            done = existing.where(F.col("model_version") == version).select(*KEY)
            todo = pairs.join(done, KEY, "left_anti")
            rep.already_scored = rep.pairs_in - todo.count()
        joined = _with_products(store, todo)
        reason = (F.when(F.col("_known").isNull(), "unknown_product")
                  .when(F.col("title").isNull() | (F.trim("title") == ""), "empty_title")
                  .when(F.col("query").isNull() | (F.trim("query") == ""), "empty_query"))
        joined = joined.withColumn("reason", reason)
        rejected = joined.where("reason IS NOT NULL")
        to_score = joined.where("reason IS NULL").drop("reason", "_known")
        n_todo = rep.pairs_in - rep.already_scored
        scored = with_label_probs(to_score.repartition(max(1, spark.sparkContext.defaultParallelism))
                                  if not _remote(spark) else to_score, engine,
                                  expected_rows=n_todo).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            failed = scored.where("error IS NOT NULL").withColumn("reason", F.lit("engine_error")) \
                .withColumn("detail", F.col("error"))
            bad = (rejected.withColumn("detail", F.concat(F.lit("product_id="), F.col("product_id")))
                   .select(*KEY, "query", "reason", "detail")
                   .unionByName(failed.select(*KEY, "query", "reason", "detail")))
            bad = bad.withColumn("raw", F.to_json(F.struct(*KEY, "query")))
            now = F.current_timestamp()
            level = level_column(th)
            good = (scored.where("error IS NULL")
                    .withColumn("level", level)
                    .select(F.lit(ds).alias("ds"), "query_id", "query", "product_id", "p4", "p3", "p2", "p1",
                            (F.col("p4") * 4 + F.col("p3") * 3 + F.col("p2") * 2 + F.col("p1")).alias(
                                "expected_relevance"),
                            "level", tier_column(F.col("level")).alias("tier"),
                            F.lit(float(th.beta_cum)).alias("beta_cum"),
                            F.lit(model_name(engine.model_path)).alias("model_name"),
                            F.lit(version).alias("model_version"), F.lit(PROMPT_VERSION).alias("prompt_version"),
                            F.lit(engine.backend).alias("engine"), F.lit(run_id).alias("run_id"),
                            now.alias("scored_at")))
            if gate:  # before publication: probabilities, tier consistency, one row per scored pair
                from taosr1.quality.frames import relevance_frames
                from taosr1.quality.gates import require, run_gate

                expected = scored.count() - failed.count()
                require(run_gate("relevance_scores", relevance_frames(good, level_column(th)),
                                 f"{store.root}/quality", f"{STAGE}-{ds}", {"expected_rows": expected}))
            keep = None
            if existing is not None:
                keep = existing if incremental else existing.where(F.col("model_version") != version)
            out = good.unionByName(keep) if keep is not None else good
            w = store.write("relevance_scores", out, "overwrite", replace={"ds": ds})
            q = store.write("quarantine", quarantine_rows(bad, stage=STAGE, ds=ds, run_id=run_id,
                                                          key=F.concat_ws("|", *KEY)),
                            "overwrite", replace={"stage": STAGE, "ds": ds})
            rep.reasons = {r["reason"]: r["n"] for r in bad.groupBy("reason").agg(F.count("*").alias("n")).collect()}
        finally:
            scored.unpersist()
            pairs.unpersist()
        rep.table_version = w.version
        rep.quarantined = store.count("quarantine", {"stage": STAGE, "ds": ds})
        mine = store.read("relevance_scores").where((F.col("ds") == ds) & (F.col("model_version") == version))
        rep.scored = mine.where(F.col("run_id") == run_id).count()
        if not rep.adds_up():
            raise CountMismatch(f"score {ds}: pairs_in {rep.pairs_in} != scored {rep.scored} + quarantined "
                                f"{rep.quarantined} + already scored {rep.already_scored}")
        if rep.pairs_in == 0:
            log_event(log, "score.no_input", ds=ds, note="wrote an empty partition")
        rec.counts.update(pairs_in=rep.pairs_in, scored=rep.scored, quarantined=rep.quarantined,
                          already_scored=rep.already_scored, **{f"reason:{k}": v for k, v in rep.reasons.items()})
        rec.table_versions.update(relevance_scores=w.version, quarantine=q.version)
    log_event(log, "score.done", ds=ds, model_version=version, pairs_in=rep.pairs_in, scored=rep.scored,
              quarantined=rep.quarantined, already_scored=rep.already_scored, version=w.version)
    return rep


def _remote(spark: SparkSession) -> bool:
    from taosr1.spark import is_remote

    return is_remote(spark)
