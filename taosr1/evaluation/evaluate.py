"""``jobs/evaluate.py``: models and baselines on one labelled split → ``eval_metrics`` (Delta) + an HTML report.

Every model is read out the deployed way: one forward pass, the four label probabilities, the arg-max level for
the classification metrics, and CumPT tiers (the model's calibrated β, else 0.5) for tier agreement. Baselines are
fitted on the corpus' train split and scored on the same evaluation split.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1 import contracts
from taosr1.engines import engine_config
from taosr1.errors import InputError
from taosr1.evaluation.baselines import run_baselines
from taosr1.evaluation.metrics import classification_metrics, tier_agreement
from taosr1.evaluation.report import write_report
from taosr1.inference import PROB_COLS, engine_failures, with_label_probs
from taosr1.io.tables import TableStore
from taosr1.job import Context, Ident, Params, Stage
from taosr1.labels import LEVELS, TIER_OF_LEVEL
from taosr1.model.reference import ModelRef
from taosr1.obs import get_logger, log_event
from taosr1.pairs import with_products
from taosr1.scoring.cumpt import levels

log = get_logger(__name__)


class EvaluateParams(Params):
    corpus_id: Ident = Field(description="Corpus whose split to evaluate on.")
    models: dict[str, str] = Field(min_length=1, description="NAME=DIR, repeatable: the model folders to score.")
    split: Literal["dev", "test", "train"] = "dev"
    report: str | None = Field(default=None, description="HTML path (default <warehouse>/reports/<eval id>.html).")
    embeddings: bool = Field(default=True, description="Include the MiniLM embedding baseline.")
    batch_size: int = Field(default=32, ge=1)


def split_pairs_with_products(store: TableStore, corpus_id: str, split: str) -> DataFrame:
    pairs = store.read("corpus_pairs").where((F.col("corpus_id") == corpus_id) & (F.col("split") == split))
    return with_products(store, pairs, how="inner").drop("_known")


def _mix(levels_arr: np.ndarray) -> dict[str, int]:
    names = [TIER_OF_LEVEL[int(v)] for v in levels_arr]
    return {t: names.count(t) for t in sorted(set(names))}


class Evaluate(Stage[EvaluateParams]):
    """Models and baselines on one labelled split → ``eval_metrics`` rows and an HTML report."""

    name = "evaluate"
    Params = EvaluateParams
    reads = ("corpus_pairs", "products")
    writes = ("eval_metrics",)

    def run_id(self, params: EvaluateParams) -> str:
        return f"eval-{params.corpus_id}-{params.split}-{uuid.uuid4().hex[:8]}"

    def run(self, ctx: Context, p: EvaluateParams) -> None:
        store, eval_id = ctx.store, ctx.run_id
        test_df = split_pairs_with_products(store, p.corpus_id, p.split).persist()
        try:
            test = test_df.select("query_id", "product_id", "query", "title", "label").toPandas().sort_values(
                ["query_id", "product_id"]).reset_index(drop=True)
            if test.empty:
                raise InputError(f"corpus {p.corpus_id} has no '{p.split}' pairs")
            gold = test["label"].to_numpy(dtype=int)
            rows: list[dict] = []
            tiers = {"gold": _mix(gold)}
            for system, path in p.models.items():
                model = ModelRef.resolve(path)
                with engine_failures():
                    scored = (with_label_probs(test_df, engine_config(model_path=path, batch_size=p.batch_size))
                              .select("query_id", "product_id", *PROB_COLS, "error").toPandas()
                              .sort_values(["query_id", "product_id"]).reset_index(drop=True))
                if len(scored) != len(test) or scored["error"].notna().any():
                    raise RuntimeError(f"{system}: {scored['error'].notna().sum()} of {len(test)} pairs failed to "
                                       f"score ({len(scored)} came back)")
                probs = scored[list(PROB_COLS)].to_numpy()
                pred = np.array(LEVELS)[probs.argmax(axis=1)]
                tier_levels = levels(probs, model.thresholds)
                m = classification_metrics(gold, pred)
                m.update(system=system, kind="model", model_version=model.version,
                         tier_agreement=tier_agreement(gold, tier_levels), beta_cum=model.thresholds.beta_cum)
                rows.append(m)
                tiers[system] = _mix(tier_levels)
                log_event(log, "evaluate.model", system=system, macro_f1=round(m["macro_f1"], 4),
                          accuracy=round(m["accuracy"], 4), thresholds=model.threshold_origin)
            train = split_pairs_with_products(store, p.corpus_id, "train").select("query", "title", "label").toPandas()
            for name, pred in run_baselines(train.to_dict("list"), test.to_dict("list"), p.embeddings).items():
                m = classification_metrics(gold, pred)
                m.update(system=name, kind="baseline", model_version=None, tier_agreement=None, beta_cum=None)
                rows.append(m)
        finally:
            test_df.unpersist()
        now = dt.datetime.now(dt.timezone.utc)
        out = ctx.spark.createDataFrame([
            dict(eval_id=eval_id, system=r["system"], kind=r["kind"], model_version=r["model_version"],
                 corpus_id=p.corpus_id, split=p.split, n=r["n"], accuracy=r["accuracy"], macro_f1=r["macro_f1"],
                 per_class=r["per_class"], confusion=json.dumps(r["confusion"]), tier_agreement=r["tier_agreement"],
                 beta_cum=r["beta_cum"], created_at=now) for r in rows], schema=contracts.load("eval_metrics").schema)
        c = ctx.report.counts
        c.rows_in = len(rows)
        c.kept = ctx.write("eval_metrics", out, "overwrite", replace={"eval_id": eval_id}).rows
        c.extra = {"pairs": len(gold)}
        notes = [f"split '{p.split}' of corpus {p.corpus_id}: {len(gold)} pairs, query-disjoint from the train split",
                 "gold label mix: " + ", ".join(f"{lv}: {int((gold == lv).sum())}" for lv in LEVELS),
                 "models: arg-max of the four label probabilities (one forward pass); tiers by CumPT",
                 "baselines: cut points fitted on the train split for macro-F1"]
        ctx.report.info["report"] = write_report(p.report or f"{store.root}/reports/{eval_id}.html",
                                                 f"taosr1 evaluation {eval_id}", rows, tiers, notes)


def metrics_table(store: TableStore, eval_id: str) -> pd.DataFrame:
    """The ``eval_metrics`` rows of one evaluation, for printing."""
    return (store.read("eval_metrics").where(F.col("eval_id") == eval_id)
            .select("system", "kind", "n", "accuracy", "macro_f1", "tier_agreement").toPandas())
