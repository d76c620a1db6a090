"""The frames each suite validates, derived from a job's DataFrames (views the expectations need)."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def search_log_frames(silver: DataFrame, status_counts: dict[str, int], sample_rows: int = 100_000
                      ) -> dict[str, DataFrame]:
    """The ingest gate's views, cheap at any size: row-level expectations run on a bounded sample of silver (every
    row when the day has at most ``sample_rows``); the whole day is checked through aggregates computed in *one*
    Spark job (nulls, position and timestamp ranges, (session, product) pairs with more clicks than impressions);
    the batch's valid share comes from the classification counts the job already has."""
    spark = silver.sparkSession
    offset = (F.unix_timestamp("ts") - F.unix_timestamp(F.to_timestamp(F.col("ds")))).cast("double")
    n_silver = int(status_counts.get("silver", 0))
    sample = silver if n_silver <= sample_rows else silver.sample(fraction=min(1.0, 1.2 * sample_rows / n_silver),
                                                                  seed=17).limit(sample_rows)
    per_pair = silver.groupBy("session_id", "product_id").agg(
        F.sum((F.col("event_type") == "impression").cast("int")).alias("impressions"),
        F.sum((F.col("event_type") == "click").cast("int")).alias("clicks"),
        F.sum(F.col("event_id").isNull().cast("int")).alias("null_event_id"),
        F.sum(F.col("query").isNull().cast("int")).alias("null_query"),
        F.min("position").alias("min_position"), F.max("position").alias("max_position"),
        F.min(offset).alias("min_ts_offset_s"), F.max(offset).alias("max_ts_offset_s"))
    day = per_pair.agg(
        F.coalesce(F.sum((F.col("clicks") > F.col("impressions")).cast("int")), F.lit(0))
        .alias("clicks_over_impressions"),
        F.coalesce(F.sum("null_event_id"), F.lit(0)).alias("null_event_id"),
        F.coalesce(F.sum("null_query"), F.lit(0)).alias("null_query"),
        F.sum(F.col("product_id").isNull().cast("int")).alias("null_product_id"),
        F.coalesce(F.min("min_position"), F.lit(1)).alias("min_position"),
        F.coalesce(F.max("max_position"), F.lit(1)).alias("max_position"),
        F.coalesce(F.min("min_ts_offset_s"), F.lit(0.0)).alias("min_ts_offset_s"),
        F.coalesce(F.max("max_ts_offset_s"), F.lit(0.0)).alias("max_ts_offset_s")).first()
    total = sum(status_counts.values())
    valid = status_counts.get("silver", 0) + status_counts.get("duplicate", 0)
    return {
        "silver": sample.withColumn("ts_day_offset_s", offset),
        "day": spark.createDataFrame([day.asDict()]),
        "batch": spark.createDataFrame([(total, float(valid / total) if total else 1.0)],
                                       "rows long, valid_share double"),
    }


def relevance_frames(scores: DataFrame, thresholds) -> dict[str, DataFrame]:
    """``tier_consistent`` recomputes each row's level with the numpy reference (:func:`cumpt.levels`), not with
    the Spark column that produced it, and its tier from the level table, so either drifting is caught."""
    from pyspark.sql.functions import pandas_udf

    th = thresholds

    @pandas_udf("boolean")
    def consistent(p4: pd.Series, p3: pd.Series, p2: pd.Series, p1: pd.Series, level: pd.Series,
                   tier: pd.Series) -> pd.Series:
        import numpy as np

        from taosr1.labels import TIER_OF_LEVEL
        from taosr1.scoring.cumpt import levels

        ref = levels(np.column_stack([p4, p3, p2, p1]).astype(float), th)
        return pd.Series((ref == level.to_numpy()) & (tier.to_numpy() == np.array([TIER_OF_LEVEL[int(v)] for v in ref], dtype=object)))

    return {"scores": scores.withColumn("prob_sum", F.col("p4") + F.col("p3") + F.col("p2") + F.col("p1"))
            .withColumn("tier_consistent", consistent("p4", "p3", "p2", "p1", "level", "tier"))}


def corpora_frames(pairs: DataFrame, sft: DataFrame) -> dict[str, DataFrame]:
    """``label_in_user_prompt``: a label text ("3-Related", ...) inside the pair's own (user) message would hand
    the answer to the model; the instruction (system message) names every label and is not checked."""
    from taosr1.labels import LABEL_TEXT

    total = sft.count()
    content = F.expr("aggregate(prompt, '', (acc, m) -> concat(acc, m.content))")
    user = F.expr("aggregate(filter(prompt, m -> m.role = 'user'), '', (acc, m) -> concat(acc, m.content))")
    leak = F.lit(False)
    for text in LABEL_TEXT.values():
        leak = leak | user.contains(text)
    return {
        "pairs": pairs,
        "query_splits": pairs.groupBy("query_id").agg(F.countDistinct("split").alias("n_splits")),
        "sft": sft.select("label", F.length(content).alias("prompt_chars"), leak.alias("label_in_user_prompt"),
                          F.concat_ws("|", "query_id", "product_id").alias("pair_key")),
        "sft_mix": sft.groupBy("label").agg((F.count("*") / F.lit(max(total, 1))).alias("share")),
        "label_mix": label_cv_frame(sft),
    }


def label_cv_frame(sft: DataFrame) -> DataFrame:
    """One row: the coefficient of variation of the counts of the four levels (absent levels count 0)."""
    levels = sft.sparkSession.createDataFrame([(lv,) for lv in (1, 2, 3, 4)], "label int")
    counts = levels.join(sft.groupBy("label").count(), "label", "left").select(F.coalesce("count", F.lit(0))
                                                                              .cast("double").alias("n"))
    return counts.agg((F.stddev_pop("n") / F.mean("n")).alias("cv")).na.fill(0.0)
