"""``jobs/evaluate.py``: models and baselines on one labelled split → ``eval_metrics`` (Delta) + an HTML report.

Every model is read out the deployed way: one forward pass, the four label probabilities, the arg-max level for
the classification metrics, and CumPT tiers (the model's calibrated β, else 0.5) for tier agreement. Baselines are
fitted on the corpus' train split and scored on the same evaluation split.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from taosr1.engines.base import EngineConfig
from taosr1.engines.spark_runner import PROB_COLS, with_label_probs
from taosr1.evaluation.baselines import run_baselines
from taosr1.evaluation.metrics import classification_metrics, tier_agreement
from taosr1.evaluation.report import write_report
from taosr1.io.tables import TableStore
from taosr1.labels import LEVELS, TIER_OF_LEVEL
from taosr1.model.loading import model_version
from taosr1.obs import get_logger, log_event
from taosr1.runs import record_run
from taosr1.scoring.cumpt import levels, load_thresholds

log = get_logger(__name__)


def _split_pairs(store: TableStore, corpus_id: str, split: str):
    pairs = store.read("corpus_pairs").where((F.col("corpus_id") == corpus_id) & (F.col("split") == split))
    products = store.read("products").dropDuplicates(["product_id"]).drop("source")
    return pairs.join(products, "product_id")


def evaluate(spark: SparkSession, store: TableStore, models: dict[str, str], corpus_id: str, *, split: str = "dev",
             report_path: str | None = None, with_embeddings: bool = True, batch_size: int = 32) -> tuple[str, Path]:
    """Evaluate ``models`` (system name → model folder) and the baselines; returns (eval id, report path)."""
    eval_id = f"eval-{corpus_id}-{split}-{uuid.uuid4().hex[:8]}"
    test_df = _split_pairs(store, corpus_id, split).persist()
    test = test_df.select("query_id", "product_id", "query", "title", "label").toPandas().sort_values(
        ["query_id", "product_id"]).reset_index(drop=True)
    if test.empty:
        raise ValueError(f"corpus {corpus_id} has no '{split}' pairs")
    gold = test["label"].to_numpy(dtype=int)
    rows: list[dict] = []
    tiers = {"gold": {t: int(n) for t, n in zip(*np.unique(np.vectorize(TIER_OF_LEVEL.get)(gold),
                                                           return_counts=True))}}
    now = dt.datetime.now(dt.timezone.utc)
    with record_run(store, "evaluate", eval_id, params={"models": models, "corpus_id": corpus_id, "split": split}) as rec:
        for system, path in models.items():
            cfg = EngineConfig(model_path=path, batch_size=batch_size)
            scored = (with_label_probs(test_df, cfg).select("query_id", "product_id", *PROB_COLS, "error").toPandas()
                      .sort_values(["query_id", "product_id"]).reset_index(drop=True))
            if scored["error"].notna().any():
                raise RuntimeError(f"{system}: {scored['error'].notna().sum()} pairs failed to score")
            probs = scored[list(PROB_COLS)].to_numpy()
            pred = np.array(LEVELS)[probs.argmax(axis=1)]
            th, origin = load_thresholds(path)
            tier_levels = levels(probs, th)
            m = classification_metrics(gold, pred)
            m.update(system=system, kind="model", model_version=model_version(path),
                     tier_agreement=tier_agreement(gold, tier_levels), beta_cum=th.beta_cum)
            rows.append(m)
            tiers[system] = {t: int(n) for t, n in zip(*np.unique(np.vectorize(TIER_OF_LEVEL.get)(tier_levels),
                                                                  return_counts=True))}
            log_event(log, "evaluate.model", system=system, macro_f1=round(m["macro_f1"], 4),
                      accuracy=round(m["accuracy"], 4), thresholds=origin)
        train = _split_pairs(store, corpus_id, "train").select("query", "title", "label").toPandas()
        for name, pred in run_baselines(train.to_dict("list"), test.to_dict("list"), with_embeddings).items():
            m = classification_metrics(gold, pred)
            m.update(system=name, kind="baseline", model_version=None, tier_agreement=None, beta_cum=None)
            rows.append(m)
        test_df.unpersist()
        out = spark.createDataFrame([
            dict(eval_id=eval_id, system=r["system"], kind=r["kind"], model_version=r["model_version"],
                 corpus_id=corpus_id, split=split, n=r["n"], accuracy=r["accuracy"], macro_f1=r["macro_f1"],
                 per_class=r["per_class"], confusion=json.dumps(r["confusion"]), tier_agreement=r["tier_agreement"],
                 beta_cum=r["beta_cum"], created_at=now) for r in rows],
            schema=__import__("taosr1.contracts", fromlist=["load"]).load("eval_metrics").schema)
        w = store.write("eval_metrics", out, "overwrite", replace={"eval_id": eval_id})
        rec.counts.update(systems=len(rows), pairs=len(gold))
        rec.table_versions["eval_metrics"] = w.version
    notes = [f"split '{split}' of corpus {corpus_id}: {len(gold)} pairs, query-disjoint from the train split",
             f"gold label mix: " + ", ".join(f"{lv}: {int((gold == lv).sum())}" for lv in LEVELS),
             "models: arg-max of the four label probabilities (one forward pass); tiers by CumPT",
             "baselines: cut points fitted on the train split for macro-F1"]
    path = write_report(report_path or f"{store.root}/reports/{eval_id}.html", f"taosr1 evaluation {eval_id}",
                        rows, tiers, notes)
    return eval_id, path
