"""Candidate pairs from search logs: silver ``search_log`` over a window → ``candidate_pairs``.

One row per (query, product) pair with at least one impression in the window: engagement (impressions, clicks,
carts, orders, CTR, positions, first and last day), the query's traffic and band (head / torso / tail by the
percentile of its impressions among the window's queries), its type from the tagger, the human label where one
exists and the current model's probabilities and entropy where the pair was scored. Every impression of the window
is counted in exactly one row (checked); a day of the window without silver rows is reported; re-runs replace the
window's partition.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from taosr1.engine_stage import ENGINE_ERROR, EngineStage
from taosr1.errors import CountMismatch, InputError
from taosr1.ids import new_id
from taosr1.io.tables import TableStore
from taosr1.job import Context, Day, EngineParams
from taosr1.knowledge.tagger import TaggerRules
from taosr1.obs import get_logger, log_event
from taosr1.pairs import KEY
from taosr1.quarantine import pair_key, pair_rows

log = get_logger(__name__)
STAGE = "sample_candidates"
PROBS = ("p4", "p3", "p2", "p1")


class CandidatesParams(EngineParams):
    start: Day = Field(description="First day of the window (yyyy-MM-dd).")
    end: Day = Field(description="Last day of the window (inclusive).")
    rules: str | None = Field(default=None, description="Your own query-type rules (JSON, the shipped file's shape).")
    tagger: Literal["rules", "engine"] = Field(default="rules", description="rules, or an engine (--engine, --model) "
                                               "asked per distinct query, with the rules where it names no type")
    head_quantile: float = Field(default=0.9, gt=0, lt=1, description="Queries at or above this percentile of "
                                 "traffic are head.")
    torso_quantile: float = Field(default=0.5, gt=0, lt=1, description="… at or above this one torso, the rest "
                                  "tail.")

    @model_validator(mode="after")
    def _ordered(self) -> "CandidatesParams":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.torso_quantile >= self.head_quantile:
            raise ValueError("torso_quantile must be below head_quantile")
        return self

    @property
    def window_id(self) -> str:
        return f"{self.start}_{self.end}"


def window_days(start: str, end: str) -> list[str]:
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [f"{a + dt.timedelta(days=i):%Y-%m-%d}" for i in range((b - a).days + 1)]


def human_labels(store: TableStore) -> DataFrame:
    """Each judged pair's most frequent label (ties: the higher) and its number of judgments, over all sources."""
    if not store.exists("query_product_labels"):
        return store.spark.createDataFrame([], "query_id string, product_id string, label int, n_judgments int")
    votes = store.read("query_product_labels").groupBy(*KEY, "label").agg(F.count("*").alias("n"))
    w = Window.partitionBy(*KEY).orderBy(F.desc("n"), F.desc("label"))
    return (votes.withColumn("r", F.row_number().over(w)).withColumn("n_judgments", F.sum("n").over(
        Window.partitionBy(*KEY))).where("r = 1").select(*KEY, "label", F.col("n_judgments").cast("int")))


def latest_scores(store: TableStore, start: str, end: str) -> DataFrame:
    """The newest probabilities of each pair scored in the window (any model version), with their entropy."""
    if not store.exists("relevance_scores"):
        return store.spark.createDataFrame([], "query_id string, product_id string, p4 double, p3 double, "
                                               "p2 double, p1 double, entropy double, scored_model_version string")
    s = store.read("relevance_scores").where((F.col("ds") >= start) & (F.col("ds") <= end))
    w = Window.partitionBy(*KEY).orderBy(F.desc("scored_at"), F.desc("ds"))
    entropy = sum((-F.col(p) * F.log(F.greatest(F.col(p), F.lit(1e-12))) for p in PROBS), F.lit(0.0))
    return (s.withColumn("r", F.row_number().over(w)).where("r = 1")
            .select(*KEY, *PROBS, entropy.alias("entropy"), F.col("model_version").alias("scored_model_version")))


class SampleCandidates(EngineStage[CandidatesParams]):
    """Candidate pairs of a window of search logs, with traffic band, query type, labels and model uncertainty."""

    name = STAGE
    Params = CandidatesParams
    reads = ("search_log", "query_product_labels", "relevance_scores")
    writes = ("candidate_pairs", "quarantine")

    def run_id(self, params: CandidatesParams) -> str:
        return new_id("candidates", params.window_id)

    def run(self, ctx: Context, p: CandidatesParams) -> None:
        store = ctx.store
        if not store.exists("search_log"):
            raise InputError("no silver search_log table: run `taosr1 ingest` first")
        rules = TaggerRules.load(p.rules)
        days = window_days(p.start, p.end)
        logs = store.read("search_log").where((F.col("ds") >= p.start) & (F.col("ds") <= p.end))
        present = {r["ds"] for r in logs.select("ds").distinct().collect()}
        missing = [d for d in days if d not in present]
        if missing:
            log_event(log, "candidates.missing_days", window=p.window_id, missing=missing)
        is_ = lambda t: F.sum((F.col("event_type") == t).cast("long"))  # noqa: E731
        imp = F.col("event_type") == "impression"
        pairs = (logs.groupBy(*KEY).agg(
            F.min(F.when(imp, F.col("query"))).alias("query"), is_("impression").alias("impressions"),
            is_("click").alias("clicks"), is_("add_to_cart").alias("add_to_carts"), is_("order").alias("orders"),
            F.avg(F.when(imp, F.col("position"))).alias("mean_position"),
            F.min(F.when(imp, F.col("position"))).alias("best_position"),
            F.min(F.when(imp, F.col("ds"))).alias("first_seen"), F.max(F.when(imp, F.col("ds"))).alias("last_seen"))
            .persist())
        try:
            shown = pairs.where("impressions > 0")
            q_traffic = shown.groupBy("query_id").agg(F.sum("impressions").alias("query_impressions"))
            rank = F.percent_rank().over(Window.orderBy("query_impressions"))
            q_traffic = q_traffic.withColumn("pr", rank).withColumn(
                "traffic_band", F.when(F.col("pr") >= p.head_quantile, "head")
                .when(F.col("pr") >= p.torso_quantile, "torso").otherwise("tail")).drop("pr")
            qtype, tagger_version = rules.column(F.col("query")), rules.version
            rejected, held = None, []
            if p.tagger == "engine":
                from taosr1.knowledge.tagger import engine_type_column, type_messages

                engine = self.engine(ctx, p)
                queries = shown.groupBy("query_id").agg(F.min("query").alias("query"))
                er = self.run_engine(ctx, engine, queries, kind="samples", key=["query_id"],
                                     what=f"query-type tagger of {p.window_id}", max_error_share=p.max_error_share,
                                     n=1, temperature=0.0, max_new_tokens=6, messages=type_messages)
                asked = er.ok.select("query_id", engine_type_column(F.col("text")).alias("engine_type")).persist()
                n_named = asked.where("engine_type IS NOT NULL").count()
                # the pairs of a query the engine failed on go to quarantine with its message, not to the rules
                failed_q = er.failed.select("query_id", "detail")
                rejected = pair_rows(shown.join(failed_q, "query_id"), ENGINE_ERROR, F.col("detail")).persist()
                held += [er.all, asked, rejected]
                shown = shown.join(failed_q, "query_id", "left_anti").join(asked, "query_id", "left")
                qtype = F.coalesce(F.col("engine_type"), qtype)
                tagger_version = f"engine:{engine.backend}:{self.model(ctx).version}+{rules.version}"
                ctx.report.info["engine_named_types"] = n_named
            out = (shown.join(q_traffic, "query_id")
                   .join(human_labels(store), KEY, "left").join(latest_scores(store, p.start, p.end), KEY, "left")
                   .select(F.lit(p.window_id).alias("window_id"), "query_id", "query", "product_id", "impressions",
                           "clicks", "add_to_carts", "orders", (F.col("clicks") / F.col("impressions")).alias("ctr"),
                           "mean_position", F.col("best_position").cast("int").alias("best_position"),
                           "first_seen", "last_seen", "query_impressions", "traffic_band",
                           qtype.alias("query_type"), F.lit(tagger_version).alias("tagger_version"), "label",
                           F.coalesce("n_judgments", F.lit(0)).cast("int").alias("n_judgments"), *PROBS, "entropy",
                           "scored_model_version", F.lit(ctx.run_id).alias("run_id"),
                           F.current_timestamp().alias("created_at")))
            c = ctx.report.counts
            totals = pairs.agg(F.count("*").alias("pairs"), F.sum("impressions").alias("impressions"),
                               F.sum(F.when(F.col("impressions") == 0, 1).otherwise(0)).alias("no_imp")).first()
            c.rows_in = int(totals["pairs"])
            c.filtered["engagement_without_impression"] = int(totals["no_imp"] or 0)
            w = ctx.write("candidate_pairs", out, "overwrite", replace={"window_id": p.window_id})
            c.kept = w.rows
            lost_imp = 0
            if rejected is not None:
                lost_imp = int(rejected.agg(F.sum("impressions")).first()[0] or 0)
                c.quarantined = ctx.quarantine(rejected, ds=p.window_id, key=pair_key()).rows
            written = store.read("candidate_pairs").where(F.col("window_id") == p.window_id)
            got = written.agg(F.sum("impressions")).first()[0] or 0
            want = logs.where(imp).count() - lost_imp
            if got != want:
                raise CountMismatch(f"candidates {p.window_id}: {want} impressions in the logs (less those of "
                                    f"quarantined pairs), {got} in the pairs")
            mix = written.groupBy("query_type", "traffic_band").count().collect()
            c.extra = {"impressions": int(want), "missing_days": len(missing),
                       **{f"mix:{r['query_type']}:{r['traffic_band']}": r["count"] for r in mix}}
            ctx.report.info.update(window_id=p.window_id, missing_days=missing,
                                   params={"tagger_version": tagger_version, "missing_days": missing})
        finally:
            for df in [pairs, *held]:
                df.unpersist()
