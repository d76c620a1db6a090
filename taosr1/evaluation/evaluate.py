"""``jobs/evaluate.py``: models and baselines on one labelled split → ``eval_metrics`` (Delta) + an HTML report.

Every model is read out the deployed way: one forward pass, the four label probabilities, the arg-max level for
the classification metrics, and CumPT tiers (the model's calibrated β, else 0.5) for tier agreement. Baselines are
fitted on the corpus' train split and scored on the same evaluation split.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1 import contracts
from taosr1.engine_stage import EngineStage
from taosr1.engines import engine_config
from taosr1.engines.config import options_for
from taosr1.errors import InputError
from taosr1.evaluation.baselines import run_baselines
from taosr1.evaluation.intervals import System, bootstrap, chance_macro_f1, quadratic_kappa, spearman
from taosr1.evaluation.metrics import classification_metrics, ndcg_at_10, tier_agreement
from taosr1.evaluation.report import write_report
from taosr1.ids import new_id
from taosr1.inference import PROB_COLS
from taosr1.io.csv_safe import write_csv
from taosr1.io.tables import TableStore
from taosr1.job import Context, OptionalIdent, Params
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
    embeddings: bool = Field(default=True, description="Include the MiniLM baselines: the embedding cosine and "
                             "(unless --no-cross-encoder) the fine-tuned cross-encoder.")
    batch_size: int = Field(default=32, ge=1)
    dtype: Literal["auto", "float32", "bfloat16"] = Field(default="float32", description="Compute dtype of the "
                                                          "models (auto: bf16 where the CPU has bf16 instructions).")
    device: str = Field(default="cpu", description="cpu | cuda[:N]")
    engine: Literal["hf", "vllm", "openai"] = Field(default="hf", description="How the models run: hf | vllm | "
                                                    "openai (a server that serves the model folders by name)")
    base_url: str | None = Field(default=None, description="openai engine: server URL (…/v1).")
    max_model_len: int | None = Field(default=None, ge=8, description="Longest prompt in tokens (default: the "
                                      "backend's); a pair the engine fails on fails the evaluation.")
    calibrate_pairs: int | None = Field(default=600, ge=1, description="Fit each model's beta_cum and its cut "
                                        "points on the expected level (the baselines' read-out) on about this many "
                                        "training pairs (whole queries); 0/none: the stored calibration, no cuts.")
    bootstrap_draws: int = Field(default=1000, ge=0, description="Query-level bootstrap resamples for the 95% "
                                 "intervals (0 = no intervals).")
    cross_encoder: bool = Field(default=True, description="Include the MiniLM cross-encoder baseline (fine-tuned "
                                "on the train pairs once per train source and data version, then cached).")
    cross_encoder_pairs: int | None = Field(default=None, ge=2, description="Fine-tune the cross-encoder on a stated "
                                            "subsample of the train pairs (whole queries), e.g. the pairs a model "
                                            "was given; default: all of them.")
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
                                                         F.mode("label").alias("label"),
                                                         F.first("raw_label").alias("raw_label"))
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


class Evaluate(EngineStage[EvaluateParams]):
    """Models and baselines on one labelled set → ``eval_metrics`` rows and an HTML report."""

    name = "evaluate"
    Params = EvaluateParams
    reads = ("corpus_pairs", "products", "query_product_labels")
    writes = ("eval_metrics", "quarantine")
    tracked = True

    def run_id(self, params: EvaluateParams) -> str:
        target = params.corpus_id or f"source-{params.source}"
        return new_id("eval", target, params.split if params.corpus_id else "all")

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
            extra = ["raw_label"] if "raw_label" in test_df.columns else []
            test = test_df.select("query_id", "product_id", "query", "title", "description", "label", *extra) \
                .toPandas() \
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

            arrays: dict[str, System] = {}
            cut_arrays: dict[str, System] = {}
            for system, path in systems():
                m, tier_levels, sysarr, cut_pred = self._score_model(ctx, test_df, test, system, path, p, calib_df)
                rows.append(m)
                tiers[system] = _mix(tier_levels)
                arrays[system] = sysarr
                if cut_pred is not None:
                    cut_arrays[system] = System(cut_pred, sysarr.score)
            train = train_df.select("query", "title", "description", "label").toPandas()
            trained = {}
            if p.embeddings and p.cross_encoder:
                from taosr1.evaluation.cross_encoder import cross_encoder_baseline

                ce_train = train
                if p.cross_encoder_pairs:
                    ce_train = subsample(train_df, p.cross_encoder_pairs, p.seed + 2).select(
                        "query", "title", "description", "label").toPandas()
                trained["cross_encoder"] = cross_encoder_baseline(store.root, _texts(ce_train), _texts(test),
                                                                  train_where, seed=p.seed)
            for name, (pred, score) in {**run_baselines(_texts(train), _texts(test), p.embeddings),
                                        **{k: v[:2] for k, v in trained.items()}}.items():
                m = classification_metrics(gold, pred)
                m.update(system=name, kind="baseline", model_version=None, tier_agreement=None, beta_cum=None,
                         ndcg_10=ndcg_at_10(test["query_id"].to_numpy(), gold, score), reading="similarity"
                         if name not in trained else trained[name][2])
                rows.append(m)
                arrays[name] = System(np.asarray(pred), np.asarray(score, dtype=float))
            rows.append(chance_row(gold))
            add_intervals(rows, arrays, cut_arrays, test, p.bootstrap_draws, p.seed)
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
                 source=p.source, train_source=None if p.corpus_id else _train_source(p), reading=r["reading"],
                 **{k: r.get(k) for k in INTERVAL_COLUMNS})
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
                 f"baselines: cut points fitted for macro-F1 on {train_where}; models' 'cuts' read-out: the same "
                 f"fit on their expected level over {p.calibrate_pairs or 0} training pairs",
                 f"intervals: 95%, query-level bootstrap ({p.bootstrap_draws} draws, seed {p.seed}); diff: each "
                 "system minus the best baseline on the same resamples; chance: a uniform guess, "
                 "F1 = 2p/4/(p+1/4) per class"]
        if p.champion:
            notes.append(self._champion_note(champ, rows))
        curves = {name: model_card(path).get("readout", {}).get("curve") for name, path in p.models.items()}
        ctx.report.info["report"] = write_report(p.report or f"{store.root}/reports/{eval_id}.html",
                                                 f"taosr1 evaluation {eval_id}", rows, tiers, notes,
                                                 {k: v for k, v in curves.items() if v})
        if ctx.tracker is not None:  # the table, per-system metrics and the report beside the run
            for r in rows:
                ctx.tracker.metrics({k: r.get(k) for k in ("macro_f1", "accuracy", "ndcg_10", "cumpt_macro_f1")},
                                    f"{r['system']}.")
            ctx.tracker.text(write_csv(out.drop("per_class").toPandas()), "eval_metrics.csv")
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

    def _score_model(self, ctx: Context, test_df: DataFrame, test: pd.DataFrame, system: str, path: str,
                     p: EvaluateParams,
                     calib_df: DataFrame | None = None) -> tuple[dict, np.ndarray, "System", np.ndarray | None]:
        """One model's metrics on the set, read the way it is deployed (label first) or, for a think-first model,
        by greedy generation and its last line."""
        model = ModelRef.resolve(path)
        config = engine_config(backend=p.engine, model_path=path, **options_for(p.engine, p.model_dump(
            include={"batch_size", "dtype", "device", "base_url", "max_model_len"})))
        gold = test["label"].to_numpy(dtype=int)
        order = model_card(path).get("order", "post_cot")
        key = ["query_id", "product_id"]
        # every system is compared on the same pairs: one pair a model fails on fails the evaluation (budget 0),
        # the failed pairs in quarantine with the engine's message
        run = dict(key=key, what=f"evaluate {system}", max_error_share=0.0, rows_in=len(test))
        if order == "think_first":
            er = self.run_engine(ctx, config, test_df, kind="samples", n=1, temperature=0.0, max_new_tokens=192,
                                 order=order, **run)
            scored = er.ok.select(*key, "text").toPandas()
        else:
            er = self.run_engine(ctx, config, test_df, kind="label_probs", **run)
            scored = er.ok.select(*key, *PROB_COLS).toPandas()
        er.release()
        scored = scored.sort_values(key).reset_index(drop=True)
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
        expected = probs @ np.array(LEVELS, dtype=float)
        cut_pred = None
        if reading == "label_probs" and calib_df is not None:  # beta_cum and cuts fitted on training pairs only
            from taosr1.evaluation.baselines import apply_cuts, fit_cuts
            from taosr1.scoring.calibrate import calibrate

            er = self.run_engine(ctx, config, calib_df, kind="label_probs", key=key,
                                 what=f"evaluate {system} (calibration pairs)", max_error_share=0.0)
            cal = er.ok.select("label", *PROB_COLS).toPandas()
            er.release()
            cal_probs, cal_gold = cal[list(PROB_COLS)].to_numpy(), cal["label"].to_numpy(dtype=int)
            thresholds = calibrate(cal_probs, cal_gold).thresholds
            cut_pred = apply_cuts(expected, fit_cuts(cal_probs @ np.array(LEVELS, dtype=float), cal_gold))
        tier_levels = levels(probs, thresholds) if reading == "label_probs" else pred
        m = classification_metrics(gold, pred)
        m.update(system=system, kind="model", model_version=model.version, reading=reading,
                 tier_agreement=tier_agreement(gold, tier_levels) if reading == "label_probs" else None,
                 beta_cum=thresholds.beta_cum if reading == "label_probs" else None,
                 cumpt_macro_f1=classification_metrics(gold, tier_levels)["macro_f1"]
                 if reading == "label_probs" else None,
                 ndcg_10=ndcg_at_10(test["query_id"].to_numpy(), gold, expected))
        if cut_pred is not None:
            m["cuts_macro_f1"] = classification_metrics(gold, cut_pred)["macro_f1"]
        if reading == "generate":
            m["format_errors"] = int((pred == 0).sum())
        log_event(log, "evaluate.model", system=system, macro_f1=round(m["macro_f1"], 4),
                  accuracy=round(m["accuracy"], 4), ndcg_10=round(m["ndcg_10"], 4), reading=reading,
                  cuts_macro_f1=None if cut_pred is None else round(m["cuts_macro_f1"], 4))
        return m, tier_levels, System(pred, expected), cut_pred


INTERVAL_COLUMNS = ("macro_f1_low", "macro_f1_high", "spearman", "qwk", "cuts_macro_f1", "reference",
                    "diff_macro_f1", "diff_macro_f1_low", "diff_macro_f1_high", "intervals")
UNRANKED = ("majority", "chance")


def chance_row(gold: np.ndarray) -> dict:
    """The uniform guess on this split's class mix (its expected macro-F1; accuracy ¼)."""
    n = len(gold)
    counts = [(gold == lv).mean() if n else 0.0 for lv in LEVELS]
    per = {}
    for lv, share in zip(LEVELS, counts):
        f = 2 * share * 0.25 / (share + 0.25) if share > 0 else 0.0
        per.update({f"precision_{lv}": float(share), f"recall_{lv}": 0.25, f"f1_{lv}": float(f)})
    return dict(system="chance", kind="baseline", model_version=None, reading="uniform guess", n=n,
                accuracy=0.25, macro_f1=chance_macro_f1(gold), per_class=per,
                confusion=[[int(round(c * n / 4))] * 4 for c in counts], ndcg_10=None, tier_agreement=None,
                beta_cum=None, spearman=0.0, qwk=0.0)


def add_intervals(rows: list[dict], arrays: dict[str, System], cut_arrays: dict[str, System], test: pd.DataFrame,
                  draws: int, seed: int) -> None:
    """Spearman, QWK and (``draws`` > 0) the bootstrap intervals of every system, in place on its row; paired
    differences against the best ranked baseline (not majority or chance)."""
    gold = test["label"].to_numpy(dtype=int)
    rating = gold_rating(test)
    baselines = [r for r in rows if r["kind"] == "baseline" and r["system"] in arrays and r["system"] not in UNRANKED]
    reference = max(baselines, key=lambda r: r["macro_f1"])["system"] if baselines else None
    systems = {**arrays, **{f"{k}@cuts": v for k, v in cut_arrays.items()}}
    if draws:
        iv = bootstrap(test["query_id"].to_numpy(), gold, rating, systems, reference, draws, seed)
    else:
        iv = {k: {} for k in systems}
    for r in rows:
        name = r["system"]
        if name not in arrays:
            continue
        s = arrays[name]
        r["spearman"], r["qwk"] = spearman(rating, s.score), quadratic_kappa(gold, s.pred)
        got = iv.get(name, {})
        out = {m: [v.value, v.low, v.high] for m, v in got.items()}
        for m, v in iv.get(f"{name}@cuts", {}).items():
            if not m.startswith("diff_"):
                out[f"cuts_{m}"] = [v.value, v.low, v.high]
        if "macro_f1" in got:
            r["macro_f1_low"], r["macro_f1_high"] = got["macro_f1"].low, got["macro_f1"].high
        if "diff_macro_f1" in got:
            d = got["diff_macro_f1"]
            r.update(reference=reference, diff_macro_f1=d.value, diff_macro_f1_low=d.low, diff_macro_f1_high=d.high)
        r["intervals"] = json.dumps({**out, "draws": draws, "reference": reference})


def gold_rating(test: pd.DataFrame) -> np.ndarray:
    """The finest gold the split has: the raters' mean where ``raw_label`` is numeric (Home Depot), else the level."""
    gold = test["label"].to_numpy(dtype=float)
    if "raw_label" not in test:
        return gold
    raw = pd.to_numeric(test["raw_label"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(raw), raw, gold) if np.isfinite(raw).all() else gold


def _texts(frame: pd.DataFrame) -> dict:
    """Query, product text (title + capped description, what the model sees) and label, as lists."""
    from taosr1.prompts.template import clean_untrusted

    text = [f"{t} {clean_untrusted(d, 300)}" if isinstance(d, str) and d else str(t)
            for t, d in zip(frame["title"], frame["description"])]
    return {"query": frame["query"].tolist(), "text": text, "label": frame["label"].tolist()}


def metrics_table(store: TableStore, eval_id: str) -> pd.DataFrame:
    """The ``eval_metrics`` rows of one evaluation, for printing."""
    return (store.read("eval_metrics").where(F.col("eval_id") == eval_id)
            .select("system", "kind", "n", "accuracy", "macro_f1", "macro_f1_low", "macro_f1_high", "cuts_macro_f1",
                    "cumpt_macro_f1", "spearman", "qwk", "ndcg_10", "diff_macro_f1", "diff_macro_f1_low",
                    "diff_macro_f1_high", "reference", "per_class", "tier_agreement", "beta_cum")
            .toPandas())
