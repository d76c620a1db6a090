"""``taosr1 pipeline train``: the TaoSR1 loop (:data:`taosr1.stages.TRAINING_LOOP`) in one process.

corpora → SFT → pass@N with the SFT policy → DPO pairs → DPO → pass@N with the DPO policy → difficulty → GRPO →
evaluate. Defaults fit a laptop (2 CPU cores, the built-in model, the sample world): pass@N samples the
class-balanced train pairs only. Every stage writes its tables and model folders under the warehouse; the
evaluation runs on the dev split, which no training step saw (query-disjoint from train). A training step with no
rows (e.g. no pair had both right and wrong samples) keeps its starting model, and its card says so.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import Field

from taosr1.io.tables import TableStore
from taosr1.job import OptionalIdent, Params, run_stage
from taosr1.model.loading import prompt_variant
from taosr1.obs import get_logger, log_event
from taosr1.stages import STAGES, TRAINING_LOOP, fill, loop_settings

log = get_logger(__name__)


class PipelineParams(Params):
    source: str = "world"
    from_candidates: str | None = Field(default=None, description="Build the corpus from the judged pairs of this "
                                        "candidate window instead of the source's judgments.")
    base: str | None = Field(default=None, description="Base model folder (default: the built-in model, built if "
                             "missing); e.g. one made by `taosr1 model import`.")
    recipe: Literal["auto", "builtin", "small"] = Field(default="auto", description="Training settings: builtin (the "
                                                        "0.7M built-in model) | small (an imported ~100M model on "
                                                        "CPU) | auto (builtin for the built-in model, else small).")
    eval_source: OptionalIdent = Field(default=None, description="Evaluate on every judged pair of this loaded "
                                       "source (e.g. homedepot-dev) instead of the corpus' dev split.")
    eval_pairs: int | None = Field(default=None, ge=1, description="Evaluate a stated subsample of about this many "
                                   "pairs (whole queries).")
    passn_pairs: int | None = Field(default=None, ge=1, description="pass@N samples at most this many train pairs.")
    think_first: bool = Field(default=True, description="Also train the think-first CoT-SFT ablation.")
    sft_completion: Literal["cot", "label"] = Field(default="cot", description="Post-CoT SFT on the label and its "
                                                    "CoT (the paper) | the label line only (an ablation).")
    gpu: bool = Field(default=False, description="pass@N with vLLM on CUDA, training on the GPU, GRPO generating "
                      "with TRL's colocated vLLM.")
    n: int = Field(default=5, ge=2, description="pass@N samples per pair.")
    temperature: float = Field(default=1.0, gt=0)
    max_new_tokens: int = Field(default=160, ge=1, description="pass@N: tokens per sample.")
    grpo_completion_tokens: int = Field(default=80, ge=1, description="GRPO: tokens per rollout.")
    readout_pairs: int | None = Field(default=None, ge=2, description="Read-out + fine-tune on about this many "
                                      "train pairs (whole queries; default: the recipe's).")
    readout_epochs: float | None = Field(default=None, gt=0, description="Fine-tune epochs after the read-out "
                                         "(default: the recipe's).")
    sft_label_weight: float = Field(default=1.0, ge=0, description="Post-CoT SFT: the label token's loss weight "
                                    "against each CoT token (1 = TRL's plain completion loss).")
    dpo_loss: Literal["sigmoid", "robust", "ipo", "sigmoid+sft", "robust+sft"] = Field(
        default="sigmoid+sft", description="DPO's TRL loss (pass@N pairs are noisy: an SFT term on the chosen side "
        "by default).")
    sft_steps: int = Field(default=300, ge=1)
    dpo_steps: int = Field(default=60, ge=1)
    grpo_steps: int = Field(default=20, ge=1)
    embeddings: bool = Field(default=True, description="Include the MiniLM embedding baseline.")
    min_gain_macro_f1: float = Field(default=0.005, ge=-1, le=1, description="Promotion: the GRPO model becomes "
                                     "the champion only if its macro-F1 beats the champion's by this much ...")
    min_gain_ndcg_10: float = Field(default=0.0, ge=-1, le=1, description="... and its NDCG@10 by this much.")
    seed: int = 13


def run_training_pipeline(store: TableStore, cfg: PipelineParams) -> dict:
    from rich.console import Console

    from taosr1.data.load import LoadLabels, LoadLabelsParams
    from taosr1.evaluation.evaluate import metrics_table

    console = Console()
    started = time.time()
    stages: list[tuple[str, float, str]] = []
    console.rule("[bold]load judged pairs")
    t = time.time()
    loaded = run_stage(LoadLabels(), store, LoadLabelsParams(source=cfg.source))
    models = f"{store.root}/models"
    base = cfg.base or _builtin_base(models, cfg.source)
    recipe = cfg.recipe if cfg.recipe != "auto" else ("builtin" if cfg.base is None else "small")
    stages.append(("load + base model", time.time() - t, f"{loaded.counts.kept} pairs, base {base}, "
                   f"recipe {recipe}"))
    tag = uuid.uuid4().hex[:8]
    corpus = f"corpus-{cfg.source}-{tag}"
    variables = {"source": cfg.source, "corpus": corpus, "run": f"passn-{cfg.source}-{tag}",
                 "base": base, "models": models, "from_candidates": cfg.from_candidates or "",
                 "prompt": prompt_variant(base), "eval_corpus": "" if cfg.eval_source else corpus,
                 "eval_source": cfg.eval_source or "", "eval_train_source": cfg.source if cfg.eval_source else "",
                 "sft_tf_model": ""}
    settings = loop_settings(n=cfg.n, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                             grpo_completion_tokens=cfg.grpo_completion_tokens, sft_steps=cfg.sft_steps,
                             dpo_steps=cfg.dpo_steps, grpo_steps=cfg.grpo_steps, seed=cfg.seed,
                             embeddings=cfg.embeddings, recipe=recipe, passn_pairs=cfg.passn_pairs,
                             eval_pairs=cfg.eval_pairs, gpu=cfg.gpu, sft_completion=cfg.sft_completion,
                             min_gain_macro_f1=cfg.min_gain_macro_f1, min_gain_ndcg_10=cfg.min_gain_ndcg_10,
                             readout_pairs=cfg.readout_pairs, readout_epochs=cfg.readout_epochs,
                             sft_label_weight=cfg.sft_label_weight, dpo_loss=cfg.dpo_loss)
    reports = {}
    for step in TRAINING_LOOP:
        if step.id == "sft_think_first" and not cfg.think_first:
            continue
        console.rule(f"[bold]{step.id} ({step.job})")
        t = time.time()
        stage = STAGES[step.job].load()
        wiring = fill(step.wiring, variables)
        if "models" in wiring:  # a skipped ablation names no model
            wiring["models"] = {k: v for k, v in wiring["models"].items() if v}
        rep = run_stage(stage, store, stage.Params(**wiring, **settings.get(step.id, {})))
        reports[step.id] = rep
        if step.produces:
            variables[step.produces] = str(rep.info["path"])
        stages.append((step.id, time.time() - t, "no training rows: kept the starting model"
                       if rep.info.get("skipped") else _detail(rep)))
    eval_id = reports["evaluate"].run_id
    total = time.time() - started
    log_event(log, "pipeline.done", seconds=round(total, 1), corpus_id=corpus, eval_id=eval_id)
    return {"stages": stages, "seconds": total, "metrics": metrics_table(store, eval_id),
            "curve": reports["readout"].info.get("curve", []),
            "report": reports["evaluate"].info["report"], "corpus_id": corpus,
            "run_id": variables["run"], "eval_id": eval_id, "reports": reports,
            "promotion": reports["promote"].info["reason"]}


def _detail(rep) -> str:
    c = rep.counts
    head = f"{rep.run_id}: in {c.rows_in}, kept {c.kept}"
    return head + (f", quarantined {c.quarantined}" if c.quarantined else "") + \
        ("".join(f", {k} {v}" for k, v in c.filtered.items() if v))


def _builtin_base(models: str, source: str) -> str:
    from taosr1.data.sources import load_source
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts

    base = Path(models) / "taosr1-builtin"
    if not (base / "config.json").exists():
        build_builtin_model(catalog_texts(*load_source(source)), base, BuiltinConfig())
    return str(base)
