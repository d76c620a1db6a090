"""``taosr1 pipeline train``: corpora → SFT → pass@N → DPO → difficulty → GRPO → evaluate, end to end.

Defaults fit a laptop (2 CPU cores, the built-in model, the sample world): pass@N samples the class-balanced train
pairs only. Every stage writes its tables and model folders under the warehouse; the evaluation runs on the dev
split, which no training step saw (query-disjoint from train).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from taosr1.io.tables import TableStore
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


@dataclass
class PipelineConfig:
    source: str = "world"
    n: int = 5
    temperature: float = 1.0
    max_new_tokens: int = 160
    sft_steps: int = 300
    dpo_steps: int = 60
    grpo_steps: int = 20
    embeddings: bool = True
    seed: int = 13


def run_training_pipeline(spark: SparkSession, store: TableStore, cfg: PipelineConfig) -> dict:
    from rich.console import Console

    from taosr1.corpora.build import build_dpo_pairs, build_sft_corpus, label_difficulty, sample_pass_at_n
    from taosr1.data.load import load_judgments
    from taosr1.data.sources import load_source
    from taosr1.engines import EngineConfig
    from taosr1.evaluation.evaluate import evaluate
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.training.trainers import TrainConfig, run_stage

    console = Console()
    stages: list[tuple[str, float, str]] = []
    started = time.time()

    def step(name: str):
        console.rule(f"[bold]{name}")
        return time.time()

    t = step("load judged pairs")
    products, labels = load_source(cfg.source)
    load_judgments(spark, store, products, labels, cfg.source)
    models = Path(store.root) / "models"
    base = models / "taosr1-builtin"
    if not (base / "config.json").exists():
        build_builtin_model(catalog_texts(products, labels), base, BuiltinConfig())
    stages.append(("load + base model", time.time() - t, f"{len(labels)} pairs, base {base}"))

    t = step("corpora: splits + teacher CoT (SFT corpus)")
    cid, sc = build_sft_corpus(spark, store, cfg.source, seed=cfg.seed)
    stages.append(("sft corpus", time.time() - t, f"{cid}: kept {sc.kept} of {sc.rows_in}"))

    t = step("SFT (TRL)")
    sft = run_stage("sft", store.root, cid, str(base), str(models / f"sft-{cid}"),
                    TrainConfig(max_steps=cfg.sft_steps, learning_rate=3e-3, batch_size=8))
    stages.append(("train sft", time.time() - t, str(sft)))

    t = step(f"pass@{cfg.n} with the SFT policy")
    rid, pc = sample_pass_at_n(spark, store, cid, EngineConfig(model_path=str(sft), batch_size=16), n=cfg.n,
                               temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                               chunks=4, balanced_only=True)
    stages.append(("pass@N", time.time() - t, f"{rid}: {pc.extra['samples']} samples"))

    t = step("DPO pairs + DPO (TRL)")
    dp = build_dpo_pairs(spark, store, rid)
    dpo = run_stage("dpo", store.root, rid, str(sft), str(models / f"dpo-{rid}"),
                    TrainConfig(max_steps=cfg.dpo_steps, learning_rate=5e-4, batch_size=8)) if dp.kept else sft
    stages.append(("train dpo", time.time() - t, f"{dp.kept} pairs ({dp.extra.get('chosen_from_teacher', 0)} "
                                                 f"with the teacher's trace)"))

    t = step("difficulty + GRPO (TRL)")
    dc = label_difficulty(spark, store, rid)
    if dc.kept:
        grpo = run_stage("grpo", store.root, rid, str(dpo), str(models / f"grpo-{rid}"),
                         TrainConfig(max_steps=cfg.grpo_steps, learning_rate=2e-4, batch_size=8,
                                     grpo_num_generations=4, grpo_max_completion_length=cfg.max_new_tokens // 2))
        detail = f"{dc.kept} prompts with 0 < correct < N"
    else:
        grpo = None
        detail = "no prompt with 0 < correct < N: GRPO skipped"
    stages.append(("train grpo", time.time() - t, detail))

    t = step("evaluate on the dev split")
    systems = {"base": str(base), "sft": str(sft), "dpo": str(dpo)}
    if grpo is not None:
        systems["grpo"] = str(grpo)
    eval_id, report = evaluate(spark, store, systems, cid, split="dev", with_embeddings=cfg.embeddings)
    stages.append(("evaluate", time.time() - t, eval_id))
    metrics = store.read("eval_metrics").where(f"eval_id = '{eval_id}'").select(
        "system", "kind", "n", "accuracy", "macro_f1", "tier_agreement").toPandas()
    total = time.time() - started
    log_event(log, "pipeline.done", seconds=round(total, 1), corpus_id=cid, run_id=rid, eval_id=eval_id)
    return {"stages": stages, "seconds": total, "metrics": metrics, "report": report, "corpus_id": cid,
            "run_id": rid, "eval_id": eval_id}
