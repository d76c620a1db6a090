"""Judged pairs → deduplicated, query-disjoint train/dev/test split with a class-balanced train subset.

A pair judged twice keeps its most frequent label (ties: the higher one); unknown products go to quarantine;
``balance="equal"`` down-samples every train class to the rarest (CV = 0, the paper's best mix).
"""

from __future__ import annotations

from typing import Literal

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from taosr1.errors import InputError
from taosr1.job import Context, Counts
from taosr1.labels import LEVELS
from taosr1.pairs import KEY, bucket_hash, with_products
from taosr1.quarantine import pair_key, pair_rows

Balance = Literal["equal", "none"]


def judged_pairs(ctx: Context, source: str, from_candidates: str | None) -> DataFrame:
    """The judgments a corpus starts from: one source's, or (``from_candidates``) every judgment of the pairs of a
    candidate window, whatever source it came from (e.g. raters' answers to an annotation round)."""
    store = ctx.store
    labels = store.read("query_product_labels")
    if from_candidates is None:
        return labels.where(F.col("source") == source)
    if not store.exists("candidate_pairs"):
        raise InputError("no candidate_pairs table: run `taosr1 corpus candidates` first")
    window = store.read("candidate_pairs").where(F.col("window_id") == from_candidates).select(*KEY)
    return labels.join(window, KEY, "left_semi")


def split_pairs(ctx: Context, source: str, corpus_id: str, *, seed: int = 13, dev_pct: int = 10,
                test_pct: int = 10, balance: Balance = "equal",
                from_candidates: str | None = None) -> tuple[DataFrame, Counts]:
    """The (persisted, not yet published) ``corpus_pairs`` rows and their counts; quarantines unknown products."""
    store = ctx.store
    labels = judged_pairs(ctx, source, from_candidates)
    counts = Counts(rows_in=labels.count())
    if counts.rows_in == 0:
        raise InputError(f"no judged pairs for source '{source}'" + (f" in candidate window {from_candidates}"
                         if from_candidates else "") + "; run `taosr1 load-labels` first")
    mode = (labels.groupBy(*KEY, "label").agg(F.count("*").alias("n"), F.min("query").alias("query"))
            .withColumn("r", F.row_number().over(Window.partitionBy(*KEY).orderBy(F.desc("n"), F.desc("label"))))
            .where("r = 1").drop("r", "n"))
    counts.filtered["duplicate_pair"] = counts.rows_in - mode.count()
    joined = with_products(store, mode).select(*mode.columns, "_known")
    counts.quarantined = ctx.quarantine(pair_rows(joined.where("_known IS NULL"), "unknown_product"),
                                        stage="build_sft_corpus", ds=corpus_id, key=pair_key()).rows
    h = bucket_hash(["query_id"], seed) % 100
    pairs = (joined.where("_known IS NOT NULL").drop("_known")
             .withColumn("split", F.when(h < dev_pct, "dev").when(h < dev_pct + test_pct, "test").otherwise("train")))
    train_counts = {r["label"]: r["n"] for r in pairs.where("split = 'train'").groupBy("label")
                    .agg(F.count("*").alias("n")).collect()}
    if balance == "equal" and train_counts:
        target = min(train_counts.get(lv, 0) for lv in LEVELS)
        rank = F.row_number().over(Window.partitionBy("split", "label").orderBy(bucket_hash(KEY, seed)))
        pairs = pairs.withColumn("_r", F.when(F.col("split") == "train", rank)).withColumn(
            "balanced", (F.col("split") == "train") & (F.col("_r") <= F.lit(target))).drop("_r")
    else:
        pairs = pairs.withColumn("balanced", F.col("split") == "train")
    out = pairs.select(F.lit(corpus_id).alias("corpus_id"), "query_id", "query", "product_id", "label", "split",
                       F.lit(f"candidates:{from_candidates}" if from_candidates else source).alias("source"),
                       "balanced").persist()
    counts.kept = out.count()
    counts.extra = {f"train_label_{k}": v for k, v in sorted(train_counts.items())}
    counts.check("corpus_pairs")
    return out, counts
