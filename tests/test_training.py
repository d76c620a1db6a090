"""Evaluation (metrics, baselines, report) and the end-to-end training pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from taosr1.evaluation.baselines import apply_cuts, fit_cuts, overlap_scores, run_baselines
from taosr1.evaluation.metrics import classification_metrics, tier_agreement
from tests.conftest import BACKEND

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

    from taosr1.config import Settings
    from taosr1.io import open_store
    from taosr1.training.pipeline import PipelineConfig, run_training_pipeline

    store = open_store(spark, Settings(warehouse=str(tmp_path / "wh")))
    shutil.copytree(builtin_model, tmp_path / "wh" / "models" / "taosr1-builtin")
    res = run_training_pipeline(spark, store, PipelineConfig(n=3, sft_steps=150, dpo_steps=4, grpo_steps=2,
                                                             max_new_tokens=32))
    m = res["metrics"].set_index("system")
    assert {"base", "sft", "dpo", "majority", "lexical", "embedding"} <= set(m.index)
    assert (m["n"] == m["n"].iloc[0]).all() and m["n"].iloc[0] > 20
    assert m.loc["base", "tier_agreement"] >= 0 and np.isnan(m.loc["lexical", "tier_agreement"])
    html = res["report"].read_text()
    assert html.count("data:image/png;base64,") >= 4 and "macro-F1" in html
    # every model folder carries a card naming its data
    import json

    for stage in ("sft", "dpo"):
        folder = next((tmp_path / "wh" / "models").glob(f"{stage}-*"))
        card = json.loads((folder / "taosr1_model.json").read_text())
        assert card["stage"] == stage and "v" in card["data"] and (folder / "model.safetensors").exists()


@jvm_only
def test_lora_sft_saves_a_merged_safetensors_model(spark, tmp_path, builtin_model, world):
    """The GPU recipe (LoRA on a real checkpoint) runs the same code path; here on the built-in model."""
    import json

    from taosr1.config import Settings
    from taosr1.corpora.build import build_sft_corpus
    from taosr1.data.load import load_judgments
    from taosr1.engines import EngineConfig, create_engine
    from taosr1.io import open_store
    from taosr1.training.trainers import TrainConfig, run_stage

    store = open_store(spark, Settings(warehouse=str(tmp_path / "wh")))
    load_judgments(spark, store, *world, "world")
    cid, _ = build_sft_corpus(spark, store, "world", corpus_id="lora")
    out = run_stage("sft", store.root, cid, builtin_model, str(tmp_path / "lora-sft"),
                    TrainConfig(max_steps=2, batch_size=4, lora_r=4))
    card = json.loads((out / "taosr1_model.json").read_text())
    assert card["config"]["lora_r"] == 4 and not (out / "adapter_config.json").exists()
    probs = create_engine(EngineConfig(model_path=str(out))).label_probs(["<|im_start|>user\nx<|im_end|>\n"])
    assert abs(probs.sum() - 1) < 1e-6
