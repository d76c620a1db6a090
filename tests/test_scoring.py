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

from taosr1.data.load import load_judgments
from taosr1.data.logsim import SimConfig, simulate_logs
from taosr1.engines import EngineConfig
from taosr1.ingest.logs import ingest_logs
from taosr1.scoring.calibrate import calibrate, macro_f1
from taosr1.scoring.cumpt import Thresholds, level_column, levels, load_thresholds, save_thresholds, tiers
from taosr1.scoring.job import STAGE, score_catalog
from tests.conftest import BACKEND, REPO, SPARK_SUBMIT

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


@pytest.fixture
def scored_world(spark, store, world, tmp_path):
    """A warehouse with the world loaded and one day of logs ingested."""
    products, labels = world
    load_judgments(spark, store, products, labels, "world")
    raw = tmp_path / "raw"
    simulate_logs(products, labels, raw, SimConfig(days=1, sessions_per_day=60, seed=4))
    ingest_logs(spark, store, str(raw), "2026-11-19")
    return store


pytestmark = pytest.mark.skipif(BACKEND != "delta-rs", reason="scoring runs Python UDFs on local JVM Spark")


def test_score_day_counts_and_rerun(spark, scored_world, builtin_model):
    store = scored_world
    cfg = EngineConfig(model_path=builtin_model, batch_size=32)
    shown = store.read("search_log").where("event_type = 'impression'").select("query_id", "product_id") \
        .distinct().count()
    rep = score_catalog(spark, store, "2026-11-19", cfg)
    assert rep.adds_up() and rep.pairs_in == shown and rep.scored == shown and rep.quarantined == 0
    out = store.read("relevance_scores")
    assert out.count() == shown
    assert out.where(F.abs(F.col("p4") + F.col("p3") + F.col("p2") + F.col("p1") - 1) > 1e-6).count() == 0
    th = Thresholds.cum(0.5)
    pdf = out.toPandas()
    assert (levels(pdf[["p4", "p3", "p2", "p1"]].to_numpy(), th) == pdf["level"].to_numpy()).all()
    np.testing.assert_allclose(pdf["expected_relevance"], pdf[["p4", "p3", "p2", "p1"]].to_numpy() @ [4, 3, 2, 1])
    # re-running the day replaces it: same rows, new version, nothing doubled
    rep2 = score_catalog(spark, store, "2026-11-19", cfg, beta_cum=0.3)
    assert store.read("relevance_scores").count() == shown and rep2.table_version == rep.table_version + 1
    assert set(r.beta_cum for r in store.read("relevance_scores").select("beta_cum").distinct().collect()) == {0.3}
    # incremental: nothing left to score for this model version
    rep3 = score_catalog(spark, store, "2026-11-19", cfg, incremental=True)
    assert (rep3.already_scored, rep3.scored) == (shown, 0) and store.read("relevance_scores").count() == shown


def test_bad_pairs_reach_quarantine_and_every_row_is_counted(spark, scored_world, builtin_model, tmp_path):
    store = scored_world
    pairs = (store.read("search_log").where("event_type = 'impression'").select("query_id", "query", "product_id")
             .dropDuplicates(["query_id", "product_id"]).limit(40))
    extra = spark.createDataFrame([("q-x", "ghost product", "P99999"), ("q-y", "", "P00001")],
                                  "query_id string, query string, product_id string")
    cand = str(tmp_path / "cand")
    pairs.unionByName(extra).write.parquet(cand)
    cfg = EngineConfig(model_path=builtin_model, batch_size=16)
    rep = score_catalog(spark, store, "2026-11-20", cfg, candidates=cand)
    assert rep.pairs_in == 42 and rep.scored == 40 and rep.quarantined == 2 and rep.adds_up()
    q = store.read("quarantine").where(f"stage = '{STAGE}' AND ds = '2026-11-20'").collect()
    assert sorted(r.reason for r in q) == ["empty_query", "unknown_product"]
    run = store.read("job_runs").where(f"run_id = '{rep.run_id}'").first()
    assert run.counts["pairs_in"] == run.counts["scored"] + run.counts["quarantined"]


def test_empty_day_writes_an_empty_partition(spark, scored_world, builtin_model):
    rep = score_catalog(spark, scored_world, "2026-12-31", EngineConfig(model_path=builtin_model))
    assert (rep.pairs_in, rep.scored) == (0, 0) and scored_world.exists("relevance_scores")


@pytest.mark.slow
def test_killed_scoring_run_leaves_the_previous_version(spark, scored_world, builtin_model, tmp_path):
    store = scored_world
    cfg = EngineConfig(model_path=builtin_model, batch_size=4)
    score_catalog(spark, store, "2026-11-19", cfg)
    before_version = store.version("relevance_scores")
    before = store.read("relevance_scores").toPandas().sort_values(["query_id", "product_id"]).reset_index(drop=True)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    proc = subprocess.Popen([SPARK_SUBMIT, "--master", "local[2]", str(REPO / "jobs" / "score_catalog.py"), "--ds", "2026-11-19",
                             "--warehouse", store.settings.warehouse, "--model", builtin_model, "--batch-size", "1",
                             "--beta-cum", "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 120
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
    after = store.read("relevance_scores").toPandas().sort_values(["query_id", "product_id"]).reset_index(drop=True)
    assert after.equals(before)
    # and the next run succeeds on top of the debris
    rep = score_catalog(spark, store, "2026-11-19", cfg, beta_cum=0.2)
    assert rep.adds_up() and store.version("relevance_scores") == before_version + 1


def test_analyst_queries_agree_on_spark_and_duckdb(spark, scored_world, builtin_model, tmp_path):
    from taosr1 import analytics

    store = scored_world
    score_catalog(spark, store, "2026-11-19", EngineConfig(model_path=builtin_model), beta_cum=0.5)
    # a second model version: same weights, a config that differs in bytes -> another version id
    import shutil

    other = tmp_path / "model-b"
    shutil.copytree(builtin_model, other)
    (other / "config.json").write_text((other / "config.json").read_text() + "\n")
    score_catalog(spark, store, "2026-11-19", EngineConfig(model_path=str(other)), beta_cum=0.35)
    assert set(analytics.list_queries()) == {"tier_distribution_by_day", "queries_with_most_irrelevant_results",
                                             "tier_drift_between_model_versions"}
    for name in analytics.list_queries():
        a = analytics.run_spark(store, name)
        b = analytics.run_duckdb(store.root, name)[list(a.columns)]
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
    dist = analytics.run_spark(store, "tier_distribution_by_day")
    assert dist.assign(share=dist["share"].astype(float)).groupby(["ds", "model_version"])["share"].sum().round(3).eq(1.0).all()
    drift = analytics.run_spark(store, "tier_drift_between_model_versions")
    assert drift["pairs"].sum() == store.read("relevance_scores").where("model_version != ''").count() // 2
