"""Stage 1: splits → class-balanced train pairs → teacher CoT → only traces whose label equals the human label."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from taosr1.corpora.splits import Balance, split_pairs
from taosr1.engine_stage import EngineStage
from taosr1.ids import new_id
from taosr1.job import Context, EngineParams, Ident, OptionalIdent
from taosr1.pairs import KEY, message, parsed, prompt_column, with_products
from taosr1.prompts.template import PROMPT_VERSIONS, PromptVariant
from taosr1.quarantine import pair_key

STAGE = "build_sft_corpus"


class SftParams(EngineParams):
    source: str = Field(default="world", description="Judged pairs: the source partition of query_product_labels.")
    corpus_id: Ident | None = Field(default=None, description="Id (default: generated).")
    from_candidates: OptionalIdent = Field(default=None, description="Build from the judged pairs of this candidate "
                                          "window (start_end) instead of one source's judgments.")
    max_label_cv: float = Field(default=1.0, ge=0, description="Gate: the largest coefficient of variation of the "
                                "SFT corpus' label counts (0 = perfectly balanced).")
    teacher: Literal["template", "knowledge", "engine"] = Field(
        default="template", description="template (label-conditioned CoT from retrieved rules, TaoSR1's teacher) | "
        "knowledge (rules only, blind to the label) | engine (a model, told the label and the rules)")
    rules: str | None = Field(default=None, description="Your own relevance rules (JSON, the shipped file's shape); "
                              "default: the shipped set.")
    query_type_rules: str | None = Field(default=None, description="Your own query-type rules for pairs with no "
                                         "type (default: the shipped tagger).")
    balance: Balance = Field(default="equal", description="equal (every train class to the rarest) | none")
    seed: int = 13
    max_new_tokens: int = Field(default=384, ge=1, description="engine teacher: tokens per trace")
    gate: bool = Field(default=True, description="Run the corpora quality gate before publishing.")
    prompt: PromptVariant = Field(default="long", description="Prompt variant of the model to be trained (its model "
                                  "card's `prompt`: compact for small imported models).")


def knowledge_teacher(df: DataFrame) -> DataFrame:
    """Adds ``teacher_label`` and ``completion_text`` (post-CoT) with the deterministic knowledge teacher."""
    schema = StructType(list(df.schema.fields) + [StructField("teacher_label", IntegerType()),
                                                  StructField("completion_text", StringType())])

    def run(batches):
        from taosr1.knowledge.teacher import teacher_completion

        for pdf in batches:
            out = [teacher_completion(r["query"], r) for r in pdf.to_dict("records")]
            yield pdf.assign(teacher_label=[o[0] for o in out], completion_text=[o[1] for o in out])

    return df.mapInPandas(run, schema)


def template_teacher(df: DataFrame, rules_path: str | None, compact: bool = False) -> DataFrame:
    """Adds ``teacher_label``, ``completion_text``, ``rules_cited`` and ``rules_level`` with the label-conditioned
    template teacher (needs ``label`` and ``query_type``)."""
    schema = StructType(list(df.schema.fields) + [StructField("teacher_label", IntegerType()),
                                                  StructField("completion_text", StringType()),
                                                  StructField("rules_cited", StringType()),
                                                  StructField("rules_level", IntegerType())])

    def run(batches):
        from taosr1.knowledge.rules import cached_rules
        from taosr1.knowledge.teacher import conditioned_completion

        rules = cached_rules(rules_path)
        for pdf in batches:
            out = [conditioned_completion(r["query"], r, int(r["label"]), rules, r["query_type"], compact)
                   for r in pdf.to_dict("records")]
            yield pdf.assign(teacher_label=[o[0] for o in out], completion_text=[o[1] for o in out],
                             rules_cited=[",".join(o[2]) for o in out], rules_level=[o[3] for o in out])

    return df.mapInPandas(run, schema)


def with_teacher_hint(df: DataFrame, rules_path: str | None) -> DataFrame:
    """Adds ``teacher_hint``: the human label and the retrieved rules, which the engine teacher is told."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def hint(query, title, label, query_type):
        import pandas as pd

        from taosr1.knowledge.rules import cached_rules
        from taosr1.knowledge.teacher import teacher_hint

        rules = cached_rules(rules_path)
        return pd.Series([teacher_hint(int(lv), rules.retrieve(f"{q} {t}", qt, k=2, level=int(lv)))
                          for q, t, lv, qt in zip(query, title, label, query_type)])

    return df.withColumn("teacher_hint", hint("query", "title", "label", "query_type"))


class SftCorpus(EngineStage[SftParams]):
    """Writes ``corpus_pairs`` and ``sft_corpus`` for one corpus id, after the corpora gate."""

    name = STAGE
    Params = SftParams
    reads = ("query_product_labels", "products", "candidate_pairs")
    writes = ("corpus_pairs", "sft_corpus", "quarantine")

    def run_id(self, params: SftParams) -> str:
        tag = "cand" if params.from_candidates else params.source
        return params.corpus_id or new_id("corpus", tag)

    def run(self, ctx: Context, p: SftParams) -> None:
        store, corpus_id = ctx.store, ctx.run_id
        pairs, pc = split_pairs(ctx, p.source, corpus_id, seed=p.seed, balance=p.balance,
                                from_candidates=p.from_candidates)
        ctx.report.info["pairs"] = pc
        train = with_query_types(ctx, with_products(store, pairs.where("balanced")).drop("_known"),
                                 p.query_type_rules)
        rules_version, engine_failed, held = None, None, []
        if p.teacher != "knowledge":
            from taosr1.knowledge.rules import RuleSet

            rules_version = RuleSet.load(p.rules).version  # a bad rule file fails here, on the driver
        if p.teacher == "knowledge":
            taught, teacher_name = knowledge_teacher(train), "knowledge"
        elif p.teacher == "template":
            taught, teacher_name = template_teacher(train, p.rules, p.prompt == "compact"), \
                f"template:{rules_version}{':compact' if p.prompt == 'compact' else ''}"
        else:
            engine = self.engine(ctx, p)
            er = self.run_engine(ctx, engine, with_teacher_hint(train, p.rules), kind="samples", key=KEY,
                                 what=f"teacher of {corpus_id}", max_error_share=p.max_error_share, n=1,
                                 temperature=0.7, max_new_tokens=p.max_new_tokens, seed=p.seed)
            taught = (er.ok.withColumnRenamed("text", "completion_text")
                      .withColumn("teacher_label", F.lit(None).cast("int")))
            engine_failed, held = er.failed, [er.all]
            teacher_name = f"engine:{engine.backend}:{self.model(ctx).version}"
        taught = taught.withColumn("parsed", parsed(F.col("completion_text"))).persist()
        try:
            c = ctx.report.counts
            c.rows_in = train.count()
            fmt_bad = taught.where("parsed.level IS NULL OR parsed.error IS NOT NULL")
            agree = taught.where("parsed.level IS NOT NULL AND parsed.error IS NULL AND parsed.level = label")
            c.filtered["teacher_disagrees"] = taught.where(
                "parsed.level IS NOT NULL AND parsed.error IS NULL AND parsed.level != label").count()
            rejected = (fmt_bad.withColumn("reason", F.lit("teacher_format_error"))
                        .withColumn("detail", F.col("parsed.error"))
                        .withColumn("raw", F.coalesce(F.col("completion_text"), F.lit("")))
                        .select(*KEY, "raw", "reason", "detail"))
            if engine_failed is not None:  # the rows the engine itself failed on (within the error budget)
                rejected = rejected.unionByName(engine_failed.select(*KEY, "raw", "reason", "detail"))
            c.quarantined = ctx.quarantine(rejected, stage=f"{STAGE}_teacher", ds=corpus_id, key=pair_key()).rows
            sft = agree.select(F.lit(corpus_id).alias("corpus_id"), "query_id", "product_id", "split",
                               prompt_column(p.prompt).alias("prompt"), message("completion_text").alias("completion"),
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
            kept_type, all_type = _by(agree, "query_type"), _by(taught, "query_type")
            c.extra = {**{f"pairs:{k}": v for k, v in pc.as_dict().items()},
                       **{f"kept_rate_label_{lv}_permille": int(1000 * kept_by.get(lv, 0) / all_by[lv])
                          for lv in sorted(all_by)},
                       **{f"kept_rate_type_{t}_permille": int(1000 * kept_type.get(t, 0) / all_type[t])
                          for t in sorted(all_type)},
                       "label_cv_permille": int(round(1000 * label_cv(kept_by))),
                       **mix_by_type(ctx, agree, p.from_candidates)}
            if p.teacher == "template":  # how far the rules alone get: the share where they give the human label
                agree_by = _by(taught.where("rules_level = label"), "label")
                c.extra.update({f"rules_alone_agree_label_{lv}_permille": int(1000 * agree_by.get(lv, 0) / n)
                                for lv, n in sorted(all_by.items())})
            ctx.report.info["params"] = {"teacher_name": teacher_name, "teacher": p.teacher,
                                         "rules_version": rules_version, "prompt_version": PROMPT_VERSIONS[p.prompt]}
            sft.unpersist()
        finally:
            for df in [taught, pairs, *held]:
                df.unpersist()


def label_cv(by_label: dict[int, int]) -> float:
    """Coefficient of variation of the counts of the four levels (a level with no row counts 0)."""
    import statistics

    counts = [by_label.get(lv, 0) for lv in (1, 2, 3, 4)]
    mean = statistics.fmean(counts)
    return statistics.pstdev(counts) / mean if mean else 0.0


def mix_by_type(ctx: Context, sft: DataFrame, window: str | None) -> dict[str, int]:
    """Label × query type of the corpus: from the candidate window's tagger, else the pair's own type."""
    if window:
        types = ctx.store.read("candidate_pairs").where(F.col("window_id") == window).select(
            "query_id", "product_id", "query_type")
        sft = sft.drop("query_type").join(types, ["query_id", "product_id"], "left")
    mix = sft.groupBy("label", "query_type").count().collect()
    return {f"mix:label{r['label']}:{r['query_type'] or 'untyped'}": r["count"] for r in mix}


def _by_label(df: DataFrame) -> dict[int, int]:
    return _by(df, "label")


def _by(df: DataFrame, col: str) -> dict:
    return {r[col]: r["n"] for r in df.groupBy(col).agg(F.count("*").alias("n")).collect()}


def with_query_types(ctx: Context, df: DataFrame, rules_path: str | None) -> DataFrame:
    """``query_type`` of each pair: the judgment's own type where the source has one, else the tagger's."""
    from taosr1.knowledge.tagger import TaggerRules

    types = ctx.store.read("query_product_labels").select("query_id", "product_id", F.col("query_type").alias("_t")) \
        .dropDuplicates(["query_id", "product_id"])
    df = df.drop("query_type") if "query_type" in df.columns else df
    return (df.join(types, ["query_id", "product_id"], "left")
            .withColumn("query_type", F.coalesce(F.col("_t"), TaggerRules.load(rules_path).column(F.col("query")))
                        ).drop("_t"))

