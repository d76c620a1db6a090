"""``taosr1 pipeline train``: the TaoSR1 loop (:data:`taosr1.stages.TRAINING_LOOP`) in one process.

corpora → SFT → pass@N with the SFT policy → DPO pairs → DPO → pass@N with the DPO policy → difficulty → GRPO →
evaluate. Defaults fit a laptop (2 CPU cores, the built-in model, the sample world): pass@N samples the
class-balanced train pairs only. Every stage writes its tables and model folders under the warehouse; the
evaluation runs on the dev split, which no training step saw (query-disjoint from train). A training step with no
rows (e.g. no pair had both right and wrong samples) keeps its starting model, and its card says so.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field, field_validator

from taosr1.ids import new_id
from taosr1.io.tables import TableStore
from taosr1.job import OptionalIdent, Params, run_stage
from taosr1.obs import get_logger, log_event
from taosr1.stages import (STAGES, TRAINING_LOOP, LoopSettings, loop_settings, loop_variables, resolve_recipe,
                           step_params)

log = get_logger(__name__)


class PipelineParams(Params, LoopSettings):
    """The loop's settings (:class:`taosr1.stages.LoopSettings`, shared with the training DAG) and what only the
    in-process pipeline chooses: the source, the base folder, the evaluation set and the think-first ablation."""

    source: str = "world"
    from_candidates: str | None = Field(default=None, description="Build the corpus from the judged pairs of this "
                                        "candidate window instead of the source's judgments.")
    base: str | None = Field(default=None, description="Base model folder (default: the built-in model, built if "
                             "missing); e.g. one made by `taosr1 model import`.")
    eval_source: OptionalIdent = Field(default=None, description="Evaluate on every judged pair of this loaded "
                                       "source (e.g. homedepot-dev) instead of the corpus' dev split.")
    think_first: bool = Field(default=True, description="Also train the think-first CoT-SFT ablation.")
    until: str | None = Field(default=None, description="Stop after this step of the loop, e.g. readout (the corpus "
                              "and the read-out only) or dpo; default: the whole loop, evaluation and promotion.")

    @field_validator("until")
    @classmethod
    def _a_step(cls, v: str | None) -> str | None:
        ids = [s.id for s in TRAINING_LOOP]
        if v is not None and v not in ids:
            raise ValueError(f"not a step of the loop: {v!r} (one of {', '.join(ids)})")
        return v

    def loop(self) -> LoopSettings:
        """The shared settings alone (what the DAG's params carry)."""
        return LoopSettings(**{k: getattr(self, k) for k in LoopSettings.model_fields})


def run_training_pipeline(store: TableStore, cfg: PipelineParams) -> dict:
    from rich.console import Console

    from taosr1.data.load import LoadLabels, LoadLabelsParams
    from taosr1.evaluation.evaluate import metrics_table
    from taosr1.evaluation.targets import loop_targets

    console = Console()
    started = time.time()
    stages: list[tuple[str, float, str]] = []
    console.rule("[bold]load judged pairs")
    t = time.time()
    loaded = run_stage(LoadLabels(), store, LoadLabelsParams(source=cfg.source))
    models = f"{store.root}/models"
    base = cfg.base or _builtin_base(models, cfg.source)
    recipe = resolve_recipe(cfg.recipe, base)
    stages.append(("load + base model", time.time() - t, f"{loaded.counts.kept} pairs, base {base}, "
                   f"recipe {recipe}"))
    variables = loop_variables(source=cfg.source, tag=new_id("loop"), base=base, models=models,
                               from_candidates=cfg.from_candidates or "", eval_source=cfg.eval_source or "")
    corpus = variables["corpus"]
    if not cfg.think_first:
        variables["sft_tf_model"] = ""  # the evaluation leaves the ablation out
    settings = loop_settings(cfg.loop(), recipe)
    reports = {}
    for step in TRAINING_LOOP:
        if step.id == "sft_think_first" and not cfg.think_first:
            continue
        console.rule(f"[bold]{step.id} ({step.job})")
        t = time.time()
        stage = STAGES[step.job].load()
        rep = run_stage(stage, store, stage.Params(**step_params(step, variables, settings)))
        reports[step.id] = rep
        if step.produces:
            variables[step.produces] = str(rep.info["path"])
        stages.append((step.id, time.time() - t, "no training rows: kept the starting model"
                       if rep.info.get("skipped") else _detail(rep)))
        if step.id == cfg.until:
            break
    evaluated = reports.get("evaluate")
    eval_id = evaluated.run_id if evaluated else None
    total = time.time() - started
    log_event(log, "pipeline.done", seconds=round(total, 1), corpus_id=corpus, eval_id=eval_id, until=cfg.until)
    metrics = metrics_table(store, eval_id) if eval_id else None
    curve = reports["readout"].info.get("curve", []) if "readout" in reports else []
    return {"stages": stages, "seconds": total, "metrics": metrics, "curve": curve,
            "targets": loop_targets(metrics, total, curve) if metrics is not None else [],
            "report": evaluated.info["report"] if evaluated else None, "corpus_id": corpus,
            "run_id": variables["run"], "eval_id": eval_id, "reports": reports,
            "promotion": reports["promote"].info["reason"] if "promote" in reports else None}


def _detail(rep) -> str:
    c = rep.counts
    head = f"{rep.run_id}: in {c.rows_in}, kept {c.kept}"
    policy = rep.info.get("policy")
    tail = f"; sampled accuracy {policy['sampled_accuracy']}, arg-max {policy['argmax_accuracy']}, fitted " \
        f"temperature {policy['fitted_temperature']}" if policy else ""
    return head + (f", quarantined {c.quarantined}" if c.quarantined else "") + \
        ("".join(f", {k} {v}" for k, v in c.filtered.items() if v)) + tail


def _builtin_base(models: str, source: str) -> str:
    from taosr1.data.sources import load_source
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts

    base = Path(models) / "taosr1-builtin"
    if not (base / "config.json").exists():
        build_builtin_model(catalog_texts(*load_source(source)), base, BuiltinConfig())
    return str(base)
