"""Quality gates (great-expectations on Spark DataFrames): a failing gate stops publication with a readable report."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from taosr1.data.logsim import SimConfig, simulate_logs
from taosr1.ingest.logs import ingest_logs
from taosr1.quality.frames import corpora_frames, relevance_frames
from taosr1.quality.gates import QualityGateFailed, run_gate
from taosr1.scoring.cumpt import Thresholds
from tests.helpers import jvm_only

pytestmark = jvm_only


def test_good_day_passes_and_writes_data_docs(spark, store, world, tmp_path):
    raw = tmp_path / "raw"
    simulate_logs(*world, raw, SimConfig(days=1, sessions_per_day=40, seed=8))
    ingest_logs(store, str(raw), "2026-11-19")
    results = list((tmp_path / "warehouse" / "quality" / "results" / "search_log").glob("*.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["success"] is True
    assert (tmp_path / "warehouse" / "quality" / "gx" / "uncommitted" / "data_docs" / "local_site" /
            "index.html").exists()


def test_planted_bad_batch_fails_the_gate_and_publishes_nothing(spark, store, world, tmp_path):
    raw = tmp_path / "raw"
    simulate_logs(*world, raw, SimConfig(days=2, sessions_per_day=40, seed=8))
    ingest_logs(store, str(raw), "2026-11-19")
    before = {t: store.version(t) for t in ("search_log_bronze", "search_log", "quarantine")}
    # day 2 arrives as a broken batch: a third of its rows are not JSON
    day2 = raw / "ds=2026-11-20" / "events-00000.jsonl"
    lines = day2.read_text().splitlines()
    day2.write_text("\n".join(ln if i % 3 else ln[:17] for i, ln in enumerate(lines)) + "\n")
    with pytest.raises(QualityGateFailed) as err:
        ingest_logs(store, str(raw), "2026-11-20")
    msg = str(err.value)
    assert "quality gate 'search_log' failed; nothing was published" in msg
    assert "batch: expect_column_values_to_be_between valid_share" in msg and "unexpected_count" in msg
    assert err.value.result.docs_index is not None and err.value.result.docs_index.exists()
    assert {t: store.version(t) for t in before} == before
    assert store.read("search_log").where("ds = '2026-11-20'").count() == 0
    failed = store.read("job_runs").where("ds = '2026-11-20'").first()
    assert failed.status == "failed" and "QualityGateFailed" in failed.error


def test_clicks_without_impressions_fail_the_engagement_check(spark, store, tmp_path):
    day = tmp_path / "raw" / "ds=2026-11-19"
    day.mkdir(parents=True)
    ev = lambda i, t: json.dumps(dict(event_id=f"e{i}", event_type=t, ts=f"2026-11-19T10:00:0{i}Z",  # noqa: E731
                                      session_id="s1", user_id="u", query_id="q", query="drill", product_id="P1",
                                      position=1))
    day.joinpath("events.jsonl").write_text("\n".join([ev(1, "impression"), ev(2, "click"), ev(3, "click")]) + "\n")
    # row-level expectations see a sample of one row; the whole-day aggregates still catch the extra click
    with pytest.raises(QualityGateFailed, match="day: expect_column_values_to_be_between clicks_over_impressions"):
        ingest_logs(store, str(tmp_path / "raw"), "2026-11-19", gate_sample_rows=1)
    assert not store.exists("search_log")


def test_scores_gate_catches_bad_probabilities_and_tiers(spark, tmp_path):
    th = Thresholds.cum(0.5)
    rows = [("q", "p1", "m", 0.7, 0.1, 0.1, 0.1, 4, "Good"),
            ("q", "p4", "m", 0.1, 0.5, 0.2, 0.2, 3, "Mid"),      # right level, wrong tier
            ("q", "p2", "m", 0.2, 0.2, 0.2, 0.2, 2, "Mid"),     # sums to 0.8
            ("q", "p3", "m", 0.1, 0.1, 0.1, 0.7, 4, "Good")]    # tier inconsistent with beta 0.5
    df = spark.createDataFrame(rows, "query_id string, product_id string, model_version string, p4 double, "
                                     "p3 double, p2 double, p1 double, level int, tier string")
    res = run_gate("relevance_scores", relevance_frames(df, th), str(tmp_path / "q"), "t",
                   {"expected_rows": 4})
    assert not res.success
    text = "\n".join(res.failures)
    assert "prob_sum" in text and "tier_consistent" in text and "row_count" not in text
    assert '"unexpected_count": 2' in text  # p3's level and p4's tier
    res = run_gate("relevance_scores", relevance_frames(df.limit(1), th), str(tmp_path / "q"), "t2",
                   {"expected_rows": 3})
    assert any("expect_table_row_count_to_be_between" in f for f in res.failures)


def test_corpora_gate_catches_a_query_in_two_splits(spark, tmp_path):
    pairs = spark.createDataFrame([("q1", "p1", 4, "train"), ("q1", "p2", 3, "dev"), ("q2", "p1", 1, "test")],
                                  "query_id string, product_id string, label int, split string")
    msg = F.array(F.struct(F.lit("user").alias("role"), F.lit("x").alias("content")))
    sft = (spark.createDataFrame([("q1", "p1", lv) for lv in (1, 2, 3, 4)], "query_id string, product_id string, "
                                                                           "label int")
           .withColumn("product_id", F.concat("product_id", F.col("label").cast("string")))
           .withColumn("prompt", msg).withColumn("completion", msg))
    res = run_gate("corpora", corpora_frames(pairs, sft), str(tmp_path / "q"), "t")
    assert [f.split(":")[0] for f in res.failures] == ["query_splits"]
    # a gold label inside the pair's own message is a leak
    leaky = sft.withColumn("prompt", F.array(F.struct(F.lit("user").alias("role"),
                                                      F.lit("<query>x 3-Related</query>").alias("content"))))
    res = run_gate("corpora", corpora_frames(pairs.where("query_id = 'q2'"), leaky), str(tmp_path / "q"), "t3")
    assert any("label_in_user_prompt" in f for f in res.failures), res.failures
