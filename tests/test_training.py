"""Evaluation (metrics, baselines, report) and the end-to-end training pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from taosr1.evaluation.baselines import apply_cuts, fit_cuts, overlap_scores, run_baselines
from taosr1.evaluation.metrics import classification_metrics, ndcg_at_10, tier_agreement
from taosr1.prompts import parse_completion
from tests.helpers import job, jvm_only, store_at



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
    preds = run_baselines({"query": q, "text": t, "label": list(gold)}, {"query": q, "text": t, "label": list(gold)},
                          with_embeddings=True)
    assert set(preds) == {"majority", "lexical", "embedding"}
    assert all(len(levels) == len(scores) == 8 for levels, scores in preds.values())


def test_ndcg_gains_are_levels_and_ties_get_no_credit():
    q = np.array(["a"] * 4 + ["b"] * 3 + ["c"])
    gold = np.array([4, 3, 2, 1, 1, 4, 2, 3])
    assert ndcg_at_10(q, gold, gold.astype(float)) == pytest.approx(1.0)  # query c (one pair) is left out
    constant = ndcg_at_10(q, gold, np.zeros(8))
    worst = ndcg_at_10(q, gold, -gold.astype(float))
    assert worst < constant < 1.0


def test_think_first_order_moves_the_label_last():
    from taosr1.prompts.template import COMPACT_HINT
    from taosr1.training.data import think_first

    row = {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "<query>x</query> Label first."}],
           "completion": [{"role": "assistant", "content": "3-Related\n<think>\n1. Query understanding: x\n</think>"}]}
    out = think_first(row)
    assert out["completion"][0]["content"].endswith("\n3-Related")
    assert out["completion"][0]["content"].startswith("<think>")
    assert out["prompt"][-1]["content"].endswith(COMPACT_HINT["think_first"])
    assert parse_completion(out["completion"][0]["content"], "think_first", require_cot=False).level == 3


@jvm_only
def test_evaluate_across_sources(spark, tmp_path, builtin_model):
    """Models scored on every judged pair of another loaded source; baselines fitted on the training source."""
    from pyspark.sql import functions as F

    store = store_at(spark, tmp_path / "wh")
    job(store, "load_labels", source="world")
    job(store, "load_labels", source="world", name="team-set", seed=11, judged_share=0.3)
    rep = job(store, "evaluate", source="team-set", train_source="world", models={"builtin": builtin_model},
              max_pairs=60, embeddings=False)
    rows = {r.system: r for r in store.read("eval_metrics").where(F.col("eval_id") == rep.run_id).collect()}
    assert set(rows) == {"builtin", "majority", "lexical", "chance"}
    r = rows["builtin"]
    # intervals (query-level bootstrap), the fitted-cut read-out, ordering and agreement, the paired difference
    assert r.macro_f1_low <= r.macro_f1 <= r.macro_f1_high and r.macro_f1_low < r.macro_f1_high
    assert r.cuts_macro_f1 is not None and -1 <= r.spearman <= 1 and -1 <= r.qwk <= 1
    assert r.reference == "lexical" and r.diff_macro_f1 == pytest.approx(r.macro_f1 - rows["lexical"].macro_f1)
    assert r.diff_macro_f1_low <= r.diff_macro_f1 <= r.diff_macro_f1_high
    assert json.loads(r.intervals)["draws"] == 1000 and "cuts_macro_f1" in json.loads(r.intervals)
    shares = [rows["chance"].per_class[f"precision_{lv}"] for lv in (4, 3, 2, 1)]
    assert sum(shares) == pytest.approx(1.0) and rows["chance"].accuracy == 0.25
    assert rows["chance"].macro_f1 == pytest.approx(np.mean([2 * p / 4 / (p + 1 / 4) for p in shares]))
    assert 'id="intervals"' in rep.info["report"].read_text()
    assert r.source == "team-set" and r.train_source == "world" and r.corpus_id is None and r.reading == "label_probs"
    assert 0 <= r.ndcg_10 <= 1 and 0 < r.n <= 80 and rows["lexical"].n == r.n
    assert "fitted for macro-F1 on source &#x27;world&#x27;" in rep.info["report"].read_text()
    with pytest.raises(Exception, match="--train-source"):
        job(store, "evaluate", source="team-set", models={"builtin": builtin_model})
    with pytest.raises(Exception, match="--corpus-id .* or --source"):
        job(store, "evaluate", models={"builtin": builtin_model})


@pytest.mark.slow
@jvm_only
def test_pipeline_train_runs_the_loop_in_process_until_a_step(spark, tmp_path):
    """`taosr1 pipeline train` walks the same steps as the training DAG in one process; the whole loop (evaluation
    and promotion included) is the DAG test's (tests/test_airflow.py). Here: the pipeline's own part, from loading
    the judged pairs and building the base model to ``--until``, which stops after SFT; and TRL's loss curve in the
    SFT stage's MLflow run."""
    import mlflow
    from click.testing import CliRunner

    from taosr1.cli import app
    from taosr1.tracking import tracking_uri

    wh = tmp_path / "wh"
    res = CliRunner().invoke(app, ["pipeline", "train", "--until", "sft", "--sft-steps", "20", "--warehouse", str(wh)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    for step in ("load + base model", "corpus", "readout", "sft"):
        assert step in out
    assert "learning curve of the read-out" in out and "sft_think_first" not in out and "passn" not in out
    assert "dev table" not in out and "champion:" not in out  # nothing past SFT ran
    models = sorted(p.name for p in (wh / "models").iterdir())
    assert [m.split("-")[0] for m in models] == ["lpft", "readout", "sft", "taosr1"]
    corpus = models[0].removeprefix("lpft-")
    card = json.loads((wh / "models" / models[0] / "taosr1_model.json").read_text())
    assert card["stage"] == "readout_ft" and card["data"].startswith(f"corpus_pairs {corpus} split=train")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(str(wh)))
    runs = {r.data.tags["taosr1.stage"]: r for r in
            client.search_runs([client.get_experiment_by_name("taosr1").experiment_id])}
    assert set(runs) == {"train_readout", "train_sft"}  # the training stages that ran
    sft = runs["train_sft"]
    assert sft.info.status == "FINISHED" and "train_loss" in sft.data.metrics
    assert len(client.get_metric_history(sft.info.run_id, "loss")) >= 2  # TRL logs every 10 of 20 steps
    assert sft.data.params["taosr1.max_steps"] == "20"
    bad = CliRunner().invoke(app, ["pipeline", "train", "--until", "sft2", "--warehouse", str(wh)])
    assert bad.exit_code != 0 and "not a step of the loop: 'sft2'" in bad.output and "Traceback" not in bad.output


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


def test_label_weight_scales_the_label_tokens_share_of_the_sft_loss():
    """Weight 1 is TRL's plain completion loss (mean over completion tokens); weight w counts the first completion
    token (the label, post-CoT) w times."""
    import torch

    from taosr1.training.trainers import label_weighted_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, -100, 3, 5, 7, 1], [-100, 4, 2, 2, -100, -100]])
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100,
                                           reduction="none")
    valid = labels[:, 1:] != -100
    assert label_weighted_loss(logits, labels, 1.0) == pytest.approx(float(ce[valid].mean()), rel=1e-6)
    first = [(0, 1), (1, 0)]  # the label position of each row (shifted by one)
    w = valid.float()
    for i, j in first:
        w[i, j] = 5.0
    want = float((ce * w).sum() / w.sum())
    assert label_weighted_loss(logits, labels, 5.0) == pytest.approx(want, rel=1e-6)
    only_label = float(sum(ce[i, j] for i, j in first) / 2)
    assert label_weighted_loss(logits, labels, 1e6) == pytest.approx(only_label, rel=1e-3)


def test_gpu_flags_reach_trls_configs_before_the_trainer_is_built():
    """``--use-vllm`` goes into GRPOConfig (TRL reads it in GRPOTrainer.__init__), with the colocated mode; the
    label weight reaches the SFT settings of the post-CoT order only."""
    from taosr1.training.trainers import TrainParams, grpo_args

    from dataclasses import replace

    gpu = TrainParams(data="run", base="b", out="o", use_vllm=True, cpu=False, label_weight=4.0).train_config()
    assert gpu.use_vllm and not gpu.use_cpu and gpu.label_weight == 4.0
    # GRPOConfig on this CPU box: the same settings with the CPU kept (accelerate refuses a GPU run without one)
    args = grpo_args(replace(gpu, use_cpu=True, bf16=False), "/tmp/taosr1-grpo-args")
    assert args.use_vllm is True and args.vllm_mode == "colocate"
    assert grpo_args(TrainParams(data="r", base="b", out="o").train_config(), "/tmp/x").use_vllm is False
    assert TrainParams(data="r", base="b", out="o", label_weight=4.0, order="think_first").train_config() \
        .label_weight == 1.0


def test_dpo_loss_choices_map_onto_trls_loss_types():
    from taosr1.training.trainers import dpo_loss_args

    assert dpo_loss_args("sigmoid") == {"loss_type": ["sigmoid"]}
    assert dpo_loss_args("robust+sft") == {"loss_type": ["robust", "sft"], "loss_weights": [1.0, 1.0],
                                           "label_smoothing": 0.1}
    with pytest.raises(ValueError, match="dpo loss"):
        dpo_loss_args("nope")
    from trl import DPOConfig

    args = DPOConfig(output_dir="/tmp/taosr1-dpo-args", use_cpu=True, **dpo_loss_args("sigmoid+sft"))
    assert args.loss_type == ["sigmoid", "sft"] and args.loss_weights == [1.0, 1.0]


def test_the_pipeline_takes_the_loop_settings_the_training_dag_takes(tmp_path):
    """One settings model: `taosr1 pipeline train` offers every LoopSettings field (the DAG's params are generated
    from the same model, tests_airflow checks its side), and auto picks the recipe from the base model's card."""
    from click.testing import CliRunner

    from taosr1.cli import app
    from taosr1.stages import LoopSettings, resolve_recipe
    from taosr1.training.pipeline import PipelineParams

    assert set(LoopSettings.model_fields) <= set(PipelineParams.model_fields)
    assert PipelineParams(n=3, recipe="small", sft_steps=9, source="homedepot").loop() == LoopSettings(
        n=3, recipe="small", sft_steps=9)
    out = CliRunner().invoke(app, ["pipeline", "train", "--help"]).output
    for name in LoopSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in out, name
    card = tmp_path / "taosr1_model.json"
    card.write_text(json.dumps({"parameters": 134_515_008}))
    assert resolve_recipe("auto", str(tmp_path)) == "small"
    card.write_text(json.dumps({"parameters": 669_824}))
    assert resolve_recipe("auto", str(tmp_path)) == "builtin" and resolve_recipe("small", str(tmp_path)) == "small"


def test_the_loops_targets_name_each_miss_with_its_evidence():
    import pandas as pd

    from taosr1.evaluation.targets import loop_targets, targets_frame

    m = pd.DataFrame([dict(system=s, macro_f1=f, macro_f1_low=f - 0.02, macro_f1_high=f + 0.02)
                      for s, f in [("readout", 0.31), ("lpft", 0.36), ("sft", 0.35), ("dpo", 0.37), ("grpo", 0.38),
                                   ("lexical", 0.33), ("embedding", 0.37), ("chance", 0.233)]])
    curve = [dict(examples=0, macro_f1=0.30), dict(examples=1024, macro_f1=0.36), dict(examples=2048, macro_f1=0.35)]
    got = {t.name: t for t in loop_targets(m, seconds=4000, curve=curve)}
    assert got["beats lexical"].met is True and got["beats embedding"].met is False
    assert "best 0.360 at 1024" in got["beats embedding"].evidence and "+0.010" in got["beats embedding"].got
    assert got["beats cross_encoder"].met is None  # not evaluated: not measured, never "met"
    assert got["sft ≥ lpft"].met is False and "intervals" in got["sft ≥ lpft"].evidence
    assert got["dpo ≥ sft"].met and got["grpo ≥ dpo"].met and got["time"].met
    assert not loop_targets(m, seconds=6000)[-1].met
    assert set(targets_frame(list(got.values()))["met"]) == {"met", "missed", "not measured"}
    from rich.console import Console

    from taosr1.cli.present import targets_rich_table

    con = Console(record=True, width=250)
    con.print(targets_rich_table(list(got.values())))
    text = con.export_text()
    assert "missed" in text and "beats embedding" in text and "best 0.360 at 1024" in text


def test_the_fitted_temperature_recovers_the_one_the_labels_were_drawn_at():
    import numpy as np

    from taosr1.corpora.pass_at_n import fit_temperature

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.0, size=(4000, 4))

    def soft(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    for t in (0.5, 2.0):  # the labels follow the probabilities flattened (or sharpened) by t
        truth = soft(logits / t)
        gold = np.array([4, 3, 2, 1])[[rng.choice(4, p=row) for row in truth]]
        assert abs(fit_temperature(soft(logits), gold) - t) / t < 0.1
