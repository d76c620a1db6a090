"""Candidate pairs from search logs at scale: silver logs of N rows over 7 days → ``candidate_pairs``.

The logs are generated inside Spark (no Python loop) and written as the silver table; the timed part is the
whole ``sample_candidates`` stage (aggregation, traffic bands, tagger, Delta commit, the impression check).
Prints rows/s per size and how time grows; ``--json PATH`` writes the figures.

    python bench/candidates_bench.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def synthetic_logs(spark, n: int, days: int = 7):
    """``n`` silver events: 70% impressions, the rest clicks, carts and orders; Zipf-ish query traffic."""
    from pyspark.sql import functions as F

    qn = max(100, n // 50)
    types = F.when(F.col("id") % 100 < 70, "impression").when(F.col("id") % 100 < 90, "click") \
        .when(F.col("id") % 100 < 97, "add_to_cart").otherwise("order")
    q = (F.pow(F.rand(1), 3) * qn).cast("long")  # a few head queries, a long tail
    words = F.array(*[F.lit(w) for w in ("drill", "cordless drill without battery", "cheaper alternative to dewalt drill",
                                         "what screws for drywall", "paint that wipes clean", "garden hose")])
    ds = F.date_format(F.date_add(F.lit("2026-01-01").cast("date"), (F.col("id") % days).cast("int")), "yyyy-MM-dd")
    return (spark.range(n).withColumn("qi", q).select(
        ds.alias("ds"), F.concat(F.lit("e"), F.col("id").cast("string")).alias("event_id"), types.alias("event_type"),
        F.to_timestamp(ds).alias("ts"), F.concat(F.lit("s"), (F.col("id") / 20).cast("long").cast("string"))
        .alias("session_id"), F.lit(None).cast("string").alias("user_id"),
        F.concat(F.lit("q"), F.col("qi").cast("string")).alias("query_id"),
        F.concat(F.element_at(words, (F.col("qi") % 6 + 1).cast("int")), F.lit(" "), F.col("qi").cast("string"))
        .alias("query"), F.concat(F.lit("p"), ((F.col("qi") * 7 + F.col("id") % 12) % 50000).cast("string"))
        .alias("product_id"), (F.col("id") % 12 + 1).cast("int").alias("position"), F.lit("bench").alias("source_file"),
        F.col("id").alias("source_row"), F.lit("bench").alias("ingest_run_id")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="log rows per run, comma-separated")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()

    from _common import machine, print_table

    from taosr1.config import Settings
    from taosr1.corpora.candidates import CandidatesParams, SampleCandidates
    from taosr1.io import open_store
    from taosr1.job import run_stage
    from taosr1.spark import get_spark

    spark = get_spark("taosr1-candidates-bench", conf={"spark.ui.showConsoleProgress": "false"})
    rows, out = [], {"machine": machine(), "load_avg": os.getloadavg(), "candidates": []}
    sizes = [int(x) for x in args.sizes.split(",")]
    for i, n in enumerate([10_000, *sizes]):  # the first, small run warms the JVM and Spark up and is not reported
        store = open_store(spark, Settings(warehouse=tempfile.mkdtemp(prefix=f"cand-bench-{n}-")))
        store.write("search_log", synthetic_logs(spark, n), "overwrite")
        t = time.perf_counter()
        rep = run_stage(SampleCandidates(), store, CandidatesParams(start="2026-01-01", end="2026-01-07"))
        secs = time.perf_counter() - t
        if i == 0:
            continue
        rows.append([f"{n:,}", f"{rep.counts.kept:,}", round(secs, 1), round(n / secs, 0)])
        out["candidates"].append({"log_rows": n, "pairs": rep.counts.kept, "seconds": secs, "rows_per_s": n / secs})
    print_table("candidate pairs from silver logs (whole stage, local Spark)",
                ["log rows", "pairs", "seconds", "log rows/s"], rows)
    c = out["candidates"]
    for a, b in zip(c, c[1:]):
        print(f"{a['log_rows']:,} -> {b['log_rows']:,} rows ({b['log_rows'] / a['log_rows']:.0f}x): "
              f"time grew {b['seconds'] / a['seconds']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
