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
from pydantic import Field, model_validator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1 import contracts
from taosr1.engines import engine_config
from taosr1.errors import InputError
from taosr1.evaluation.baselines import run_baselines
from taosr1.evaluation.metrics import classification_metrics, ndcg_at_10, tier_agreement
from taosr1.evaluation.report import write_report
from taosr1.inference import PROB_COLS, engine_failures, with_label_probs, with_samples
from taosr1.io.tables import TableStore
from taosr1.job import Context, OptionalIdent, Params, Stage
from taosr1.labels import LEVELS, TIER_OF_LEVEL
from taosr1.model.reference import ModelRef
from taosr1.model.registry import Champion, champion
from taosr1.obs import get_logger, log_event
from taosr1.model.loading import model_card
from taosr1.pairs import bucket_hash, with_products
from taosr1.scoring.cumpt import levels

log = get_logger(__name__)


class EvaluateParams(Params):
    corpus_id: OptionalIdent = Field(default=None, description="Corpus whose split to evaluate on.")
    source: OptionalIdent = Field(default=None, description="Instead of a corpus split: every judged pair of this "
                                  "loaded source (e.g. homedepot-dev, or your own set loaded with --name).")
    train_source: OptionalIdent = Field(default=None, description="With --source: the judged source the baselines "
                                        "are fitted on (default: the training source in the first model's card).")
    models: dict[str, str] = Field(min_length=1, description="NAME=DIR, repeatable: the model folders to score.")
    split: Literal["dev", "test", "train"] = "dev"
    max_pairs: int | None = Field(default=None, ge=1, description="Evaluate a stated subsample: whole queries, "
                                  "chosen by a hash of query_id, up to about this many pairs.")
    report: str | None = Field(default=None, description="HTML path (default <warehouse>/reports/<eval id>.html).")
    embeddings: bool = Field(default=True, description="Include the MiniLM embedding baseline.")
    batch_size: int = Field(default=32, ge=1)
    dtype: Literal["auto", "float32", "bfloat16"] = Field(default="float32", description="Compute dtype of the "
                                                          "models (auto: bf16 where the CPU has bf16 instructions).")
    device: str = Field(default="cpu", description="cpu | cuda[:N]")
    calibrate_pairs: int | None = Field(default=None, ge=1, description="Fit each model's beta_cum for macro-F1 on "
                                        "about this many training pairs (whole queries) before its CumPT tiers are "
                                        "read; default: the model's stored calibration, else beta_cum 0.5.")
    seed: int = 13
    champion: bool = Field(default=False, description="Also score the warehouse's champion (system 'champion') "
                           "unless it is one of --models, so a promotion compares both on the same pairs.")

    @model_validator(mode="after")
    def _one_target(self) -> "EvaluateParams":
        if (self.corpus_id is None) == (self.source is None):
            raise ValueError("give --corpus-id (a corpus split) or --source (every judged pair of a source)")
        return self


def split_pairs_with_products(store: TableStore, corpus_id: str, split: str) -> DataFrame:
    pairs = store.read("corpus_pairs").where((F.col("corpus_id") == corpus_id) & (F.col("split") == split))
    return with_products(store, pairs, how="inner").drop("_known")


def source_pairs_with_products(store: TableStore, source: str) -> DataFrame:
    """Every judged pair of one loaded source, one row per pair (several votes: their most common label)."""
    labels = store.read("query_product_labels").where(F.col("source") == source)
    pairs = labels.groupBy("query_id", "product_id").agg(F.first("query").alias("query"),
                                                         F.mode("label").alias("label"))
    return with_products(store, pairs, how="inner").drop("_known")


def subsample(df: DataFrame, max_pairs: int | None, seed: int) -> DataFrame:
    """Whole queries in a stable pseudo-random order until about ``max_pairs`` pairs (NDCG needs whole queries)."""
    if not max_pairs:
        return df
    from pyspark.sql import Window

    per_q = df.groupBy("query_id").count().withColumn("h", bucket_hash(["query_id"], seed))
    per_q = per_q.withColumn("cum", F.sum("count").over(Window.orderBy("h", "query_id")))
    keep = [r["query_id"] for r in per_q.where(F.col("cum") - F.col("count") < max_pairs).select("query_id")
            .collect()]  # a list, so the window runs once, not in every later action
    return df.where(F.col("query_id").isin(keep))


def _mix(levels_arr: np.ndarray) -> dict[str, int]:
    names = [TIER_OF_LEVEL[int(v)] for v in levels_arr if int(v) in TIER_OF_LEVEL]
    return {t: names.count(t) for t in sorted(set(names))}


def _train_source(p: EvaluateParams) -> str:
    if p.train_source:
        return p.train_source
    for path in p.models.values():
        src = model_card(path).get("training_source")
        if src:
            return src
    raise InputError("--source: give --train-source (where to fit the baselines); no model card names its "
                     "training source")


class Evaluate(Stage[EvaluateParams]):
    """Models and baselines on one labelled set → ``eval_metrics`` rows and an HTML report."""

    name = "evaluate"
    Params = EvaluateParams
    reads = ("corpus_pairs", "products", "query_product_labels")
    writes = ("eval_metrics",)
    tracked = True

    def run_id(self, params: EvaluateParams) -> str:
        target = params.corpus_id or f"source-{params.source}"
        return f"eval-{target}-{params.split if params.corpus_id else 'all'}-{uuid.uuid4().hex[:8]}"

    def run(self, ctx: Context, p: EvaluateParams) -> None:
        store, eval_id = ctx.store, ctx.run_id
        if p.corpus_id:
            test_df = split_pairs_with_products(store, p.corpus_id, p.split)
            train_df = split_pairs_with_products(store, p.corpus_id, "train")
            where, train_where = f"split '{p.split}' of corpus {p.corpus_id}", f"the train split of {p.corpus_id}"
        else:
            train_source = _train_source(p)
            test_df = source_pairs_with_products(store, p.source)
            train_df = source_pairs_with_products(store, train_source)
            where, train_where = f"every judged pair of source '{p.source}'", f"source '{train_source}'"
            if train_source == p.source:
                train_where += " (the evaluated pairs themselves: the baselines are optimistic)"
        test_df = subsample(test_df, p.max_pairs, p.seed).persist()
        calib_df = subsample(train_df, p.calibrate_pairs, p.seed + 1).persist() if p.calibrate_pairs else None
        try:
            test = test_df.select("query_id", "product_id", "query", "title", "description", "label").toPandas() \
                .sort_values(["query_id", "product_id"]).reset_index(drop=True)
            if test.empty:
                raise InputError(f"{where} has no pairs")
            gold = test["label"].to_numpy(dtype=int)
            rows: list[dict] = []
            tiers = {"gold": _mix(gold)}
            champ = champion(store.root) if p.champion else None

            def systems():  # --models, then the champion unless one of them had its version
                yield from p.models.items()
                if champ and champ.version not in {r["model_version"] for r in rows}:
                    yield "champion", champ.path

            for system, path in systems():
                m, tier_levels = self._score_model(test_df, test, system, path, p, calib_df)
                rows.append(m)
                tiers[system] = _mix(tier_levels)
            train = train_df.select("query", "title", "description", "label").toPandas()
            for name, (pred, score) in run_baselines(_texts(train), _texts(test), p.embeddings).items():
                m = classification_metrics(gold, pred)
                m.update(system=name, kind="baseline", model_version=None, tier_agreement=None, beta_cum=None,
                         ndcg_10=ndcg_at_10(test["query_id"].to_numpy(), gold, score), reading="similarity")
                rows.append(m)
        finally:
            test_df.unpersist()
            if calib_df is not None:
                calib_df.unpersist()
        now = dt.datetime.now(dt.timezone.utc)
        out = ctx.spark.createDataFrame([
            dict(eval_id=eval_id, system=r["system"], kind=r["kind"], model_version=r["model_version"],
                 corpus_id=p.corpus_id, split=p.split if p.corpus_id else "all", n=r["n"], accuracy=r["accuracy"],
                 macro_f1=r["macro_f1"], per_class=r["per_class"], confusion=json.dumps(r["confusion"]),
                 ndcg_10=r["ndcg_10"], tier_agreement=r["tier_agreement"], beta_cum=r["beta_cum"],
                 cumpt_macro_f1=r.get("cumpt_macro_f1"), created_at=now,
                 source=p.source, train_source=None if p.corpus_id else _train_source(p), reading=r["reading"])
            for r in rows], schema=contracts.load("eval_metrics").schema)
        c = ctx.report.counts
        c.rows_in = len(rows)
        c.kept = ctx.write("eval_metrics", out, "overwrite", replace={"eval_id": eval_id}).rows
        c.extra = {"pairs": len(gold), "queries": int(test["query_id"].nunique())}
        notes = [f"{where}: {len(gold)} pairs, {test['query_id'].nunique()} queries"
                 + (f" (a stated subsample: whole queries up to ~{p.max_pairs} pairs, seed {p.seed})"
                    if p.max_pairs else ""),
                 "gold label mix: " + ", ".join(f"{lv}: {int((gold == lv).sum())}" for lv in LEVELS),
                 "models: arg-max of the four label probabilities (one forward pass; think-first models: greedy "
                 "CoT, label read from the last line); tiers by CumPT; NDCG@10 ranks by expected level",
                 f"baselines: cut points fitted for macro-F1 on {train_where}"]
        if p.champion:
            notes.append(self._champion_note(champ, rows))
        ctx.report.info["report"] = write_report(p.report or f"{store.root}/reports/{eval_id}.html",
                                                 f"taosr1 evaluation {eval_id}", rows, tiers, notes)
        if ctx.tracker is not None:  # the table, per-system metrics and the report beside the run
            for r in rows:
                ctx.tracker.metrics({k: r.get(k) for k in ("macro_f1", "accuracy", "ndcg_10", "cumpt_macro_f1")},
                                    f"{r['system']}.")
            ctx.tracker.text(out.drop("per_class").toPandas().to_csv(index=False), "eval_metrics.csv")
            ctx.tracker.file(ctx.report.info["report"])

    @staticmethod
    def _champion_note(champ: Champion | None, rows: list[dict]) -> str:
        """Champion vs the best model of this evaluation (what ``taosr1 promote`` will compare)."""
        if champ is None:
            return "champion: none yet (the first promoted challenger becomes it)"
        theirs = next((r for r in rows if r.get("model_version") == champ.version), None)
        best = max((r for r in rows if r["kind"] == "model" and r.get("model_version") != champ.version),
                   key=lambda r: r["macro_f1"], default=None)
        said = f"champion: {champ.path} (version {champ.version})"
        if theirs and best:
            said += (f" macro-F1 {theirs['macro_f1']:.3f}, NDCG@10 {theirs['ndcg_10']:.3f}; best challenger here "
                     f"'{best['system']}' {best['macro_f1']:.3f} / {best['ndcg_10']:.3f} "
                     f"({best['macro_f1'] - theirs['macro_f1']:+.3f} macro-F1)")
        return said

    def _score_model(self, test_df: DataFrame, test: pd.DataFrame, system: str, path: str, p: EvaluateParams,
                     calib_df: DataFrame | None = None) -> tuple[dict, np.ndarray]:
        """One model's metrics on the set, read the way it is deployed (label first) or, for a think-first model,
        by greedy generation and its last line."""
        model = ModelRef.resolve(path)
        config = engine_config(model_path=path, batch_size=p.batch_size, dtype=p.dtype, device=p.device)
        gold = test["label"].to_numpy(dtype=int)
        order = model_card(path).get("order", "post_cot")
        key = ["query_id", "product_id"]
        with engine_failures():
            if order == "think_first":
                scored = (with_samples(test_df, config, n=1, temperature=0.0, max_new_tokens=192, order=order)
                          .select(*key, "text", "error").toPandas())
            else:
                scored = (with_label_probs(test_df, config).select(*key, *PROB_COLS, "error").toPandas())
        scored = scored.sort_values(key).reset_index(drop=True)
        if len(scored) != len(test) or scored["error"].notna().any():
            raise RuntimeError(f"{system}: {scored['error'].notna().sum()} of {len(test)} pairs failed to score "
                               f"({len(scored)} came back)")
        if order == "think_first":
            from taosr1.prompts import parse_completion

            parsed_levels = [parse_completion(t or "", "think_first", require_cot=False).level for t in scored["text"]]
            pred = np.array([lv or 0 for lv in parsed_levels])  # 0: no label line, wrong for every class
            probs = np.array([[1.0 if lv == L else 0.0 for L in LEVELS] for lv in pred])
            reading = "generate"
        else:
            probs = scored[list(PROB_COLS)].to_numpy()
            pred = np.array(LEVELS)[probs.argmax(axis=1)]
            reading = "label_probs"
        thresholds = model.thresholds
        if reading == "label_probs" and calib_df is not None:  # beta_cum fitted on training pairs, never these
            from taosr1.scoring.calibrate import calibrate

            with engine_failures():
                cal = with_label_probs(calib_df, config).select("label", *PROB_COLS, "error").toPandas()
            cal = cal[cal["error"].isna()]
            thresholds = calibrate(cal[list(PROB_COLS)].to_numpy(), cal["label"].to_numpy(dtype=int)).thresholds
        tier_levels = levels(probs, thresholds) if reading == "label_probs" else pred
        m = classification_metrics(gold, pred)
        m.update(system=system, kind="model", model_version=model.version, reading=reading,
                 tier_agreement=tier_agreement(gold, tier_levels) if reading == "label_probs" else None,
                 beta_cum=thresholds.beta_cum if reading == "label_probs" else None,
                 cumpt_macro_f1=classification_metrics(gold, tier_levels)["macro_f1"]
                 if reading == "label_probs" else None,
                 ndcg_10=ndcg_at_10(test["query_id"].to_numpy(), gold, probs @ np.array(LEVELS, dtype=float)))
        if reading == "generate":
            m["format_errors"] = int((pred == 0).sum())
        log_event(log, "evaluate.model", system=system, macro_f1=round(m["macro_f1"], 4),
                  accuracy=round(m["accuracy"], 4), ndcg_10=round(m["ndcg_10"], 4), reading=reading)
        return m, tier_levels


def _texts(frame: pd.DataFrame) -> dict:
    """Query, product text (title + capped description, what the model sees) and label, as lists."""
    from taosr1.prompts.template import clean_untrusted

    text = [f"{t} {clean_untrusted(d, 300)}" if isinstance(d, str) and d else str(t)
            for t, d in zip(frame["title"], frame["description"])]
    return {"query": frame["query"].tolist(), "text": text, "label": frame["label"].tolist()}


def metrics_table(store: TableStore, eval_id: str) -> pd.DataFrame:
    """The ``eval_metrics`` rows of one evaluation, for printing."""
    return (store.read("eval_metrics").where(F.col("eval_id") == eval_id)
            .select("system", "kind", "n", "accuracy", "macro_f1", "per_class", "ndcg_10", "cumpt_macro_f1",
                    "tier_agreement", "beta_cum")
            .toPandas())
