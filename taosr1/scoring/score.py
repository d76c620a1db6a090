"""Nightly catalog scoring: the day's query-product pairs → label probabilities → CumPT tiers → ``relevance_scores``.

* input: every pair shown that day (silver ``search_log`` impressions, deduplicated), or a candidate table;
* product attributes are joined; pairs whose product is unknown or has no title go to quarantine with a reason, as
  do pairs the engine could not score (after bisecting and retrying);
* one forward pass per pair (``label_probs``), tiers by CumPT with the model's calibrated thresholds;
* the day's partition is replaced atomically (other model versions' rows of that day are kept, so drift between
  versions can be queried); ``incremental`` scores only pairs the current model version has not scored yet.
Counts add up: ``rows_in == scored (kept) + quarantined + already_scored (filtered)``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1.engine_stage import EngineStage
from taosr1.errors import InputError
from taosr1.ids import new_id
from taosr1.io.tables import TableStore
from taosr1.job import Context, Day, EngineParams
from taosr1.pairs import KEY, with_products
from taosr1.prompts.template import PROMPT_VERSION
from taosr1.quarantine import pair_key, pair_rows
from taosr1.scoring.cumpt import expected_relevance_column, level_column, tier_column

STAGE = "score_catalog"


class ScoreParams(EngineParams):
    ds: Day = Field(description="Day to score (yyyy-MM-dd).")
    beta_cum: float | None = Field(default=None, gt=0, le=1, description="CumPT threshold (default: the model's "
                                   "calibration, else 0.5).")
    candidates: str | None = Field(default=None, description="Candidate pairs table (Delta or Parquet) instead of "
                                   "the day's impressions.")
    incremental: bool = Field(default=False, description="Score only pairs not yet scored by this model version.")
    gate: bool = Field(default=True, description="Run the relevance_scores quality gate before publishing.")



def day_pairs(store: TableStore, ds: str, candidates: str | None = None) -> DataFrame:
    """Pairs to score: the day's impressions (distinct), or a candidate Delta/Parquet table with query_id, query,
    product_id (and optionally ds)."""
    spark = store.spark
    if candidates:
        from deltalake import DeltaTable

        if "://" not in candidates and not Path(candidates).exists():
            raise InputError(f"candidate table {candidates} does not exist")
        if ("://" in candidates or Path(candidates).is_dir()) and DeltaTable.is_deltatable(candidates):
            files = DeltaTable(candidates).file_uris()
            src = spark.read.option("basePath", candidates).parquet(*files) if files else None
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


class ScoreCatalog(EngineStage[ScoreParams]):
    """Score one day's query-product pairs into relevance_scores: label probabilities and CumPT tiers."""

    name = STAGE
    Params = ScoreParams
    reads = ("search_log", "products", "relevance_scores")
    writes = ("relevance_scores", "quarantine")

    def run_id(self, params: ScoreParams) -> str:
        return new_id(STAGE, params.ds)

    def run(self, ctx: Context, p: ScoreParams) -> None:
        store, ds, run_id = ctx.store, p.ds, ctx.run_id
        engine = self.engine(ctx, p, beta_cum=p.beta_cum)
        model = self.model(ctx)
        th = model.thresholds
        ctx.report.info.update(model_version=model.version, thresholds=model.threshold_params(),
                               params={"model_version": model.version, "thresholds": model.threshold_params()})
        c = ctx.report.counts
        pairs = day_pairs(store, ds, p.candidates).persist(StorageLevel.MEMORY_AND_DISK)
        existing = store.read("relevance_scores").where(F.col("ds") == ds) if store.exists("relevance_scores") \
            else None
        held = [pairs]
        try:
            c.rows_in = pairs.count()
            todo = pairs
            if p.incremental and existing is not None:
                done = existing.where(F.col("model_version") == model.version).select(*KEY)
                todo = pairs.join(done, KEY, "left_anti")
                c.filtered["already_scored"] = c.rows_in - todo.count()
            joined = with_products(store, todo)
            reason = (F.when(F.col("_known").isNull(), "unknown_product")
                      .when(F.col("title").isNull() | (F.trim("title") == ""), "empty_title")
                      .when(F.col("query").isNull() | (F.trim("query") == ""), "empty_query"))
            joined = joined.withColumn("reason", reason).persist(StorageLevel.MEMORY_AND_DISK)
            held.append(joined)
            rejected = joined.where("reason IS NOT NULL")
            to_score = joined.where("reason IS NULL").drop("reason", "_known")
            n_to_score = to_score.count()
            er = self.run_engine(ctx, engine, to_score, kind="label_probs", key=KEY, what=f"score {ds}",
                                 max_error_share=p.max_error_share, rows_in=n_to_score, expected_rows=n_to_score)
            held.append(er.all)
            scored = er.ok
            bad = pair_rows(rejected, F.col("reason")).select(*KEY, "query", "reason", "detail", "raw").unionByName(
                er.failed, allowMissingColumns=True).select(*KEY, "query", "reason", "detail", "raw")
            level = level_column(th)
            good = (scored.withColumn("level", level)
                    .select(F.lit(ds).alias("ds"), "query_id", "query", "product_id", "p4", "p3", "p2", "p1",
                            expected_relevance_column().alias("expected_relevance"),
                            "level", tier_column(F.col("level")).alias("tier"),
                            F.lit(th.beta_cum).cast("double").alias("beta_cum"),
                            F.lit(model.name).alias("model_name"), F.lit(model.version).alias("model_version"),
                            F.lit(PROMPT_VERSION).alias("prompt_version"), F.lit(engine.backend).alias("engine"),
                            F.lit(run_id).alias("run_id"), F.current_timestamp().alias("scored_at")))
            if p.gate:  # before publication
                from taosr1.quality.frames import relevance_frames
                from taosr1.quality.gates import require, run_gate

                # one row per distinct input pair not quarantined, counted on the input and on the quarantine
                # frame, never on the rows checked (a product listed twice would double its pairs)
                expected = todo.select(*KEY).distinct().count() - bad.select(*KEY).distinct().count()
                require(run_gate("relevance_scores", relevance_frames(good, th), f"{store.root}/quality",
                                 f"{STAGE}-{ds}", {"expected_rows": expected}))
            keep = None
            if existing is not None:
                keep = existing if p.incremental else existing.where(F.col("model_version") != model.version)
            out = good.unionByName(keep) if keep is not None else good
            n_keep = keep.count() if keep is not None else 0
            w = ctx.write("relevance_scores", out, "overwrite", replace={"ds": ds})
            q = ctx.quarantine(bad, key=pair_key())
            c.extra = {f"reason:{r['reason']}": r["n"] for r in bad.groupBy("reason").agg(F.count("*").alias("n"))
                       .collect()}
            c.quarantined = q.rows
            c.kept = w.rows - n_keep
            ctx.report.info["table_version"] = w.version
        finally:
            for df in held:
                df.unpersist()
