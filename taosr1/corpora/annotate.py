"""The annotation queue: unlabelled candidates for raters, stratified and least certain first.

Strata are query type × traffic band. The budget is shared over strata in proportion to a type mix that
over-weights the hard types (negation, alternative, Q&A, knowledge), capped by what each stratum holds (what a
stratum cannot use goes to the others). Inside a stratum, pairs the current model is least sure of (entropy of
p4..p1) come first, unscored pairs after them in a seeded order. Pairs already queued in an earlier round are not
queued again. Writes ``annotation_queue`` and an export a rater tool loads (CSV and JSONL, with the rubric).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import Field, field_validator
from pyspark.sql import Window
from pyspark.sql import functions as F

from taosr1.ids import new_id
from taosr1.knowledge.tagger import TYPES
from taosr1.errors import InputError
from taosr1.io.csv_safe import write_csv
from taosr1.job import Context, Ident, Params, Stage
from taosr1.labels import LABEL_TEXT, LEVELS, rubric_text
from taosr1.pairs import KEY, bucket_hash, with_products

STAGE = "annotate_candidates"
DEFAULT_MIX = {"negation": 3.0, "alternative": 3.0, "qa": 3.0, "knowledge": 3.0, "plain": 1.0}


class AnnotateParams(Params):
    window_id: Ident = Field(description="Candidate window (start_end) from `corpus candidates`.")
    budget: int = Field(ge=1, le=1_000_000, description="Pairs to queue.")
    queue_id: Ident | None = Field(default=None, description="Id of this round (default: generated).")
    mix: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIX),
                                  description="Weight per query type, TYPE=W repeated (default: the hard types 3, "
                                              "plain 1; types not named keep their default).")
    seed: int = 13
    export_dir: str | None = Field(default=None, description="Folder for the CSV/JSONL export (default "
                                   "<warehouse>/exports/annotation).")

    @field_validator("mix")
    @classmethod
    def _mix(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k in v if k not in TYPES]
        if bad:
            raise ValueError(f"unknown query type {bad[0]!r} (types: {', '.join(TYPES)})")
        values = {k: float(x) for k, x in v.items()}
        if any(x < 0 for x in values.values()) or not any(values.values()):
            raise ValueError("weights must be >= 0 and not all 0")
        return {**DEFAULT_MIX, **values}  # types not named keep their default weight


def allocate(available: dict[tuple[str, str], int], weights: dict[str, float], budget: int) -> dict:
    """Quotas per stratum: proportional to the type's weight, capped by availability; leftovers flow to strata
    that still have pairs (water-filling), so the whole budget is used when enough pairs exist."""
    quota = {s: 0 for s in available}
    left = min(budget, sum(available.values()))
    while left > 0:
        open_ = {s: weights.get(s[0], 0.0) for s in available if quota[s] < available[s] and weights.get(s[0], 0.0) > 0}
        if not open_:
            break
        total = sum(open_.values())
        given = 0
        for s, w in sorted(open_.items()):
            share = max(1, int(left * w / total)) if given < left else 0
            take = min(share, available[s] - quota[s], left - given)
            quota[s] += take
            given += take
        left -= given
        if given == 0:
            break
    return quota


class Annotate(Stage[AnnotateParams]):
    """Queue unlabelled candidates for raters (stratified, least certain first) and export them with the rubric."""

    name = STAGE
    Params = AnnotateParams
    reads = ("candidate_pairs", "annotation_queue", "products")
    writes = ("annotation_queue",)

    def run_id(self, params: AnnotateParams) -> str:
        return params.queue_id or new_id("queue", params.window_id)

    def run(self, ctx: Context, p: AnnotateParams) -> None:
        store, queue_id = ctx.store, ctx.run_id
        if not store.exists("candidate_pairs"):
            raise InputError("no candidate_pairs table: run `taosr1 corpus candidates` first")
        cands = store.read("candidate_pairs").where(F.col("window_id") == p.window_id)
        c = ctx.report.counts
        c.rows_in = cands.count()
        if c.rows_in == 0:
            raise InputError(f"candidate window {p.window_id} has no pairs")
        unlabelled = cands.where("label IS NULL")
        c.filtered["already_labelled"] = c.rows_in - unlabelled.count()
        if store.exists("annotation_queue"):
            queued = store.read("annotation_queue").where(F.col("queue_id") != queue_id).select(*KEY).distinct()
            fresh = unlabelled.join(queued, KEY, "left_anti")
        else:
            fresh = unlabelled
        fresh = fresh.persist()
        try:
            n_fresh = fresh.count()
            c.filtered["queued_before"] = c.rows_in - c.filtered["already_labelled"] - n_fresh
            available = {(r["query_type"], r["traffic_band"]): r["count"]
                         for r in fresh.groupBy("query_type", "traffic_band").count().collect()}
            quota = allocate(available, p.mix, p.budget)
            quotas = ctx.spark.createDataFrame([(t, b, q) for (t, b), q in quota.items()],
                                               "query_type string, traffic_band string, quota int")
            order = [F.col("entropy").desc_nulls_last(), bucket_hash(KEY, p.seed)]
            ranked = fresh.withColumn("stratum_rank", F.row_number().over(
                Window.partitionBy("query_type", "traffic_band").orderBy(*order)).cast("int"))
            picked = ranked.join(quotas, ["query_type", "traffic_band"]).where(F.col("stratum_rank") <= F.col("quota"))
            now = F.current_timestamp()
            queue = picked.select(
                F.lit(queue_id).alias("queue_id"), "window_id", "query_id", "query", "product_id", "query_type",
                "traffic_band", "stratum_rank",
                F.row_number().over(Window.orderBy(*order)).cast("int").alias("priority"), "entropy",
                F.lit("pending").alias("status"), F.lit(0).alias("n_votes"), now.alias("created_at"),
                now.alias("updated_at"))
            w = ctx.write("annotation_queue", queue, "overwrite", replace={"queue_id": queue_id})
            c.kept = w.rows
            c.filtered["over_budget"] = n_fresh - c.kept
            folder = Path(p.export_dir or f"{store.root}/exports/annotation")
            export = with_products(store, store.read("annotation_queue").where(F.col("queue_id") == queue_id))
            paths = write_export(export.drop("_known").orderBy("priority").toPandas(), folder, queue_id)
            c.extra = {f"quota:{t}:{b}": q for (t, b), q in sorted(quota.items()) if q}
            ctx.report.info.update(queue_id=queue_id, export=paths, quota=quota,
                                   params={"mix": p.mix, "export": [str(x) for x in paths]})
        finally:
            fresh.unpersist()


EXPORT_COLUMNS = ["queue_id", "query_id", "product_id", "query", "title", "category", "brand", "price",
                  "attributes", "description", "query_type", "traffic_band", "priority"]


def write_export(df: pd.DataFrame, folder: Path, queue_id: str) -> list[Path]:
    """``<queue>.csv`` and ``<queue>.jsonl`` (one task per row, answer columns ``rater_id`` and ``label`` left
    empty), and ``<queue>-rubric.md``. Raters answer with a label on the four levels (``3`` or ``3-Related``)."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = df.assign(attributes=[json.dumps(dict(a), sort_keys=True) if a is not None else "" for a in
                                  df["attributes"]])[EXPORT_COLUMNS].assign(rater_id="", label="")
    csv, jsonl, md = (folder / f"{queue_id}.csv", folder / f"{queue_id}.jsonl", folder / f"{queue_id}-rubric.md")
    write_csv(tasks, csv)  # query and title text come from users and sellers: no formula cells
    options = [LABEL_TEXT[lv] for lv in LEVELS]
    with jsonl.open("w") as f:
        for rec in tasks.to_dict("records"):
            rec = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
            f.write(json.dumps({**rec, "label_options": options, "rubric": rubric_text()}) + "\n")
    md.write_text(f"# Annotation round {queue_id}\n\nJudge each (query, product) pair on four levels; answer in "
                  f"`label` (`3` or `3-Related`) and put your id in `rater_id`.\n\n"
                  + "\n".join(f"- **{line.split(':', 1)[0]}**:{line.split(':', 1)[1]}" for line in
                              rubric_text().splitlines()) + "\n")
    return [csv, jsonl, md]

