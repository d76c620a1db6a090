"""Corpora stages in sequence on the sample world, the TRL trainers built from their tables, and a killed pass@N
run that resumes without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pyspark.sql import functions as F

from taosr1.corpora.pass_at_n import done_chunks
from taosr1.knowledge.rules import RuleSet
from taosr1.knowledge.teacher import teach
from taosr1.prompts import parse_completion
from taosr1.prompts.template import INSTRUCTION_COMPACT
from taosr1.training.data import load_dataset_for
from taosr1.training.rewards import format_reward, label_reward
from taosr1.training.trainers import TrainConfig, dpo_trainer, grpo_trainer, save_trained, sft_trainer
from tests.helpers import REPO, SPARK_SUBMIT, job, jvm_only, store_at

pytestmark = jvm_only


def test_rewards():
    good = "3-Related\n<think>\n1. Query understanding: a\n2. Item understanding: b\n3. Category match: c\n" \
           "4. Attribute match: d\n5. Judgement: e\n</think>"
    comps = [good, "4-Excellent", "blah", [{"role": "assistant", "content": good}]]
    assert label_reward([None] * 4, comps, gold_label=[3, 3, 3, 3]) == [1.0, 0.0, 0.0, 1.0]
    assert label_reward([None] * 2, [good, "4-Excellent"], gold_label=[3, 3], partial_credit=0.5) == [1.0, 0.5]
    assert format_reward([None] * 4, comps) == [1.0, 0.5, 0.0, 1.0]


def test_knowledge_teacher_explains_negation(world):
    products, _ = world
    p = products.iloc[0].to_dict()  # a corded drill
    value = p["attributes"]["power_source"]
    level, steps = teach(f"drill without {value}", p)
    assert level == 2 and "excluded" in steps.attributes


@pytest.fixture(scope="module")
def corpus(spark, world, tmp_path_factory):
    store = store_at(spark, tmp_path_factory.mktemp("corpora") / "wh")
    job(store, "load_labels", source="world")
    rep = job(store, "build_sft_corpus", source="world", corpus_id="c-test", seed=3)
    return store, rep.run_id, rep


def test_splits_are_query_disjoint_deduplicated_and_balanced(corpus):
    store, cid, _ = corpus
    pairs = store.read("corpus_pairs").where(F.col("corpus_id") == cid)
    assert pairs.groupBy("query_id").agg(F.countDistinct("split").alias("k")).where("k > 1").count() == 0
    assert pairs.groupBy("query_id", "product_id").count().where("count > 1").count() == 0
    assert {r.split for r in pairs.select("split").distinct().collect()} == {"train", "dev", "test"}
    bal = {r.label: r["count"] for r in pairs.where("balanced").groupBy("label").count().collect()}
    assert len(bal) == 4 and len(set(bal.values())) == 1  # CV = 0
    assert pairs.where("balanced AND split != 'train'").count() == 0


def test_sft_corpus_keeps_only_agreeing_traces(corpus):
    """The default teacher is TaoSR1's: conditioned on the human label, arguing from retrieved rules."""
    store, cid, rep = corpus
    c = rep.counts
    assert c.adds_up() and c.kept > 0 and c.kept == c.rows_in - c.quarantined - c.filtered["teacher_disagrees"]
    rows = store.read("sft_corpus").where(F.col("corpus_id") == cid).collect()
    assert len(rows) == c.kept
    for r in rows:
        text = r.completion[0]["content"]
        assert parse_completion(text).ok and parse_completion(text).level == r.label
        assert [m["role"] for m in r.prompt] == ["system", "user"] and r.completion[0]["role"] == "assistant"
        assert "[" in text.split("5. Judgement:")[1]  # the judgement cites rule ids
    run = store.read("job_runs").where((F.col("job") == "build_sft_corpus") & (F.col("run_id") == cid)).first()
    assert run.status == "succeeded" and "kept_rate_label_1_permille" in run.counts
    assert any(k.startswith("kept_rate_type_") for k in run.counts)
    assert any(k.startswith("rules_alone_agree_label_") for k in run.counts)
    params = json.loads(run.params)
    assert params["teacher"] == "template" and params["rules_version"] == RuleSet.load().version
    assert params["prompt_version"] == "taosr1-prompt-v1"
    assert set(run.table_versions) >= {"corpus_pairs", "sft_corpus", "quarantine"}


def test_blind_and_engine_teachers_are_filtered_on_their_own_label(corpus):
    """The knowledge teacher does not see the label; an engine teacher is told it (and the rules) but may still
    disagree: the filter keeps only traces whose own label line equals the human label."""
    store, _, _ = corpus
    for teacher, extra in (("knowledge", {}), ("engine", {"engine": "rules"})):
        rep = job(store, "build_sft_corpus", source="world", corpus_id=f"c-{teacher}", seed=3, teacher=teacher,
                  **extra)
        assert rep.counts.adds_up() and rep.counts.filtered["teacher_disagrees"] > 0 and rep.counts.kept > 0
        for r in store.read("sft_corpus").where(F.col("corpus_id") == f"c-{teacher}").collect():
            assert parse_completion(r.completion[0]["content"]).level == r.label


def test_compact_corpus_for_small_models(corpus):
    store, _, _ = corpus
    rep = job(store, "build_sft_corpus", source="world", corpus_id="c-compact", seed=3, prompt="compact")
    row = store.read("sft_corpus").where(F.col("corpus_id") == "c-compact").first()
    assert row.prompt[0]["content"] == INSTRUCTION_COMPACT and rep.counts.kept > 0
    assert parse_completion(row.completion[0]["content"]).ok


def test_engine_stages_with_the_rules_engine(corpus):
    """pass@N → DPO pairs → difficulty in milliseconds per pair: the rules engine mixes right and wrong samples."""
    store, cid, _ = corpus
    pn = job(store, "sample_pass_at_n", corpus_id=cid, run_id="rules-run", engine="rules", n=4, chunks=2,
             balanced_only=True, seed=2)
    assert pn.counts.adds_up() and pn.counts.kept == pn.counts.rows_in and pn.counts.filtered["not_sampled_yet"] == 0
    samples = store.read("pass_at_n_samples").where(F.col("run_id") == "rules-run")
    assert samples.count() == 4 * pn.counts.rows_in
    assert samples.where("correct").count() > 0 and samples.where("NOT correct").count() > 0
    assert samples.where("NOT format_ok").count() == 0  # the rules write well-formed traces
    dpo = job(store, "build_dpo_pairs", run_id="rules-run")
    assert dpo.counts.kept > 0 and dpo.counts.filtered["all_correct"] > 0
    rows = store.read("dpo_pairs").where(F.col("run_id") == "rules-run").collect()
    for r in rows:  # chosen is right, rejected is wrong
        assert parse_completion(r.chosen[0]["content"]).level == r.label
        assert parse_completion(r.rejected[0]["content"]).level != r.label
    diff = job(store, "label_difficulty", run_id="rules-run")
    assert diff.counts.rows_in == pn.counts.rows_in and diff.counts.kept > 0
    grpo = store.read("grpo_prompts").where(F.col("run_id") == "rules-run")
    assert grpo.where("in_grpo AND (n_correct = 0 OR n_correct >= n_samples)").count() == 0
    # n_correct means the same in both tables: samples whose label is right
    d = {(r.query_id, r.product_id): r.n_correct for r in rows}
    g = {(r.query_id, r.product_id): r.n_correct for r in grpo.collect()}
    assert all(g[k] == v for k, v in d.items())


def test_a_training_stage_without_rows_fails_or_keeps_its_base(corpus, builtin_model, tmp_path):
    import json as _json

    from taosr1.errors import InputError

    store, _, _ = corpus
    with pytest.raises(InputError, match="no training rows"):
        job(store, "train_grpo", data="no-such-run", base=builtin_model, out=str(tmp_path / "g"))
    rep = job(store, "train_grpo", data="no-such-run", base=builtin_model, out=str(tmp_path / "g"),
              if_empty="keep_base")
    card = _json.loads((tmp_path / "g" / "taosr1_model.json").read_text())
    assert rep.info["skipped"] and "no training rows" in card["skipped"]
    assert (tmp_path / "g" / "model.safetensors").read_bytes() == (
        __import__("pathlib").Path(builtin_model) / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_pipeline_sft_pass_at_n_dpo_difficulty_and_trl_trainers(corpus, builtin_model, tmp_path, spark):
    store, cid, _ = corpus
    sft_ds = load_dataset_for("sft", store, cid)
    assert sft_ds.column_names == ["prompt", "completion"] and len(sft_ds) > 50
    cfg = TrainConfig(max_steps=150, batch_size=8, learning_rate=5e-3, logging_steps=50)
    trainer = sft_trainer(builtin_model, sft_ds, str(tmp_path / "sft-run"), cfg)
    trainer.train()
    policy = str(save_trained(trainer, str(tmp_path / "sft"), "sft", sft_ds.info.description, cfg))
    pn = job(store, "sample_pass_at_n", corpus_id=cid, model=policy, batch_size=16, n=4, max_new_tokens=24,
             chunks=3, balanced_only=True, temperature=1.0, seed=1)
    rid, c = pn.run_id, pn.counts
    assert c.kept == c.rows_in and c.extra["samples"] == 4 * c.rows_in
    samples = store.read("pass_at_n_samples").where(F.col("run_id") == rid)
    assert samples.where("parsed_label IS NOT NULL").count() > 0  # the SFT'ed policy answers label-first
    # beside the samples, the policy's arg-max label on the same pairs, recomputed here from its label probabilities
    import numpy as np

    from taosr1.engines import engine_config
    from taosr1.evaluation.evaluate import split_pairs_with_products
    from taosr1.inference import PROB_COLS, with_label_probs

    pol = pn.info["policy"]
    pairs = split_pairs_with_products(store, cid, "train").where("balanced")
    got = with_label_probs(pairs, engine_config(model_path=policy)).select("label", *PROB_COLS).toPandas()
    want = np.mean(np.array([4, 3, 2, 1])[got[list(PROB_COLS)].to_numpy().argmax(axis=1)] == got["label"])
    assert pol["pairs"] == c.rows_in == len(got) and abs(pol["argmax_accuracy"] - want) < 1e-3
    assert pol["sampled_accuracy"] == round(samples.where("correct").count() / samples.count(), 4)
    assert 0.05 <= pol["fitted_temperature"] <= 20
    dpo = job(store, "build_dpo_pairs", run_id=rid)
    assert dpo.counts.adds_up() and dpo.counts.kept > 0
    diff = job(store, "label_difficulty", run_id=rid)
    assert diff.counts.rows_in == c.rows_in
    grpo = store.read("grpo_prompts").where(F.col("run_id") == rid)
    assert grpo.where("in_grpo AND (n_correct = 0 OR n_correct >= n_samples)").count() == 0
    # the tables load straight into datasets in the trainers' own columns, and the trainers build and step
    dpo_ds = load_dataset_for("dpo", store, rid)
    assert dpo_ds.column_names == ["prompt", "chosen", "rejected"]
    dpo_trainer(policy, dpo_ds, str(tmp_path / "dpo"), TrainConfig(max_steps=2, batch_size=4)).train()
    grpo_ds = load_dataset_for("grpo", store, rid)
    if len(grpo_ds):
        kept = grpo.where("in_grpo").groupBy("gold_label").count().collect()
        assert len({r["count"] for r in kept}) == 1  # class-balanced (CV = 0)
        g = grpo_trainer(policy, grpo_ds, str(tmp_path / "grpo"),
                         TrainConfig(max_steps=1, batch_size=4, grpo_num_generations=2, grpo_max_completion_length=24))
        g.train()
        assert any("reward" in k for h in g.state.log_history for k in h)


def test_difficulty_counts_its_input_and_a_pair_listed_twice_fails_the_run(corpus, spark, tmp_path):
    """label_difficulty's rows_in is the pass@N run's distinct pairs (its input), kept and the filters are counted
    on the committed rows; a corpus that lists a sampled pair twice (the join fans out) fails the run, naming the
    pair, and its job_runs row says so."""
    import shutil

    from taosr1.errors import SchemaViolation

    src, cid, _ = corpus
    shutil.copytree(src.root, tmp_path / "wh")
    store = store_at(spark, tmp_path / "wh")
    job(store, "sample_pass_at_n", corpus_id=cid, run_id="twice", engine="rules", n=2, chunks=1, balanced_only=True)
    samples = store.read("pass_at_n_samples").where(F.col("run_id") == "twice")
    c = job(store, "label_difficulty", run_id="twice").counts
    assert c.adds_up() and c.rows_in == samples.select("query_id", "product_id").distinct().count()
    key = samples.select("query_id", "product_id").first()
    again = store.read("corpus_pairs").where((F.col("corpus_id") == cid) & (F.col("query_id") == key.query_id) &
                                             (F.col("product_id") == key.product_id))
    store.write("corpus_pairs", again, "append")
    with pytest.raises(SchemaViolation, match=f"primary key occurs 2 times.*{key.product_id}"):
        job(store, "label_difficulty", run_id="twice")
    last = store.read("job_runs").where("job = 'label_difficulty'").orderBy(F.desc("started_at")).first()
    assert last.status == "failed" and "primary key occurs 2 times" in last.error


@pytest.mark.slow
def test_killed_pass_at_n_resumes_without_duplicates(corpus, builtin_model, spark):
    store, cid, _ = corpus
    run = "passn-kill-test"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    args = [SPARK_SUBMIT, "--master", "local[2]", str(REPO / "jobs" / "sample_pass_at_n.py"), "--corpus-id", cid,
            "--run-id", run, "--n", "2", "--max-new-tokens", "8", "--chunks", "6", "--balanced-only", "--model",
            builtin_model, "--warehouse", store.settings.warehouse]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    for line in iter(proc.stdout.readline, b""):
        if b"pass_at_n.chunk" in line and b"chunk=1" in line or time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    survived = done_chunks(store, run)
    assert 1 <= len(survived) < 6, survived
    before = {c: store.read("pass_at_n_samples").where(f"run_id = '{run}' AND chunk = {c}").count() for c in survived}
    rep = job(store, "sample_pass_at_n", corpus_id=cid, run_id=run, model=builtin_model, n=2, max_new_tokens=8,
              chunks=6, balanced_only=True)
    assert rep.run_id == run and done_chunks(store, run) == set(range(6))
    samples = store.read("pass_at_n_samples").where(F.col("run_id") == run)
    assert samples.groupBy("query_id", "product_id", "sample_idx").count().where("count > 1").count() == 0
    assert samples.count() == 2 * rep.counts.rows_in
    for c, n in before.items():  # finished chunks were not redone
        assert store.read("pass_at_n_samples").where(f"run_id = '{run}' AND chunk = {c}").count() == n
    resumed = store.read("job_runs").where("job = 'sample_pass_at_n' AND status = 'succeeded'").collect()
    assert any(sorted(survived) == sorted(json.loads(r.params)["resumed_chunks"]) for r in resumed)


def test_corpora_on_the_real_homedepot_judgments(spark, homedepot, tmp_path):
    store = store_at(spark, tmp_path / "wh")
    job(store, "load_labels", source="homedepot")
    rep = job(store, "build_sft_corpus", source="homedepot", corpus_id="hd", seed=5)
    assert rep.counts.adds_up() and rep.counts.kept > 0
    pairs = store.read("corpus_pairs").where("corpus_id = 'hd'")
    run = store.read("job_runs").where("run_id = 'hd'").first()
    dups = run.counts["pairs:filtered:duplicate_pair"]  # the same query typed in other casing, judged twice
    assert 0 < dups < 50 and pairs.count() == 18935 - dups
    assert pairs.groupBy("query_id", "product_id").count().where("count > 1").count() == 0
    assert pairs.groupBy("query_id").agg(F.countDistinct("split").alias("k")).where("k > 1").count() == 0
    pn = job(store, "sample_pass_at_n", corpus_id="hd", engine="rules", n=2, chunks=60, balanced_only=True,
             max_chunks=1)
    c = pn.counts
    assert c.extra["chunks_done"] == 1 and c.kept + c.filtered["not_sampled_yet"] == c.rows_in and c.adds_up()
    assert job(store, "build_dpo_pairs", run_id=pn.run_id).counts.rows_in == c.kept
    assert job(store, "label_difficulty", run_id=pn.run_id).counts.rows_in == c.kept


@pytest.mark.slow
def test_killed_sft_resumes_from_its_last_checkpoint(corpus, builtin_model, tmp_path):
    store, cid, _ = corpus
    out, run_dir = tmp_path / "sft", tmp_path / ".sft-run"
    settings = dict(max_steps=120, checkpoint_steps=10, batch_size=4, dtype="float32")
    args = [sys.executable, "-c", "from taosr1.cli import main; main()", "train", "sft", "--data", cid, "--base",
            builtin_model, "--out", str(out), "--warehouse", store.root,
            *[x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v))]]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not list(run_dir.glob("checkpoint-*/trainer_state.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # wherever it is: maybe mid-way through writing the next checkpoint
    proc.wait()
    assert list(run_dir.glob("checkpoint-*/trainer_state.json")), "no checkpoint before the kill"
    assert not (out / "model.safetensors").exists()
    rep = job(store, "train_sft", data=cid, base=builtin_model, out=str(out), **settings)
    start = int(rep.info["resumed_from"].rsplit("-", 1)[1])
    assert 10 <= start < 120 and rep.counts.extra["steps"] == 120
    assert (out / "model.safetensors").exists() and not run_dir.exists()
    # other settings never resume from that attempt's checkpoints
    again = job(store, "train_sft", data=cid, base=builtin_model, out=str(out), max_steps=20, batch_size=4,
                dtype="float32")
    assert "resumed_from" not in again.info
