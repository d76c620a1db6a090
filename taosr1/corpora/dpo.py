"""Stage 3a: right vs wrong pass@N samples of a pair → (prompt, chosen, rejected) rows for TRL's DPOTrainer.

chosen = the right, well-formed sample with the highest mean token logprob (the policy's most natural correct
answer); rejected = the wrong sample with the highest mean token logprob (the most confident mistake: the hard
negative). Pairs with no well-formed right sample take the teacher's trace as chosen (the paper's oracle guidance);
all-right pairs give no preference and are filtered. ``n_correct`` counts samples whose label is right, as in
``grpo_prompts``.
"""

from __future__ import annotations

from pydantic import Field
from pyspark.sql import Window
from pyspark.sql import functions as F

from taosr1.corpora.pass_at_n import run_samples
from taosr1.ids import new_id
from taosr1.job import Context, Ident, Params, Stage
from taosr1.pairs import KEY, message, prompt_column, with_products
from taosr1.prompts.template import PromptVariant


class DpoParams(Params):
    run_id: Ident = Field(description="pass@N run id.")
    prompt: PromptVariant = Field(default="long", description="Prompt variant of the policy (its model card's "
                                  "`prompt`), for pairs with no teacher prompt.")


class DpoPairs(Stage[DpoParams]):
    """Writes the ``dpo_pairs`` partition of one pass@N run."""

    name = "build_dpo_pairs"
    Params = DpoParams
    reads = ("pass_at_n_samples", "sft_corpus", "corpus_pairs", "products")
    writes = ("dpo_pairs",)

    def run_id(self, params: DpoParams) -> str:
        return params.run_id

    def record_id(self, run_id: str) -> str:
        return new_id("dpo", run_id)

    def run(self, ctx: Context, p: DpoParams) -> None:
        store = ctx.store
        samples, corpus_id = run_samples(store, p.run_id)
        s = (samples.withColumn("conf", F.col("logprob") / F.greatest(F.col("n_tokens"), F.lit(1)))
             .withColumn("good", F.col("correct") & F.col("format_ok")))
        best = lambda cond, name: (s.where(cond).withColumn(  # noqa: E731
            "r", F.row_number().over(Window.partitionBy(*KEY).orderBy(F.desc("conf")))).where("r = 1")
            .select(*KEY, F.col("text").alias(name)))
        stats = s.groupBy(*KEY, "split", "label").agg(F.sum(F.col("correct").cast("int")).alias("n_correct"),
                                                     F.sum(F.col("good").cast("int")).alias("n_good"),
                                                     F.count("*").alias("n_samples"))
        teacher = (store.read("sft_corpus").where(F.col("corpus_id") == corpus_id)
                   .select(*KEY, F.col("completion")[0]["content"].alias("teacher_text"), "prompt"))
        pairs = with_products(store, store.read("corpus_pairs").where(F.col("corpus_id") == corpus_id)
                              .select(*KEY, "query")).drop("_known")
        j = (stats.join(best("good", "chosen_text"), KEY, "left").join(best("NOT correct", "rej_text"), KEY, "left")
             .join(teacher, KEY, "left").join(pairs, KEY, "left")
             .withColumn("chosen_source", F.when(F.col("chosen_text").isNotNull(), "policy").otherwise("teacher"))
             .withColumn("chosen_text", F.coalesce("chosen_text", "teacher_text"))).persist()
        try:
            c = ctx.report.counts
            c.rows_in = j.count()
            c.filtered["all_correct"] = j.where("rej_text IS NULL").count()
            c.filtered["no_right_sample_nor_teacher_trace"] = j.where(
                "rej_text IS NOT NULL AND chosen_text IS NULL").count()
            keep = j.where("rej_text IS NOT NULL AND chosen_text IS NOT NULL")
            out = keep.select(F.lit(p.run_id).alias("run_id"), *KEY, "split",
                              F.coalesce(F.col("prompt"), prompt_column(p.prompt)).alias("prompt"),
                              message("chosen_text").alias("chosen"), message("rej_text").alias("rejected"),
                              "chosen_source", F.col("n_correct").cast("int").alias("n_correct"),
                              F.col("n_samples").cast("int").alias("n_samples"), "label")
            c.kept = ctx.write("dpo_pairs", out, "overwrite", replace={"run_id": p.run_id}).rows
            c.extra = {"chosen_from_teacher": keep.where("chosen_source = 'teacher'").count()}
        finally:
            j.unpersist()
