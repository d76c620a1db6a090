"""TaoSR1's data stages 1–3 as Spark jobs over the lakehouse tables.

1. ``build_sft_corpus``: judged pairs → deduplicated, query-disjoint train/dev/test split (``corpus_pairs``) →
   class-balanced train pairs → teacher CoT → only traces whose label equals the human label (``sft_corpus``).
2. ``sample_pass_at_n``: the policy samples N completions per training pair (``pass_at_n_samples``), in chunks
   that are committed one by one, so a killed run restarts and redoes only unfinished chunks.
3. ``build_dpo_pairs``: right vs wrong samples of a pair → (prompt, chosen, rejected); all-wrong pairs take the
   teacher's trace as chosen.
4. ``label_difficulty``: pass rate → bucket; the GRPO set keeps 0 < correct < γ, class-balanced.
Every job records counts that add up in ``job_runs``: in = kept + quarantined + filtered (by reason).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from taosr1.engines.base import EngineConfig
from taosr1.errors import CountMismatch, InputError
from taosr1.ingest.logs import quarantine_rows
from taosr1.io.tables import TableStore
from taosr1.labels import LEVELS
from taosr1.obs import get_logger, log_event
from taosr1.runs import record_run

log = get_logger(__name__)
KEY = ["query_id", "product_id"]
MSG = "array<struct<role:string,content:string>>"


@dataclass
class StageCounts:
    """in = kept + quarantined + sum(filtered)."""

    rows_in: int = 0
    kept: int = 0
    quarantined: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)

    def check(self, stage: str) -> None:
        if self.rows_in != self.kept + self.quarantined + sum(self.filtered.values()):
            raise CountMismatch(f"{stage}: in {self.rows_in} != kept {self.kept} + quarantined {self.quarantined} "
                                f"+ filtered {self.filtered}")

    def as_counts(self) -> dict[str, int]:
        return {"rows_in": self.rows_in, "kept": self.kept, "quarantined": self.quarantined,
                **{f"filtered:{k}": v for k, v in self.filtered.items()}, **self.extra}


def _bucket_hash(cols: list[str], seed: int):
    return F.abs(F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])) % 1_000_000


def _messages_udf():
    """(query, product fields) → [system, user] messages, post-CoT order (as a Spark pandas UDF)."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(MSG)
    def build(query: pd.Series, title: pd.Series, category: pd.Series, brand: pd.Series, price: pd.Series,
              attributes: pd.Series, description: pd.Series) -> pd.Series:
        from taosr1.prompts import build_messages

        out = []
        for q, t, c, b, p, a, d in zip(query, title, category, brand, price, attributes, description):
            a = dict(a) if a is not None and not isinstance(a, dict) else a
            out.append(build_messages(q, {"title": t, "category": c, "brand": b, "price": p, "attributes": a,
                                          "description": d}))
        return pd.Series(out)

    return build


def _with_products(store: TableStore, df: DataFrame) -> DataFrame:
    products = store.read("products").dropDuplicates(["product_id"]).drop("source")
    return df.join(products, "product_id", "left")


def prompt_column(df: DataFrame):
    return _messages_udf()("query", "title", "category", "brand", "price", "attributes", "description")


# -- 1. splits + SFT -----------------------------------------------------------------------------------------------
def build_corpus_pairs(store: TableStore, source: str, corpus_id: str, *, seed: int = 13, dev_pct: int = 10,
                       test_pct: int = 10, balance: str = "equal") -> tuple[DataFrame, StageCounts]:
    """Dedup, query-disjoint split by a hash of query_id, and class balance of the train split (``balance``:
    ``equal`` = down-sample every class to the rarest (CV = 0, the paper's best mix), ``none`` = keep all).
    Returns the (persisted, not yet published) ``corpus_pairs`` rows; the caller publishes them after the gate."""
    labels = store.read("query_product_labels").where(F.col("source") == source)
    counts = StageCounts(rows_in=labels.count())
    if counts.rows_in == 0:
        raise InputError(f"query_product_labels has no rows for source '{source}'; run `taosr1 load-labels` first")
    # a pair judged twice keeps its most frequent label (ties: the higher one)
    mode = (labels.groupBy(*KEY, "label").agg(F.count("*").alias("n"), F.min("query").alias("query"))
            .withColumn("r", F.row_number().over(Window.partitionBy(*KEY).orderBy(F.desc("n"), F.desc("label"))))
            .where("r = 1").drop("r", "n"))
    counts.filtered["duplicate_pair"] = counts.rows_in - mode.count()
    known = store.read("products").select("product_id").distinct().withColumn("_known", F.lit(True))
    joined = mode.join(known, "product_id", "left")
    bad = joined.where("_known IS NULL").withColumn("reason", F.lit("unknown_product")) \
        .withColumn("detail", F.concat(F.lit("product_id="), F.col("product_id"))) \
        .withColumn("raw", F.to_json(F.struct(*KEY, "query", "label")))
    counts.quarantined = bad.count()
    store.write("quarantine", quarantine_rows(bad, stage="build_sft_corpus", ds=corpus_id, run_id=corpus_id,
                                              key=F.concat_ws("|", *KEY)), "overwrite",
                replace={"stage": "build_sft_corpus", "ds": corpus_id})
    h = _bucket_hash(["query_id"], seed) % 100
    pairs = (joined.where("_known IS NOT NULL").drop("_known")
             .withColumn("split", F.when(h < dev_pct, "dev").when(h < dev_pct + test_pct, "test").otherwise("train")))
    train_counts = {r["label"]: r["n"] for r in pairs.where("split = 'train'").groupBy("label")
                    .agg(F.count("*").alias("n")).collect()}
    if balance == "equal" and train_counts:
        target = min(train_counts.get(lv, 0) for lv in LEVELS)
        rank = F.row_number().over(Window.partitionBy("split", "label").orderBy(_bucket_hash(KEY, seed)))
        pairs = pairs.withColumn("_r", F.when(F.col("split") == "train", rank)).withColumn(
            "balanced", (F.col("split") == "train") & (F.col("_r") <= F.lit(target))).drop("_r")
    elif balance == "none":
        pairs = pairs.withColumn("balanced", F.col("split") == "train")
    else:
        raise InputError(f"balance must be equal or none, got {balance!r}")
    out = pairs.select(F.lit(corpus_id).alias("corpus_id"), "query_id", "query", "product_id", "label", "split",
                       F.lit(source).alias("source"), "balanced")
    out = out.persist()
    counts.kept = out.count()
    counts.extra = {f"train_label_{k}": v for k, v in sorted(train_counts.items())}
    counts.check("corpus_pairs")
    return out, counts


def _knowledge_teacher(df: DataFrame) -> DataFrame:
    """Adds ``teacher_label`` and ``completion_text`` (post-CoT) with the deterministic knowledge teacher."""
    schema = StructType(list(df.schema.fields) + [StructField("teacher_label", IntegerType()),
                                                  StructField("completion_text", StringType())])

    def run(batches):
        from taosr1.corpora.teacher import teacher_completion

        for pdf in batches:
            out = [teacher_completion(r["query"], r) for r in pdf.to_dict("records")]
            yield pdf.assign(teacher_label=[o[0] for o in out], completion_text=[o[1] for o in out])

    return df.mapInPandas(run, schema)


def build_sft_corpus(spark: SparkSession, store: TableStore, source: str, *, corpus_id: str | None = None,
                     teacher: str = "knowledge", engine: EngineConfig | None = None, seed: int = 13,
                     balance: str = "equal", gate: bool = True) -> tuple[str, StageCounts]:
    """Stage 1 (see module docstring); returns the corpus id and the SFT stage's counts."""
    corpus_id = corpus_id or f"corpus-{source}-{uuid.uuid4().hex[:8]}"
    with record_run(store, "build_sft_corpus", corpus_id, params={"source": source, "teacher": teacher,
                                                                  "seed": seed, "balance": balance}) as rec:
        pairs, pc = build_corpus_pairs(store, source, corpus_id, seed=seed, balance=balance)
        rec.counts.update({f"pairs:{k}": v for k, v in pc.as_counts().items()})
        train = _with_products(store, pairs.where("balanced"))
        if teacher == "knowledge":
            taught = _knowledge_teacher(train)
            teacher_name = "knowledge"
        else:
            if engine is None:
                raise InputError("an engine teacher needs --engine and --model")
            from taosr1.engines.spark_runner import with_samples
            from taosr1.model.loading import model_version

            taught = (with_samples(train, engine, n=1, temperature=0.7, max_new_tokens=384, seed=seed)
                      .withColumnRenamed("text", "completion_text"))
            teacher_name = f"engine:{engine.backend}:{model_version(engine.model_path)}"
            taught = taught.withColumn("teacher_label", F.lit(None).cast("int"))
        parse = _parse_udf()
        taught = taught.withColumn("parsed", parse("completion_text")).persist()
        try:
            sc = StageCounts(rows_in=train.count())
            fmt_bad = taught.where("parsed.level IS NULL OR parsed.error IS NOT NULL")
            agree = taught.where("parsed.level IS NOT NULL AND parsed.error IS NULL AND parsed.level = label")
            sc.quarantined = fmt_bad.count()
            sc.filtered["teacher_disagrees"] = taught.where(
                "parsed.level IS NOT NULL AND parsed.error IS NULL AND parsed.level != label").count()
            store.write("quarantine", quarantine_rows(
                fmt_bad.withColumn("reason", F.lit("teacher_format_error")).withColumn("detail", F.col("parsed.error"))
                .withColumn("raw", F.col("completion_text")), stage="build_sft_corpus_teacher", ds=corpus_id,
                run_id=corpus_id, key=F.concat_ws("|", *KEY)), "overwrite",
                replace={"stage": "build_sft_corpus_teacher", "ds": corpus_id})
            sft = agree.select(
                F.lit(corpus_id).alias("corpus_id"), "query_id", "product_id", "split",
                prompt_column(agree).alias("prompt"),
                F.array(F.struct(F.lit("assistant").alias("role"), F.col("completion_text").alias("content")))
                .alias("completion"), "label", F.lit(teacher_name).alias("teacher"))
            sft = sft.persist()
            if gate:  # before publication: labels, query-disjoint splits, class mix, prompts, parsing completions
                from taosr1.quality.frames import corpora_frames
                from taosr1.quality.gates import require, run_gate

                parse_ok = (parse(F.col("completion")[0]["content"])["error"].isNull()
                            & (parse(F.col("completion")[0]["content"])["level"] == F.col("label")))
                require(run_gate("corpora", corpora_frames(pairs, sft, parse_ok), f"{store.root}/quality",
                                 f"build_sft_corpus-{corpus_id}"))
            store.write("corpus_pairs", pairs, "overwrite", replace={"corpus_id": corpus_id})
            w = store.write("sft_corpus", sft, "overwrite", replace={"corpus_id": corpus_id})
            sc.kept = w.rows
            kept_by = {r["label"]: r["n"] for r in agree.groupBy("label").agg(F.count("*").alias("n")).collect()}
            all_by = {r["label"]: r["n"] for r in taught.groupBy("label").agg(F.count("*").alias("n")).collect()}
            sc.extra = {f"kept_rate_label_{lv}_permille": int(1000 * kept_by.get(lv, 0) / all_by[lv])
                        for lv in sorted(all_by)}
        finally:
            taught.unpersist()
            pairs.unpersist()
        sc.check("sft_corpus")
        rec.counts.update({f"sft:{k}": v for k, v in sc.as_counts().items()})
        rec.table_versions.update(corpus_pairs=store.version("corpus_pairs") or 0,
                                  sft_corpus=store.version("sft_corpus") or 0)
        log_event(log, "sft_corpus.done", corpus_id=corpus_id, **sc.as_counts())
    return corpus_id, sc


def _parse_udf():
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("struct<level:int,error:string>")
    def parse(text: pd.Series) -> pd.DataFrame:
        from taosr1.prompts import parse_completion

        res = [parse_completion(t) if isinstance(t, str) else None for t in text]
        return pd.DataFrame({"level": [r.level if r else None for r in res],
                             "error": [(r.error if r else "no completion") for r in res]})

    return parse


# -- 2. pass@N ------------------------------------------------------------------------------------------------------
def done_chunks(store: TableStore, run_id: str) -> set[int]:
    """Chunks of a run already committed, read from the Delta log (no data scan)."""
    if not store.exists("pass_at_n_samples"):
        return set()
    import pyarrow as pa

    acts = pa.table(store.delta("pass_at_n_samples").get_add_actions(flatten=True)).to_pydict()
    return {int(c) for r, c in zip(acts.get("partition.run_id", []), acts.get("partition.chunk", [])) if r == run_id}


def sample_pass_at_n(spark: SparkSession, store: TableStore, corpus_id: str, engine: EngineConfig, *,
                     run_id: str | None = None, n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
                     max_new_tokens: int = 256, seed: int = 0, chunks: int = 8, split: str = "train",
                     balanced_only: bool = False, max_chunks: int | None = None) -> tuple[str, StageCounts]:
    """Stage 2: ``n`` samples per ``split`` pair, committed chunk by chunk; an existing ``run_id`` resumes.
    ``balanced_only`` samples only the class-balanced train pairs; ``max_chunks`` stops after that many new
    chunks (for budgets and tests)."""
    from rich.progress import Progress

    from taosr1.engines.spark_runner import with_samples
    from taosr1.model.loading import model_version

    run_id = run_id or f"passn-{corpus_id}-{uuid.uuid4().hex[:8]}"
    version = model_version(engine.model_path)
    base = store.read("corpus_pairs").where((F.col("corpus_id") == corpus_id) & (F.col("split") == split))
    if balanced_only:
        base = base.where("balanced")
    base = base.withColumn("chunk", (_bucket_hash(KEY, 7) % chunks).cast("int"))
    sc = StageCounts(rows_in=base.count())
    if sc.rows_in == 0:
        raise InputError(f"corpus {corpus_id} has no '{split}' pairs")
    already = done_chunks(store, run_id)
    todo = [c for c in range(chunks) if c not in already]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    log_event(log, "pass_at_n.plan", run_id=run_id, chunks=chunks, done=len(already), todo=len(todo), n=n)
    params = {"corpus_id": corpus_id, "n": n, "temperature": temperature, "seed": seed, "chunks": chunks,
              "balanced_only": balanced_only,
              "model": engine.model_path, "model_version": version, "resumed_chunks": sorted(already)}
    with record_run(store, "sample_pass_at_n", f"{run_id}@{uuid.uuid4().hex[:6]}", params=params) as rec:
        parse = _parse_udf()
        with Progress(transient=True) as progress:
            task = progress.add_task(f"pass@{n} chunks", total=len(todo))
            for c in todo:
                part = _with_products(store, base.where(F.col("chunk") == c))
                sampled = with_samples(part, engine, n=n, temperature=temperature, top_p=top_p,
                                       max_new_tokens=max_new_tokens, seed=seed)
                parsed = sampled.withColumn("parsed", parse("text"))
                fl = F.regexp_extract(F.coalesce(F.col("text"), F.lit("")), r"^\s*([1-4])-(Excellent|Related|Mismatch|Irrelevant)\s*(\n|$)", 1)
                out = parsed.select(
                    F.lit(run_id).alias("run_id"), F.lit(c).alias("chunk"), "corpus_id", "query_id", "product_id",
                    "split", F.coalesce("sample_idx", F.lit(-1)).alias("sample_idx"),
                    F.coalesce("text", F.lit("")).alias("text"), F.coalesce("logprob", F.lit(0.0)).alias("logprob"),
                    F.coalesce("n_tokens", F.lit(0)).alias("n_tokens"),
                    F.when(fl != "", fl.cast("int")).alias("parsed_label"),
                    F.coalesce(F.col("parsed.error").isNull() & F.col("error").isNull(), F.lit(False)).alias("format_ok"),
                    F.coalesce(F.col("error"), F.col("parsed.error")).alias("format_error"),
                    F.coalesce(F.when(fl != "", fl.cast("int")) == F.col("label"), F.lit(False)).alias("correct"),
                    "label", F.lit(version).alias("model_version"), F.lit(seed).cast("long").alias("seed"))
                store.write("pass_at_n_samples", out, "overwrite", replace={"run_id": run_id, "chunk": str(c)})
                progress.advance(task)
                log_event(log, "pass_at_n.chunk", run_id=run_id, chunk=c)
        samples = store.read("pass_at_n_samples").where(F.col("run_id") == run_id)
        per_pair = samples.groupBy(*KEY).agg(F.count("*").alias("k"), F.max(F.col("sample_idx") < 0).alias("err"))
        sc.kept = per_pair.where("NOT err").count()
        sc.quarantined = per_pair.where("err").count()
        sc.filtered["not_sampled_yet"] = sc.rows_in - sc.kept - sc.quarantined
        sc.extra = {"samples": samples.count(), "chunks_done": len(done_chunks(store, run_id)), "chunks": chunks,
                    "dup_samples": samples.groupBy(*KEY, "sample_idx").count().where("count > 1").count()}
        if sc.extra["dup_samples"]:
            raise CountMismatch(f"pass@N run {run_id} holds {sc.extra['dup_samples']} duplicated samples")
        sc.check("pass_at_n_samples")
        rec.counts.update(sc.as_counts())
        rec.table_versions["pass_at_n_samples"] = store.version("pass_at_n_samples") or 0
    return run_id, sc


# -- 3. DPO pairs ---------------------------------------------------------------------------------------------------
def build_dpo_pairs(spark: SparkSession, store: TableStore, run_id: str) -> StageCounts:
    """Right vs wrong samples of a pair. Rule: chosen = the right, well-formed sample with the highest mean token
    logprob (the policy's most natural correct answer); rejected = the wrong sample with the highest mean token
    logprob (the most confident mistake: the hard negative). All-wrong pairs take the teacher's trace as chosen;
    all-right pairs give no preference and are filtered."""
    samples = store.read("pass_at_n_samples").where((F.col("run_id") == run_id) & (F.col("sample_idx") >= 0))
    if not samples.take(1):
        raise InputError(f"no pass@N samples for run {run_id}")
    corpus_id = samples.select("corpus_id").first()["corpus_id"]
    conf = F.col("logprob") / F.greatest(F.col("n_tokens"), F.lit(1))
    s = samples.withColumn("conf", conf).withColumn("good", F.col("correct") & F.col("format_ok"))
    right = (s.where("good").withColumn("r", F.row_number().over(Window.partitionBy(*KEY).orderBy(F.desc("conf"))))
             .where("r = 1").select(*KEY, F.col("text").alias("chosen_text")))
    wrong = (s.where("NOT correct").withColumn("r", F.row_number().over(
        Window.partitionBy(*KEY).orderBy(F.desc("conf")))).where("r = 1").select(*KEY, F.col("text").alias("rej_text")))
    stats = s.groupBy(*KEY, "split", "label").agg(F.sum(F.col("good").cast("int")).alias("n_correct"),
                                                 F.count("*").alias("n_samples"))
    teacher = (store.read("sft_corpus").where(F.col("corpus_id") == corpus_id)
               .select(*KEY, F.col("completion")[0]["content"].alias("teacher_text"), "prompt"))
    pairs = _with_products(store, store.read("corpus_pairs").where(F.col("corpus_id") == corpus_id)
                           .select(*KEY, "query"))
    j = (stats.join(right, KEY, "left").join(wrong, KEY, "left").join(teacher, KEY, "left")
         .join(pairs, KEY, "left"))
    j = j.withColumn("chosen_text", F.coalesce("chosen_text", "teacher_text")).withColumn(
        "chosen_source", F.when(F.col("n_correct") > 0, "policy").otherwise("teacher")).persist()
    sc = StageCounts(rows_in=j.count())
    sc.filtered["all_correct"] = j.where("rej_text IS NULL").count()
    sc.filtered["all_wrong_without_teacher_trace"] = j.where("rej_text IS NOT NULL AND chosen_text IS NULL").count()
    keep = j.where("rej_text IS NOT NULL AND chosen_text IS NOT NULL")
    msg = lambda c: F.array(F.struct(F.lit("assistant").alias("role"), F.col(c).alias("content")))  # noqa: E731
    out = keep.select(F.lit(run_id).alias("run_id"), *KEY, "split",
                      F.coalesce(F.col("prompt"), prompt_column(keep)).alias("prompt"),
                      msg("chosen_text").alias("chosen"), msg("rej_text").alias("rejected"), "chosen_source",
                      F.col("n_correct").cast("int").alias("n_correct"),
                      F.col("n_samples").cast("int").alias("n_samples"), "label")
    with record_run(store, "build_dpo_pairs", f"dpo-{run_id}-{uuid.uuid4().hex[:6]}", params={"run_id": run_id}) as rec:
        w = store.write("dpo_pairs", out, "overwrite", replace={"run_id": run_id})
        sc.kept = w.rows
        sc.extra = {"chosen_from_teacher": keep.where("chosen_source = 'teacher'").count()}
        j.unpersist()
        sc.check("dpo_pairs")
        rec.counts.update(sc.as_counts())
        rec.table_versions["dpo_pairs"] = w.version
    return sc


# -- 4. difficulty + GRPO set ---------------------------------------------------------------------------------------
def label_difficulty(spark: SparkSession, store: TableStore, run_id: str, *, gamma: int | None = None,
                     balance: str = "equal", seed: int = 13) -> StageCounts:
    """Pass rate → bucket; GRPO keeps 0 < correct < γ (γ = N drops only all-right and all-wrong groups), then
    class-balanced down-sampling (every class to the rarest kept class) unless ``balance='none'``."""
    samples = store.read("pass_at_n_samples").where((F.col("run_id") == run_id) & (F.col("sample_idx") >= 0))
    corpus_id = samples.select("corpus_id").first()["corpus_id"]
    per = samples.groupBy(*KEY, "split", "label").agg(F.sum(F.col("correct").cast("int")).alias("n_correct"),
                                                     F.count("*").alias("n_samples"))
    n = per.agg(F.max("n_samples")).first()[0]
    gamma = gamma or n
    rate = F.col("n_correct") / F.col("n_samples")
    bucket = (F.when(F.col("n_correct") == 0, "all_wrong").when(F.col("n_correct") == F.col("n_samples"), "all_correct")
              .when(rate <= 0.4, "hard").when(rate < 0.8, "medium").otherwise("easy"))
    per = per.withColumn("pass_rate", rate).withColumn("bucket", bucket).withColumn(
        "eligible", (F.col("n_correct") > 0) & (F.col("n_correct") < F.lit(gamma)))
    kept_by = {r["label"]: r["n"] for r in per.where("eligible").groupBy("label").agg(F.count("*").alias("n")).collect()}
    if balance == "equal" and kept_by:
        target = min(kept_by.values())
        rank = F.row_number().over(Window.partitionBy("eligible", "label").orderBy(_bucket_hash(KEY, seed)))
        per = per.withColumn("_r", F.when(F.col("eligible"), rank)).withColumn(
            "in_grpo", F.coalesce(F.col("eligible") & (F.col("_r") <= target), F.lit(False))).drop("_r")
    else:
        per = per.withColumn("in_grpo", F.col("eligible"))
    pairs = _with_products(store, store.read("corpus_pairs").where(F.col("corpus_id") == corpus_id)
                           .select(*KEY, "query"))
    j = per.join(pairs, KEY, "left")
    out = j.select(F.lit(run_id).alias("run_id"), *KEY, "split", prompt_column(j).alias("prompt"),
                   F.col("label").alias("gold_label"), F.col("n_correct").cast("int").alias("n_correct"),
                   F.col("n_samples").cast("int").alias("n_samples"), "pass_rate", "bucket", "in_grpo")
    with record_run(store, "label_difficulty", f"difficulty-{run_id}-{uuid.uuid4().hex[:6]}",
                    params={"run_id": run_id, "gamma": gamma, "balance": balance}) as rec:
        w = store.write("grpo_prompts", out, "overwrite", replace={"run_id": run_id})
        t = store.read("grpo_prompts").where(F.col("run_id") == run_id)
        sc = StageCounts(rows_in=w.rows, kept=t.where("in_grpo").count())
        sc.filtered["outside_0_gamma"] = t.where("bucket IN ('all_wrong', 'all_correct')").count() + \
            t.where(f"NOT in_grpo AND n_correct >= {gamma} AND bucket NOT IN ('all_wrong', 'all_correct')").count()
        sc.filtered["class_balance"] = sc.rows_in - sc.kept - sc.filtered["outside_0_gamma"]
        mix = t.groupBy("gold_label", "bucket", "in_grpo").count().collect()
        sc.extra = {f"mix:label{r['gold_label']}:{r['bucket']}:{'grpo' if r['in_grpo'] else 'out'}": r["count"]
                    for r in mix}
        sc.check("grpo_prompts")
        rec.counts.update(sc.as_counts())
        rec.table_versions["grpo_prompts"] = w.version
        log_event(log, "difficulty.mix", run_id=run_id, **{k: v for k, v in sc.extra.items()})
    return sc
