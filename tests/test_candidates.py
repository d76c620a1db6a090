"""Logs → candidate pairs → annotation queue → raters' answers → SFT corpus, on the simulated world (which knows
every query's type)."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from taosr1.corpora.annotate import allocate
from taosr1.data.logsim import SimConfig, simulate_logs
from taosr1.ingest.logs import ingest_logs
from tests.helpers import job, jvm_only, store_at

pytestmark = jvm_only
WINDOW = "2026-11-19_2026-11-21"


@pytest.fixture(scope="module")
def logs_world(spark, world, tmp_path_factory):
    """Three days of logs with the middle day missing from silver, 30% of the queries judged, one day scored."""
    root = tmp_path_factory.mktemp("cand")
    store = store_at(spark, root / "wh")
    loaded = job(store, "load_labels", source="world", judged_share=0.3)
    products, labels = world
    simulate_logs(products, labels, root / "raw", SimConfig(days=3, sessions_per_day=120, seed=21))
    ingest_logs(store, str(root / "raw"), "2026-11-19")
    ingest_logs(store, str(root / "raw"), "2026-11-21")
    judged = labels[labels["query_id"].map(lambda q: zlib.crc32(q.encode()) % 10_000 < 3_000)]
    assert loaded.counts.kept == len(judged)
    assert loaded.counts.filtered["held_back_unjudged"] == len(labels) - len(judged)
    job(store, "score_catalog", ds="2026-11-21", engine="rules")
    rep = job(store, "sample_candidates", start="2026-11-19", end="2026-11-21")
    return store, rep, judged


def test_candidates_account_for_every_impression(logs_world):
    store, rep, judged = logs_world
    c = rep.counts
    assert c.adds_up() and c.kept > 0
    logs = store.read("search_log").where("ds BETWEEN '2026-11-19' AND '2026-11-21'")
    cand = store.read("candidate_pairs").where(F.col("window_id") == WINDOW).toPandas()
    assert cand["impressions"].sum() == logs.where("event_type = 'impression'").count() == c.extra["impressions"]
    assert not cand.duplicated(["query_id", "product_id"]).any()
    shown = logs.where("event_type = 'impression'").select("query_id", "product_id").distinct().count()
    assert len(cand) == shown
    # a day of the window with no silver rows is reported, on record
    run = store.read("job_runs").where(F.col("run_id") == rep.run_id).first()
    assert json.loads(run.params)["missing_days"] == ["2026-11-20"] and run.counts["missing_days"] == 1
    # engagement and positions are per pair
    assert ((cand["ctr"] - cand["clicks"] / cand["impressions"]).abs() < 1e-12).all()
    assert (cand["best_position"] <= cand["mean_position"]).all()
    assert set(cand["traffic_band"]) == {"head", "torso", "tail"}
    # human labels where judged, probabilities and entropy where scored
    judged_keys = set(zip(judged["query_id"], judged["product_id"]))
    has_label = cand["label"].notna()
    assert set(zip(cand[has_label]["query_id"], cand[has_label]["product_id"])) <= judged_keys
    assert has_label.sum() > 0 and (~has_label).sum() > 0
    scored = cand[cand["p4"].notna()]
    p = scored[["p4", "p3", "p2", "p1"]].to_numpy()
    np.testing.assert_allclose(scored["entropy"], -(p * np.log(p)).sum(axis=1), atol=1e-9)
    # a re-run replaces the window
    before = store.version("candidate_pairs")
    again = job(store, "sample_candidates", start="2026-11-19", end="2026-11-21")
    assert again.counts.kept == c.kept and store.version("candidate_pairs") == before + 1
    assert store.read("candidate_pairs").where(F.col("window_id") == WINDOW).count() == c.kept


def test_tagger_precision_and_recall_per_type(logs_world, world):
    store, _, _ = logs_world
    truth = world[1].drop_duplicates("query_id").set_index("query_id")["query_type"].replace({"attribute": "plain"})
    cand = store.read("candidate_pairs").where(F.col("window_id") == WINDOW).select(
        "query_id", "query_type").distinct().toPandas()
    cand["truth"] = cand["query_id"].map(truth)
    rows = []
    for t in ("negation", "alternative", "qa", "knowledge", "plain"):
        tp = ((cand["query_type"] == t) & (cand["truth"] == t)).sum()
        prec = tp / max((cand["query_type"] == t).sum(), 1)
        rec = tp / max((cand["truth"] == t).sum(), 1)
        rows.append((t, int((cand["truth"] == t).sum()), round(prec, 3), round(rec, 3)))
    print("\nquery-type tagger on the world's logged queries (type, queries, precision, recall):")
    for r in rows:
        print("  ", *r)
    for t, n, prec, rec in rows:
        if n:
            assert prec >= 0.9 and rec >= 0.9, (t, prec, rec)


def test_any_engine_can_tag_query_types(logs_world, builtin_model):
    """An engine asked per distinct query; where it names no type (the built-in toy model mostly will not), the
    rules decide, and the version says which tagger ran."""
    store, _, _ = logs_world
    rep = job(store, "sample_candidates", start="2026-11-21", end="2026-11-21", tagger="engine", model=builtin_model)
    cand = store.read("candidate_pairs").where(F.col("window_id") == "2026-11-21_2026-11-21").toPandas()
    assert len(cand) == rep.counts.kept > 0
    assert set(cand["query_type"]) <= {"negation", "alternative", "qa", "knowledge", "plain"}
    assert cand["tagger_version"].iloc[0].startswith("engine:hf:") and 0 <= rep.info["engine_named_types"]


def test_allocation_overweights_hard_types_and_uses_the_whole_budget():
    avail = {("negation", "tail"): 5, ("plain", "head"): 100, ("qa", "torso"): 50}
    q = allocate(avail, {"negation": 3, "qa": 3, "plain": 1, "alternative": 3, "knowledge": 3}, 40)
    assert sum(q.values()) == 40 and q[("negation", "tail")] == 5  # capped by what the stratum holds
    assert q[("qa", "torso")] > q[("plain", "head")]
    assert sum(allocate(avail, {"plain": 1}, 500).values()) == 100  # only weighted types, at most what exists


def test_annotation_round_trip(logs_world, tmp_path):
    store, _, _ = logs_world
    rep = job(store, "annotate_candidates", window_id=WINDOW, budget=30, queue_id="round-1",
              export_dir=str(tmp_path / "export"))
    queue = store.read("annotation_queue").where("queue_id = 'round-1'").toPandas()
    assert len(queue) == rep.counts.kept == 30 and rep.counts.adds_up()
    cand = store.read("candidate_pairs").where(F.col("window_id") == WINDOW).toPandas()
    labelled = set(zip(cand[cand["label"].notna()]["query_id"], cand[cand["label"].notna()]["product_id"]))
    assert not labelled & set(zip(queue["query_id"], queue["product_id"]))  # only unlabelled pairs are queued
    hard = queue["query_type"] != "plain"
    assert hard.sum() > (~hard).sum()  # the mix over-weights the hard types
    for _, g in queue.groupby(["query_type", "traffic_band"]):  # least certain first inside a stratum
        g = g.sort_values("stratum_rank")
        ent = g["entropy"].dropna().to_numpy()
        assert (np.diff(ent) <= 1e-12).all() and not g["entropy"].isna().to_numpy()[:len(ent)].any()
    csv, jsonl, md = rep.info["export"]
    exported = pd.read_csv(csv)
    assert len(exported) == 30 and {"query", "title", "rater_id", "label"} <= set(exported.columns)
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert first["label_options"] == ["4-Excellent", "3-Related", "2-Mismatch", "1-Irrelevant"]
    assert "3-Related:" in first["rubric"] and "2-Mismatch" in md.read_text()
    # a second round does not queue the same pairs again
    rep2 = job(store, "annotate_candidates", window_id=WINDOW, budget=10, queue_id="round-2",
               export_dir=str(tmp_path / "export"))
    q2 = store.read("annotation_queue").where("queue_id = 'round-2'").toPandas()
    assert rep2.counts.filtered["queued_before"] == 30
    assert not set(zip(q2["query_id"], q2["product_id"])) & set(zip(queue["query_id"], queue["product_id"]))

    # raters answer: two raters disagree on one pair (both kept), one rater contradicts themself (quarantined),
    # a malformed line, a label off the scale and a pair no queue holds
    tasks = [json.loads(x) for x in jsonl.read_text().splitlines()]
    a = lambda t, rater, label: json.dumps({"queue_id": "round-1", "query_id": t["query_id"],  # noqa: E731
                                            "product_id": t["product_id"], "rater_id": rater, "label": label})
    lines = [a(t, "r1", "3-Related" if i % 2 else 4) for i, t in enumerate(tasks[:20])]
    lines += [a(tasks[0], "r2", "2"), a(tasks[1], "r3", "1-Irrelevant"), a(tasks[1], "r3", "4-Excellent"),
              "{not json", a(tasks[2], "r2", "7-Perfect"),
              json.dumps({"query_id": "q-nope", "product_id": "P0", "rater_id": "r1", "label": "3"}),
              a(tasks[3], "r1", "3-Related")]  # tasks[3] r1 said 3-Related already: a repeat
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(lines) + "\n")
    got = job(store, "load_labels", source="annotations", labels=str(answers))
    c = got.counts
    assert c.rows_in == len(lines) and c.adds_up()
    assert (c.kept, c.quarantined, c.filtered["repeated_row"]) == (21, 5, 1)
    q = store.read("quarantine").where("stage = 'load_annotations'").toPandas()
    assert sorted(q["reason"]) == ["invalid_label", "malformed_row", "rater_conflict", "rater_conflict",
                                   "unknown_task"]
    assert sorted(q[q["reason"] == "rater_conflict"]["source_row"]) == [22, 23]  # the file's lines, 1-based
    votes = store.read("query_product_labels").where("source = 'annotations'").toPandas()
    assert len(votes) == 21 and set(votes["label_source"]) == {"rater:r1", "rater:r2"}
    first_pair = votes[(votes["query_id"] == tasks[0]["query_id"]) & (votes["product_id"] == tasks[0]["product_id"])]
    assert sorted(first_pair["label"]) == [2, 4]  # two raters' votes kept
    status = store.read("annotation_queue").where("queue_id = 'round-1'").toPandas().set_index(["query_id",
                                                                                                "product_id"])
    assert (status["status"] == "labelled").sum() == 20 and status["n_votes"].max() == 2
    # loading the same file again changes nothing
    versions = store.read("query_product_labels").where("source = 'annotations'").count()
    again = job(store, "load_labels", source="annotations", labels=str(answers))
    assert again.counts.kept == 21 and store.read("query_product_labels").where(
        "source = 'annotations'").count() == versions
    assert store.read("quarantine").where("stage = 'load_annotations'").count() == 5

    # the SFT corpus from the candidates' judged pairs (old judgments and the new votes alike)
    sft = job(store, "build_sft_corpus", from_candidates=WINDOW, corpus_id="from-logs")
    pairs = store.read("corpus_pairs").where("corpus_id = 'from-logs'").toPandas()
    judged_in_window = set(zip(cand[cand["label"].notna()]["query_id"], cand[cand["label"].notna()]["product_id"]))
    assert set(zip(pairs["query_id"], pairs["product_id"])) == judged_in_window | set(
        zip(votes["query_id"], votes["product_id"]))
    assert set(pairs["source"]) == {f"candidates:{WINDOW}"}
    mix = {k: v for k, v in sft.counts.extra.items() if k.startswith("mix:")}
    assert sum(mix.values()) == sft.counts.kept and any(":negation" in k for k in mix)
    assert "label_cv_permille" in sft.counts.extra
