"""The frames each suite validates, derived from a job's DataFrames (views the expectations need)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def search_log_frames(silver: DataFrame, classified: DataFrame) -> dict[str, DataFrame]:
    offset = F.unix_timestamp("ts") - F.unix_timestamp(F.to_timestamp(F.col("ds")))
    return {
        "silver": silver.withColumn("ts_day_offset_s", offset.cast("double")),
        "batch": classified.select("status"),
        "engagement": silver.groupBy("session_id", "product_id").agg(
            F.sum((F.col("event_type") == "impression").cast("int")).alias("impressions"),
            F.sum((F.col("event_type") == "click").cast("int")).alias("clicks")),
    }


def relevance_frames(scores: DataFrame, expected_level) -> dict[str, DataFrame]:
    """``expected_level``: a Column computing the CumPT level from the model version's thresholds."""
    return {"scores": scores.withColumn("prob_sum", F.col("p4") + F.col("p3") + F.col("p2") + F.col("p1"))
            .withColumn("tier_consistent", F.col("level") == expected_level)}


def corpora_frames(pairs: DataFrame, sft: DataFrame, parse_ok) -> dict[str, DataFrame]:
    """``parse_ok``: a Column, true when the completion parses and agrees with the label."""
    total = sft.count()
    content = F.expr("aggregate(prompt, '', (acc, m) -> concat(acc, m.content))")
    return {
        "pairs": pairs,
        "query_splits": pairs.groupBy("query_id").agg(F.countDistinct("split").alias("n_splits")),
        "sft": sft.select("label", F.length(content).alias("prompt_chars"), parse_ok.alias("completion_parses"),
                          F.concat_ws("|", "query_id", "product_id").alias("pair_key")),
        "sft_mix": sft.groupBy("label").agg((F.count("*") / F.lit(max(total, 1))).alias("share")),
    }
