"""Nightly scoring: CumPT properties, calibration, and the job's re-runs, kills, quarantine and counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from taosr1.model.reference import load_thresholds, save_thresholds
from taosr1.scoring.calibrate import calibrate, macro_f1
from taosr1.scoring.cumpt import Thresholds, level_column, levels, tiers
from taosr1.scoring.score import STAGE
from tests.helpers import REPO, SPARK_SUBMIT, job, jvm_only

probs4 = st.lists(st.floats(0.001, 1.0), min_size=4, max_size=4).map(lambda v: np.array(v) / np.sum(v))
betas = st.floats(0.05, 1.0)


def test_cumpt_examples():
    p = np.array([[0.6, 0.2, 0.1, 0.1], [0.3, 0.3, 0.3, 0.1], [0.1, 0.1, 0.4, 0.4], [0.05, 0.05, 0.1, 0.8]])
    assert levels(p, Thresholds.cum(0.5)).tolist() == [4, 3, 2, 1]
    assert tiers(np.array([4, 3, 2, 1])).tolist() == ["Good", "Good", "Mid", "Bad"]
    assert levels(p, Thresholds.cum(0.25)).tolist() == [4, 4, 2, 1]


@given(probs4, betas, st.integers(0, 2), st.floats(0.0, 1.0))
@hsettings(max_examples=300, deadline=None)
def test_more_mass_on_higher_labels_never_lowers_the_tier(p, beta, src, frac):
    """Moving probability from a level to a higher one keeps or raises the CumPT level."""
    q = p.copy()
    lower = 3 - src  # index of a lower level (1..3 in 4,3,2,1 order)
    higher = int(np.random.default_rng(int(frac * 1000)).integers(0, lower))
    moved = q[lower] * frac
    q[lower] -= moved
    q[higher] += moved
    th = Thresholds.cum(beta)
    assert levels(q[None], th)[0] >= levels(p[None], th)[0]


@given(probs4, st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3).map(sorted))
@hsettings(max_examples=200, deadline=None)
def test_per_level_thresholds_are_monotone_too(p, ts):
    t2, t3, t4 = ts  # non-increasing from t4 to t2
    th = Thresholds(t4, t3, t2)
    base = levels(p[None], th)[0]
    q = p.copy()
    q[0] += q[3] * 0.5
    q[3] *= 0.5
    assert levels(q[None], th)[0] >= base


@given(betas)
@hsettings(max_examples=30, deadline=None)
def test_higher_beta_is_stricter(beta):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=200)
    strict = levels(p, Thresholds.cum(min(1.0, beta + 0.1)))
    assert (strict <= levels(p, Thresholds.cum(beta))).all()


def test_spark_column_matches_numpy(spark):
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(4), size=300)
    th = Thresholds(0.6, 0.5, 0.4)
    df = spark.createDataFrame([tuple(map(float, r)) for r in p], "p4 double, p3 double, p2 double, p1 double")
    got = [r.level for r in df.select(level_column(th).alias("level")).collect()]
    assert got == levels(p, th).tolist()


def test_thresholds_validate():
    with pytest.raises(ValueError, match="t4"):
        Thresholds.cum(0.0)
    assert Thresholds.cum(0.4).beta_cum == 0.4 and Thresholds(0.6, 0.5, 0.4).beta_cum is None


def test_calibration_recovers_a_good_beta(tmp_path):
    rng = np.random.default_rng(1)
    gold = rng.integers(1, 5, size=600)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=600) * 0.3
    for i, g in enumerate(gold):
        probs[i, 4 - g] += 0.7
    cal = calibrate(probs, gold, "macro_f1")
    assert cal.score > 0.9 and 0.3 <= cal.thresholds.t4 <= 0.75
    assert cal.score >= macro_f1(gold, levels(probs, Thresholds.cum(0.9)))
    prec = calibrate(probs, gold, "good_precision", target_precision=0.97)
    pred = levels(probs, prec.thresholds)
    assert np.mean(gold[pred >= 3] >= 3) >= 0.97
    per = calibrate(probs, gold, "macro_f1", per_level=True, grid=11)
    assert per.score >= cal.score - 0.02
    save_thresholds(tmp_path, cal.thresholds, {"objective": "macro_f1"})
    save_thresholds(tmp_path, per.thresholds, {"objective": "macro_f1"})
    th, origin = load_thresholds(tmp_path)
    assert th == per.thresholds and origin == "calibration v2"
    assert load_thresholds(tmp_path / "none")[1] == "default beta_cum=0.5"


pytestmark = jvm_only


def test_calibrate_stage_counts_every_judged_pair(spark, ingested, builtin_model, tmp_path):
    """calibrate_buckets: rows_in is the source's judged pairs; a pair whose product the catalog lacks is counted
    (unknown_product), the rest went to the engine and came back (kept + engine_error); thresholds land beside
    the model, versioned."""
    import shutil

    from pyspark.sql import functions as F

    from taosr1.model.reference import load_thresholds

    store = ingested
    model = tmp_path / "model"
    shutil.copytree(builtin_model, model)  # the thresholds are written beside the model
    labels = store.read("query_product_labels").where(F.col("source") == "world")
    n = labels.count()
    store.write("query_product_labels", labels.limit(1).withColumn("product_id", F.lit("no-such-product")), "append")
    rep = job(store, "calibrate_buckets", source="world", model=str(model), engine="hf")
    c = rep.counts
    assert c.adds_up() and c.rows_in == n + 1 and c.filtered["unknown_product"] == 1
    assert c.kept + c.quarantined == n and c.kept > 0  # engine errors: quarantined as engine_error
    assert load_thresholds(model)[1] == "calibration v1"


def test_score_day_counts_and_rerun(spark, ingested, builtin_model):
    store = ingested
    shown = store.read("search_log").where("event_type = 'impression'").select("query_id", "product_id") \
        .distinct().count()
    rep = job(store, "score_catalog", ds="2026-11-19", model=builtin_model)
    c = rep.counts
    assert c.adds_up() and c.rows_in == shown and c.kept == shown and c.quarantined == 0
    out = store.read("relevance_scores")
    assert out.count() == shown
    assert out.where(F.abs(F.col("p4") + F.col("p3") + F.col("p2") + F.col("p1") - 1) > 1e-6).count() == 0
    th = Thresholds.cum(0.5)
    pdf = out.toPandas()
    assert (levels(pdf[["p4", "p3", "p2", "p1"]].to_numpy(), th) == pdf["level"].to_numpy()).all()
    np.testing.assert_allclose(pdf["expected_relevance"], pdf[["p4", "p3", "p2", "p1"]].to_numpy() @ [4, 3, 2, 1])
    # re-running the day replaces it: same rows, new version, nothing doubled
    rep2 = job(store, "score_catalog", ds="2026-11-19", model=builtin_model, beta_cum=0.3)
    assert store.read("relevance_scores").count() == shown
    assert rep2.versions["relevance_scores"] == rep.versions["relevance_scores"] + 1
    assert set(r.beta_cum for r in store.read("relevance_scores").select("beta_cum").distinct().collect()) == {0.3}
    # incremental: nothing left to score for this model version
    rep3 = job(store, "score_catalog", ds="2026-11-19", model=builtin_model, incremental=True)
    assert (rep3.counts.filtered["already_scored"], rep3.counts.kept) == (shown, 0)
    assert store.read("relevance_scores").count() == shown


def test_bad_pairs_reach_quarantine_and_every_row_is_counted(spark, ingested, builtin_model, tmp_path):
    store = ingested
    pairs = (store.read("search_log").where("event_type = 'impression'").select("query_id", "query", "product_id")
             .dropDuplicates(["query_id", "product_id"]).limit(40))
    extra = spark.createDataFrame([("q-x", "ghost product", "P99999"), ("q-y", "", "P00001")],
                                  "query_id string, query string, product_id string")
    cand = str(tmp_path / "cand")
    pairs.unionByName(extra).write.parquet(cand)
    rep = job(store, "score_catalog", ds="2026-11-20", model=builtin_model, batch_size=16, candidates=cand)
    c = rep.counts
    assert c.rows_in == 42 and c.kept == 40 and c.quarantined == 2 and c.adds_up()
    q = store.read("quarantine").where(f"stage = '{STAGE}' AND ds = '2026-11-20'").collect()
    assert sorted(r.reason for r in q) == ["empty_query", "unknown_product"]
    run = store.read("job_runs").where(F.col("run_id") == rep.run_id).first()
    assert run.counts["rows_in"] == run.counts["kept"] + run.counts["quarantined"] == 42


def test_empty_day_writes_an_empty_partition(spark, ingested, builtin_model):
    rep = job(ingested, "score_catalog", ds="2026-12-31", model=builtin_model)
    assert (rep.counts.rows_in, rep.counts.kept) == (0, 0) and ingested.exists("relevance_scores")


def test_scoring_with_the_rules_engine_and_a_failed_run_on_record(spark, ingested, tmp_path):
    rep = job(ingested, "score_catalog", ds="2026-11-19", engine="rules")
    out = ingested.read("relevance_scores").where(F.col("run_id") == rep.run_id)
    assert out.count() == rep.counts.kept > 0
    assert {r.model_version for r in out.select("model_version").distinct().collect()} == {"rules-v1"}
    # bad input fails inside the run, and the run is on record with its error
    with pytest.raises(Exception, match="does not exist"):
        job(ingested, "score_catalog", ds="2026-11-19", engine="rules", candidates=str(tmp_path / "nope"))
    failed = ingested.read("job_runs").where("job = 'score_catalog' AND status = 'failed'").collect()
    assert len(failed) == 1 and "does not exist" in failed[0].error


@pytest.mark.slow
def test_killed_scoring_run_leaves_the_previous_version(spark, ingested, builtin_model, tmp_path):
    store = ingested
    job(store, "score_catalog", ds="2026-11-19", model=builtin_model, batch_size=4)
    before_version = store.version("relevance_scores")
    before = store.read("relevance_scores").toPandas().sort_values(["query_id", "product_id"]).reset_index(drop=True)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    proc = subprocess.Popen([SPARK_SUBMIT, "--master", "local[2]", str(REPO / "jobs" / "score_catalog.py"), "--ds", "2026-11-19",
                             "--warehouse", store.settings.warehouse, "--model", builtin_model, "--batch-size", "1",
                             "--beta-cum", "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 300  # a loaded 2-core box starts spark-submit, torch and the model slowly
    staging = f"{store.path('relevance_scores')}/_staging"
    seen = False
    for line in iter(proc.stdout.readline, b""):  # kill as soon as the engine has started scoring
        if b"label_probs.batch" in line or (os.path.isdir(staging) and os.listdir(staging)):
            seen = True
            break
        if time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert seen, "the job never reached scoring"
    assert store.version("relevance_scores") == before_version
    killed = store.read("job_runs").where("job = 'score_catalog' AND status = 'running'").collect()
    assert len(killed) == 1 and killed[0].ds == "2026-11-19"  # the killed run stays visible as running
    after = store.read("relevance_scores").toPandas().sort_values(["query_id", "product_id"]).reset_index(drop=True)
    assert after.equals(before)
    # and the next run succeeds on top of the debris
    rep = job(store, "score_catalog", ds="2026-11-19", model=builtin_model, batch_size=4, beta_cum=0.2)
    assert rep.counts.adds_up() and store.version("relevance_scores") == before_version + 1


def test_analyst_queries_agree_on_spark_and_duckdb(spark, ingested, builtin_model, tmp_path):
    from taosr1 import analytics

    store = ingested
    job(store, "score_catalog", ds="2026-11-19", model=builtin_model, beta_cum=0.5)
    # a second model version: same weights, a config that differs in bytes -> another version id
    import shutil

    other = tmp_path / "model-b"
    shutil.copytree(builtin_model, other)
    (other / "config.json").write_text((other / "config.json").read_text() + "\n")
    from taosr1.model.loading import stamp_identity

    stamp_identity(other)  # a deliberate change: recorded as the model's new identity
    job(store, "score_catalog", ds="2026-11-19", model=str(other), beta_cum=0.35)
    job(store, "sample_candidates", start="2026-11-19", end="2026-11-19")
    assert set(analytics.list_queries()) == {"tier_distribution_by_day", "queries_with_most_irrelevant_results",
                                             "tier_drift_between_model_versions", "engagement_by_tier_and_label"}
    for name in analytics.list_queries():
        a = analytics.run_spark(store, analytics.query_text(name))
        b = analytics.run_duckdb(store.root, analytics.query_text(name))[list(a.columns)]
        assert len(a) > 0 and len(a) == len(b), name
        # engines may round a tie (x.xxx5) differently, and Spark returns DECIMAL where DuckDB returns DOUBLE:
        # compare text columns exactly and numbers to 1e-3
        def rows(frame):
            out = []
            for rec in frame.itertuples(index=False):
                out.append(tuple(v if isinstance(v, str) else float(v) for v in rec))
            return sorted(out, key=lambda r: tuple(x for x in r if isinstance(x, str)))

        for ra, rb in zip(rows(a), rows(b)):
            for x, y in zip(ra, rb):
                assert x == y if isinstance(x, str) else abs(x - y) <= 1e-3, (name, ra, rb)
    dist = analytics.run_spark(store, analytics.query_text("tier_distribution_by_day"))
    assert dist.assign(share=dist["share"].astype(float)).groupby(["ds", "model_version"])["share"].sum().round(3).eq(1.0).all()
    eng = analytics.run_spark(store, analytics.query_text("engagement_by_tier_and_label"))
    assert set(eng["grouping"]) == {"model tier", "human label"}
    by_label = eng[eng["grouping"] == "human label"].set_index("value")["ctr"].astype(float)
    assert by_label["4"] > by_label["1"]  # users click what raters call relevant
    drift = analytics.run_spark(store, analytics.query_text("tier_drift_between_model_versions"))
    assert drift["pairs"].sum() == store.read("relevance_scores").where("model_version != ''").count() // 2
