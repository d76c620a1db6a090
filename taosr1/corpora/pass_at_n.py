"""Stage 2: the policy samples N completions per pair (``pass_at_n_samples``), committed chunk by chunk.

A run is identified by its ``run_id``: re-running with the same id redoes only the chunks not yet committed (read
from the Delta log, no data scan). Each sample records its parsed label (the one label-line rule of
:func:`taosr1.prompts.parse_completion`), format validity, correctness and logprob.
"""

from __future__ import annotations

from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1.engine_stage import EngineStage, engine_error_rows
from taosr1.errors import CountMismatch, InputError
from taosr1.ids import attempt_id, new_id
from taosr1.io.tables import TableStore
from taosr1.job import Context, EngineParams, Ident
from taosr1.obs import get_logger, log_event
from taosr1.pairs import KEY, bucket_hash, parsed, with_products
from taosr1.quarantine import pair_key

log = get_logger(__name__)
STAGE = "sample_pass_at_n"


class PassAtNParams(EngineParams):
    corpus_id: Ident = Field(description="Corpus id from `corpus sft`.")
    run_id: Ident | None = Field(default=None, description="Resume this run (default: a new run).")
    n: int = Field(default=5, ge=1, le=64, description="Samples per pair.")
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=256, ge=1)
    seed: int = 0
    chunks: int = Field(default=8, ge=1, description="Commit units; a killed run redoes only unfinished chunks.")
    split: str = "train"
    balanced_only: bool = Field(default=False, description="Sample only the class-balanced train pairs.")
    max_chunks: int | None = Field(default=None, ge=1, description="Stop after this many new chunks.")
    max_pairs: int | None = Field(default=None, ge=1, description="Sample a stated subset: at most this many pairs, "
                                  "chosen by a hash of the pair (the rest count as filtered).")


def seeding(engine_cfg) -> str:
    """How the run's samples are seeded, for its record: per pair where the engine can, else once per engine."""
    if engine_cfg.backend == "vllm" and not str(engine_cfg.device).startswith("cuda"):
        return "engine-level seed, stable order (vLLM's CPU build cannot seed per request)"
    return "per pair (seed + hash of query_id|product_id)"


def done_chunks(store: TableStore, run_id: str) -> set[int]:
    """Chunks of a run already committed, read from the Delta log (no data scan)."""
    if not store.exists("pass_at_n_samples"):
        return set()
    import pyarrow as pa

    acts = pa.table(store.delta("pass_at_n_samples").get_add_actions(flatten=True)).to_pydict()
    return {int(c) for r, c in zip(acts.get("partition.run_id", []), acts.get("partition.chunk", [])) if r == run_id}


def run_samples(store: TableStore, run_id: str) -> tuple[DataFrame, str]:
    """The well-formed-or-not samples of one pass@N run (error rows left out) and the corpus it sampled."""
    samples = store.read("pass_at_n_samples").where((F.col("run_id") == run_id) & (F.col("sample_idx") >= 0))
    first = samples.select("corpus_id").first()
    if first is None:
        raise InputError(f"no pass@N samples for run {run_id}")
    return samples, first["corpus_id"]


RESUME_KEYS = ("corpus_id", "n", "temperature", "top_p", "max_new_tokens", "seed", "chunks", "split",
               "balanced_only", "engine", "max_pairs")


def check_resume(store: TableStore, run_id: str, p: PassAtNParams, version: str) -> None:
    """A resumed run must sample as it started: same corpus, n, sampling, chunks and model (by content version),
    else its chunks would mix two experiments. The first attempt's params come from its ``job_runs`` row (written
    before it sampled anything), the model from the committed samples themselves."""
    import json

    first = (store.read("job_runs").where((F.col("job") == STAGE) & F.col("run_id").startswith(f"{run_id}@"))
             .orderBy("started_at").select("params").limit(1).collect())
    changed = []
    if first:
        before = json.loads(first[0]["params"])
        changed = [f"{k}: {before.get(k)!r} -> {getattr(p, k)!r}" for k in RESUME_KEYS
                   if before.get(k) != getattr(p, k)]
    versions = {r[0] for r in store.read("pass_at_n_samples").where(F.col("run_id") == run_id)
                .select("model_version").distinct().collect()}
    if versions - {version}:
        changed.append(f"model version: {sorted(versions)} -> {version!r}")
    if changed:
        raise InputError(f"--run-id {run_id} resumes a run made with other settings ({'; '.join(changed)}); "
                         f"use a new run id, or the settings it started with")


class PassAtN(EngineStage[PassAtNParams]):
    """``n`` samples per ``split`` pair of a corpus, one commit per chunk; an existing ``run_id`` resumes."""

    name = STAGE
    Params = PassAtNParams
    reads = ("corpus_pairs", "products")
    writes = ("pass_at_n_samples", "quarantine")

    def run_id(self, params: PassAtNParams) -> str:
        return params.run_id or new_id("passn", params.corpus_id)

    def record_id(self, run_id: str) -> str:
        return attempt_id(run_id)

    def run(self, ctx: Context, p: PassAtNParams) -> None:
        from rich.progress import Progress

        store, run_id = ctx.store, ctx.run_id
        engine = self.engine(ctx, p)
        version = self.model(ctx).version
        base = store.read("corpus_pairs").where((F.col("corpus_id") == p.corpus_id) & (F.col("split") == p.split))
        if p.balanced_only:
            base = base.where("balanced")
        base = base.withColumn("chunk", (bucket_hash(KEY, 7) % p.chunks).cast("int"))
        c = ctx.report.counts
        c.rows_in = base.count()
        if c.rows_in == 0:
            raise InputError(f"corpus {p.corpus_id} has no '{p.split}' pairs")
        if p.max_pairs and p.max_pairs < c.rows_in:
            from pyspark.sql import Window

            rank = F.row_number().over(Window.orderBy(bucket_hash(KEY, 11), *KEY))
            base = base.withColumn("_r", rank).where(F.col("_r") <= p.max_pairs).drop("_r")
            c.filtered["over_max_pairs"] = c.rows_in - p.max_pairs
        already = done_chunks(store, run_id)
        if already:
            check_resume(store, run_id, p, version)
        todo = [k for k in range(p.chunks) if k not in already][: p.max_chunks]
        ctx.report.info.update(run_id=run_id, params={"model_version": version, "resumed_chunks": sorted(already),
                                                      "seeding": seeding(engine)})
        with Progress(transient=True) as progress:
            task = progress.add_task(f"pass@{p.n} chunks", total=len(todo))
            for k in todo:
                part = with_products(store, base.where(F.col("chunk") == k)).drop("_known")
                er = self.run_engine(ctx, engine, part, kind="samples", key=KEY, what=f"pass@N {run_id} chunk {k}",
                                     max_error_share=p.max_error_share, n=p.n, temperature=p.temperature,
                                     top_p=p.top_p, max_new_tokens=p.max_new_tokens, seed=p.seed)
                s = er.all.withColumn("parsed", parsed(F.col("text")))
                out = s.select(
                    F.lit(run_id).alias("run_id"), F.lit(k).alias("chunk"), "corpus_id", "query_id", "product_id",
                    "split", F.coalesce("sample_idx", F.lit(-1)).alias("sample_idx"),
                    F.coalesce("text", F.lit("")).alias("text"), F.coalesce("logprob", F.lit(0.0)).alias("logprob"),
                    F.coalesce("n_tokens", F.lit(0)).alias("n_tokens"), F.col("parsed.level").alias("parsed_label"),
                    F.coalesce(F.col("parsed.error").isNull() & F.col("error").isNull(), F.lit(False))
                    .alias("format_ok"),
                    F.coalesce(F.col("error"), F.col("parsed.error")).alias("format_error"),
                    F.coalesce(F.col("parsed.level") == F.col("label"), F.lit(False)).alias("correct"),
                    "label", F.lit(version).alias("model_version"), F.lit(p.seed).cast("long").alias("seed"))
                ctx.write("pass_at_n_samples", out, "overwrite", replace={"run_id": run_id, "chunk": str(k)})
                er.release()
                progress.advance(task)
                log_event(log, "pass_at_n.chunk", run_id=run_id, chunk=k)
        done = done_chunks(store, run_id)
        samples = store.read("pass_at_n_samples").where(F.col("run_id") == run_id)
        per_pair = samples.groupBy(*KEY).agg(F.max(F.col("sample_idx") < 0).alias("err"))
        c.kept = per_pair.where("NOT err").count()
        failed = samples.where("sample_idx < 0").withColumnRenamed("format_error", "error")
        c.quarantined = ctx.quarantine(engine_error_rows(failed, KEY), ds=run_id, key=pair_key()).rows
        c.filtered["not_sampled_yet"] = base.where(~F.col("chunk").isin(sorted(done) or [-1])).count()
        dup = samples.groupBy(*KEY, "sample_idx").count().where("count > 1").count()
        if dup:
            raise CountMismatch(f"pass@N run {run_id} holds {dup} duplicated samples")
        c.extra = {"samples": samples.count(), "chunks_done": len(done), "chunks": p.chunks}
        acc = samples.where("sample_idx >= 0").agg(F.avg(F.col("correct").cast("double")).alias("a"),
                                                   F.avg(F.col("format_ok").cast("double")).alias("f")).first()
        if acc["a"] is not None:  # is there signal for DPO/GRPO? samples right more often than chance (25%)?
            c.extra["sampled_accuracy_permille"] = int(round(1000 * acc["a"]))
            c.extra["format_ok_permille"] = int(round(1000 * acc["f"]))
            log_event(log, "pass_at_n.accuracy", run_id=run_id, sampled_accuracy=round(acc["a"], 4),
                      format_ok=round(acc["f"], 4))
        sampled = with_products(store, base.where(F.col("chunk").isin(sorted(done) or [-1]))).drop("_known")
        policy = self.policy_reading(ctx, engine, sampled, p, run_id)
        if policy:
            c.extra["argmax_accuracy_permille"] = int(round(1000 * policy["argmax_accuracy"]))
            policy["sampled_accuracy"] = None if acc["a"] is None else round(float(acc["a"]), 4)
            policy["temperature"] = p.temperature
            ctx.report.info["policy"] = policy
            log_event(log, "pass_at_n.policy", run_id=run_id, **policy)

    def policy_reading(self, ctx: Context, engine, pairs: DataFrame, p: PassAtNParams, run_id: str) -> dict:
        """The policy's arg-max label on the same pairs (one forward pass each, the label probabilities), beside
        its samples: a sampled accuracy far below the arg-max one says the temperature spreads the samples over
        wrong labels; and the temperature that makes those probabilities best predict the gold labels, fitted on
        these train pairs (temperature scaling), as the loop's sampling temperature to use."""
        import numpy as np

        from taosr1.inference import PROB_COLS
        from taosr1.labels import LEVELS

        er = self.run_engine(ctx, engine, pairs, kind="label_probs", key=KEY, what=f"pass@N {run_id} arg-max",
                             max_error_share=p.max_error_share)
        pdf = er.ok.select("label", *PROB_COLS).toPandas()
        er.release()
        if not len(pdf):
            return {}
        probs, gold = pdf[list(PROB_COLS)].to_numpy(dtype=float), pdf["label"].to_numpy(dtype=int)
        pred = np.array(LEVELS)[probs.argmax(axis=1)]
        return {"pairs": int(len(pdf)), "argmax_accuracy": round(float(np.mean(pred == gold)), 4),
                "fitted_temperature": round(fit_temperature(probs, gold), 3)}


def fit_temperature(probs, gold, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T for which ``softmax(log p / T)`` best predicts the gold levels (mean log-likelihood; Guo et al.,
    2017): sampling the label at T is then right about as often as the policy's confidence says."""
    import math

    import numpy as np
    from scipy.optimize import minimize_scalar

    from taosr1.labels import LEVELS

    logp = np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, None))
    idx = np.array([LEVELS.index(int(g)) for g in gold])

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(z)), idx] - np.log(np.exp(z).sum(axis=1))).mean())

    res = minimize_scalar(nll, bounds=(math.log(lo), math.log(hi)), method="bounded")
    return float(math.exp(res.x))
