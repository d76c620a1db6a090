"""Stage 1: splits → class-balanced train pairs → teacher CoT → only traces whose label equals the human label."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from taosr1.corpora.splits import Balance, split_pairs
from taosr1.job import Context, EngineParams, Ident, OptionalIdent, Stage
from taosr1.pairs import message, parsed, prompt_column, with_products
from taosr1.quarantine import pair_key

STAGE = "build_sft_corpus"


class SftParams(EngineParams):
    source: str = Field(default="world", description="Judged pairs: the source partition of query_product_labels.")
    corpus_id: Ident | None = Field(default=None, description="Id (default: generated).")
    from_candidates: OptionalIdent = Field(default=None, description="Build from the judged pairs of this candidate "
                                          "window (start_end) instead of one source's judgments.")
    max_label_cv: float = Field(default=1.0, ge=0, description="Gate: the largest coefficient of variation of the "
                                "SFT corpus' label counts (0 = perfectly balanced).")
    teacher: Literal["knowledge", "engine"] = Field(default="knowledge", description="knowledge (rules) | engine")
    balance: Balance = Field(default="equal", description="equal (every train class to the rarest) | none")
    seed: int = 13
    max_new_tokens: int = Field(default=384, ge=1, description="engine teacher: tokens per trace")
    gate: bool = Field(default=True, description="Run the corpora quality gate before publishing.")


def knowledge_teacher(df: DataFrame) -> DataFrame:
    """Adds ``teacher_label`` and ``completion_text`` (post-CoT) with the deterministic knowledge teacher."""
    schema = StructType(list(df.schema.fields) + [StructField("teacher_label", IntegerType()),
                                                  StructField("completion_text", StringType())])

    def run(batches):
        from taosr1.corpora.teacher import teacher_completion

        for pdf in batches:
            out = [teacher_completion(r["query"], r) for r in pdf.to_dict("records")]
            yield pdf.assign(teacher_label=[o[0] for o in out], completion_text=[o[1] for o in out])

    return df.mapInPandas(run, schema)


class SftCorpus(Stage[SftParams]):
    """Writes ``corpus_pairs`` and ``sft_corpus`` for one corpus id, after the corpora gate."""

    name = STAGE
    Params = SftParams
    reads = ("query_product_labels", "products")
    writes = ("corpus_pairs", "sft_corpus", "quarantine")

    def run_id(self, params: SftParams) -> str:
        tag = "cand" if params.from_candidates else params.source
        return params.corpus_id or f"corpus-{tag}-{uuid.uuid4().hex[:8]}"

    def run(self, ctx: Context, p: SftParams) -> None:
        store, corpus_id = ctx.store, ctx.run_id
        pairs, pc = split_pairs(ctx, p.source, corpus_id, seed=p.seed, balance=p.balance,
                                from_candidates=p.from_candidates)
        ctx.report.info["pairs"] = pc
        train = with_products(store, pairs.where("balanced")).drop("_known")
        if p.teacher == "knowledge":
            taught, teacher_name = knowledge_teacher(train), "knowledge"
        else:
            from taosr1.inference import with_samples
            from taosr1.model.reference import ModelRef

            engine = p.engine_config(store.root)
            taught = (with_samples(train, engine, n=1, temperature=0.7, max_new_tokens=p.max_new_tokens, seed=p.seed)
                      .withColumnRenamed("text", "completion_text")
                      .withColumn("teacher_label", F.lit(None).cast("int")))
            version = ModelRef.resolve(engine.model_path, backend=engine.backend).version
            teacher_name = f"engine:{engine.backend}:{version}"
        taught = taught.withColumn("parsed", parsed(F.col("completion_text"))).persist()
        try:
            c = ctx.report.counts
            c.rows_in = train.count()
            if p.teacher == "engine":
                from taosr1.inference import check_error_budget, engine_failures

                with engine_failures():
                    n_err = taught.where("error IS NOT NULL").count()
                check_error_budget(n_err, c.rows_in, p.max_error_share, f"teacher of {corpus_id}")
            fmt_bad = taught.where("parsed.level IS NULL OR parsed.error IS NOT NULL")
            agree = taught.where("parsed.level IS NOT NULL AND parsed.error IS NULL AND parsed.level = label")
            c.filtered["teacher_disagrees"] = taught.where(
                "parsed.level IS NOT NULL AND parsed.error IS NULL AND parsed.level != label").count()
            c.quarantined = ctx.quarantine(
                fmt_bad.withColumn("reason", F.lit("teacher_format_error")).withColumn("detail", F.col("parsed.error"))
                .withColumn("raw", F.coalesce(F.col("completion_text"), F.lit(""))),
                stage=f"{STAGE}_teacher", ds=corpus_id, key=pair_key()).rows
            sft = agree.select(F.lit(corpus_id).alias("corpus_id"), "query_id", "product_id", "split",
                               prompt_column().alias("prompt"), message("completion_text").alias("completion"),
                               "label", F.lit(teacher_name).alias("teacher")).persist()
            if p.gate:  # before publication: labels, query-disjoint splits, class mix, prompts
                from taosr1.quality.frames import corpora_frames
                from taosr1.quality.gates import require, run_gate

                require(run_gate("corpora", corpora_frames(pairs, sft), f"{store.root}/quality",
                                 f"{STAGE}-{corpus_id}", {"max_label_cv": p.max_label_cv}))
            ctx.write("corpus_pairs", pairs, "overwrite", replace={"corpus_id": corpus_id})
            c.kept = ctx.write("sft_corpus", sft, "overwrite", replace={"corpus_id": corpus_id}).rows
            kept_by = _by_label(agree)
            all_by = _by_label(taught)
            c.extra = {**{f"pairs:{k}": v for k, v in pc.as_dict().items()},
                       **{f"kept_rate_label_{lv}_permille": int(1000 * kept_by.get(lv, 0) / all_by[lv])
                          for lv in sorted(all_by)},
                       "label_cv_permille": int(round(1000 * label_cv(kept_by))),
                       **mix_by_type(ctx, agree, p.from_candidates)}
            ctx.report.info["params"] = {"teacher_name": teacher_name}
            sft.unpersist()
        finally:
            taught.unpersist()
            pairs.unpersist()


def label_cv(by_label: dict[int, int]) -> float:
    """Coefficient of variation of the counts of the four levels (a level with no row counts 0)."""
    import statistics

    counts = [by_label.get(lv, 0) for lv in (1, 2, 3, 4)]
    mean = statistics.fmean(counts)
    return statistics.pstdev(counts) / mean if mean else 0.0


def mix_by_type(ctx: Context, sft: DataFrame, window: str | None) -> dict[str, int]:
    """Label × query type of the corpus: from the candidate window's tagger, else the judgments' own type."""
    if window:
        types = ctx.store.read("candidate_pairs").where(F.col("window_id") == window).select(
            "query_id", "product_id", "query_type")
    else:
        types = ctx.store.read("query_product_labels").select("query_id", "product_id", "query_type") \
            .dropDuplicates(["query_id", "product_id"])
    mix = sft.join(types, ["query_id", "product_id"], "left").groupBy("label", "query_type").count().collect()
    return {f"mix:label{r['label']}:{r['query_type'] or 'untyped'}": r["count"] for r in mix}


def _by_label(df: DataFrame) -> dict[int, int]:
    return {r["label"]: r["n"] for r in df.groupBy("label").agg(F.count("*").alias("n")).collect()}

