"""Evaluation (metrics, baselines, report) and the end-to-end training pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from taosr1.evaluation.baselines import apply_cuts, fit_cuts, overlap_scores, run_baselines
from taosr1.evaluation.metrics import classification_metrics, tier_agreement
from tests.conftest import BACKEND, job, store_at

jvm_only = pytest.mark.skipif(BACKEND != "delta-rs", reason="runs Python UDFs on local JVM Spark")


def test_metrics_match_hand_computed_values():
    gold = np.array([4, 4, 3, 2, 1, 1])
    pred = np.array([4, 3, 3, 2, 2, 1])
    m = classification_metrics(gold, pred)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1: 4 -> 2/3, 3 -> 2/3, 2 -> 2/3, 1 -> 2/3
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["confusion"][0] == [1, 1, 0, 0] and sum(map(sum, m["confusion"])) == 6
    assert tier_agreement(gold, pred) == pytest.approx(5 / 6)  # 4->3 stays Good; 1->2 is Bad->Mid


def test_lexical_baseline_learns_cut_points():
    q = ["red drill"] * 4 + ["blue hose"] * 4
    t = ["red drill kit", "red saw", "green hammer", "blue drill", "blue hose reel", "hose", "paint", "blue paint"]
    gold = np.array([4, 2, 1, 3, 4, 3, 1, 2])
    scores = overlap_scores(q, t)
    cuts = fit_cuts(scores, gold)
    assert classification_metrics(gold, apply_cuts(scores, cuts))["macro_f1"] >= 0.5
    preds = run_baselines({"query": q, "title": t, "label": list(gold)}, {"query": q, "title": t, "label": list(gold)},
                          with_embeddings=True)
    assert set(preds) == {"majority", "lexical", "embedding"} and all(len(p) == 8 for p in preds.values())


@pytest.mark.slow
@jvm_only
def test_pipeline_train_end_to_end(spark, tmp_path, builtin_model):
    import shutil

    from taosr1.engines import engine_config
    from taosr1.evaluation.evaluate import split_pairs_with_products
    from taosr1.inference import PROB_COLS, with_label_probs
    from taosr1.scoring.cumpt import Thresholds, levels
    from taosr1.stages import TRAINING_LOOP
    from taosr1.training.pipeline import PipelineParams, run_training_pipeline

    store = store_at(spark, tmp_path / "wh")
    shutil.copytree(builtin_model, tmp_path / "wh" / "models" / "taosr1-builtin")
    res = run_training_pipeline(store, PipelineParams(n=3, sft_steps=150, dpo_steps=4, grpo_steps=2,
                                                      max_new_tokens=32, grpo_completion_tokens=16))
    assert [s[0] for s in res["stages"]][1:] == [s.id for s in TRAINING_LOOP]  # the one stage graph, in order
    m = res["metrics"].set_index("system")
    assert {"base", "sft", "dpo", "grpo", "majority", "lexical", "embedding"} <= set(m.index)
    assert (m["n"] == m["n"].iloc[0]).all() and m["n"].iloc[0] > 20
    assert np.isnan(m.loc["lexical", "tier_agreement"])
    # tier agreement of the base model, recomputed outside the evaluation from its label probabilities
    dev = split_pairs_with_products(store, res["corpus_id"], "dev")
    out = with_label_probs(dev, engine_config(model_path=builtin_model)).select("label", *PROB_COLS).toPandas()
    tiers = lambda lv: np.where(lv >= 3, 2, np.where(lv == 2, 1, 0))  # noqa: E731
    want = np.mean(tiers(levels(out[list(PROB_COLS)].to_numpy(), Thresholds.cum(0.5))) == tiers(out["label"]))
    assert abs(m.loc["base", "tier_agreement"] - want) < 1e-9
    # pass@N ran twice: with the SFT policy for DPO, with the DPO policy for the difficulty set
    policies = store.read("pass_at_n_samples").groupBy("run_id", "model_version").count().collect()
    assert len({r.run_id for r in policies}) == 2 and len({r.model_version for r in policies}) == 2
    html = res["report"].read_text()
    assert html.count("data:image/png;base64,") >= 4 and "macro-F1" in html
    # every model folder carries a card naming its data
    import json

    for stage in ("sft", "dpo", "grpo"):
        folder = next((tmp_path / "wh" / "models").glob(f"{stage}-*"))
        card = json.loads((folder / "taosr1_model.json").read_text())
        assert card["stage"] == stage and "v" in card["data"] and (folder / "model.safetensors").exists()


@jvm_only
def test_lora_sft_saves_a_merged_safetensors_model(spark, tmp_path, builtin_model, world):
    """The GPU recipe (LoRA on a real checkpoint) runs the same code path; here on the built-in model."""
    import json

    from taosr1.engines import create_engine, engine_config

    store = store_at(spark, tmp_path / "wh")
    job(store, "load_labels", source="world")
    job(store, "build_sft_corpus", source="world", corpus_id="lora")
    rep = job(store, "train_sft", data="lora", base=builtin_model, out=str(tmp_path / "lora-sft"), max_steps=2,
              batch_size=4, lora_r=4)
    out = rep.info["path"]
    assert rep.counts.kept > 0 and rep.counts.extra["steps"] == 2
    card = json.loads((out / "taosr1_model.json").read_text())
    assert card["config"]["lora_r"] == 4 and not (out / "adapter_config.json").exists()
    probs = create_engine(engine_config(model_path=str(out))).label_probs(["<|im_start|>user\nx<|im_end|>\n"])
    assert abs(probs.sum() - 1) < 1e-6
