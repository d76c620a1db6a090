"""Stage 3b: pass rate → difficulty bucket; the GRPO set keeps 0 < correct < γ, then class-balanced.

γ = N drops only all-right and all-wrong groups (DAPO's rule); ``balance="equal"`` down-samples every class to
the rarest kept class (the paper's CV = 0 mix). The class × bucket mix is recorded with the run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pyspark.sql import Window
from pyspark.sql import functions as F

from taosr1.corpora.pass_at_n import run_samples
from taosr1.ids import new_id
from taosr1.job import Context, Ident, Params, Stage
from taosr1.pairs import KEY, bucket_hash, prompt_column, with_products
from taosr1.prompts.template import PromptVariant


class DifficultyParams(Params):
    run_id: Ident = Field(description="pass@N run id.")
    gamma: int | None = Field(default=None, ge=1, description="Keep 0 < correct < gamma (default N).")
    balance: Literal["equal", "none"] = "equal"
    seed: int = 13
    prompt: PromptVariant = Field(default="long", description="Prompt variant of the GRPO policy (its model card's "
                                  "`prompt`).")


class Difficulty(Stage[DifficultyParams]):
    """Writes the ``grpo_prompts`` partition of one pass@N run."""

    name = "label_difficulty"
    Params = DifficultyParams
    reads = ("pass_at_n_samples", "corpus_pairs", "products")
    writes = ("grpo_prompts",)

    def run_id(self, params: DifficultyParams) -> str:
        return params.run_id

    def record_id(self, run_id: str) -> str:
        return new_id("difficulty", run_id)

    def run(self, ctx: Context, p: DifficultyParams) -> None:
        store = ctx.store
        samples, corpus_id = run_samples(store, p.run_id)
        per = samples.groupBy(*KEY, "split", "label").agg(F.sum(F.col("correct").cast("int")).alias("n_correct"),
                                                         F.count("*").alias("n_samples"))
        gamma = p.gamma or per.agg(F.max("n_samples")).first()[0]
        rate = F.col("n_correct") / F.col("n_samples")
        bucket = (F.when(F.col("n_correct") == 0, "all_wrong")
                  .when(F.col("n_correct") == F.col("n_samples"), "all_correct")
                  .when(rate <= 0.4, "hard").when(rate < 0.8, "medium").otherwise("easy"))
        eligible = (F.col("n_correct") > 0) & (F.col("n_correct") < F.lit(gamma))
        per = per.withColumn("pass_rate", rate).withColumn("bucket", bucket).withColumn("eligible", eligible)
        kept_by = {r["label"]: r["n"] for r in per.where("eligible").groupBy("label").agg(F.count("*").alias("n"))
                   .collect()}
        if p.balance == "equal" and kept_by:
            rank = F.row_number().over(Window.partitionBy("eligible", "label").orderBy(bucket_hash(KEY, p.seed)))
            per = per.withColumn("_r", F.when(F.col("eligible"), rank)).withColumn(
                "in_grpo", F.coalesce(F.col("eligible") & (F.col("_r") <= min(kept_by.values())), F.lit(False))
            ).drop("_r")
        else:
            per = per.withColumn("in_grpo", F.col("eligible"))
        pairs = with_products(store, store.read("corpus_pairs").where(F.col("corpus_id") == corpus_id)
                              .select(*KEY, "query")).drop("_known")
        j = per.join(pairs, KEY, "left")
        out = j.select(F.lit(p.run_id).alias("run_id"), *KEY, "split", prompt_column(p.prompt).alias("prompt"),
                       F.col("label").alias("gold_label"), F.col("n_correct").cast("int").alias("n_correct"),
                       F.col("n_samples").cast("int").alias("n_samples"), "pass_rate", "bucket", "in_grpo")
        n_pairs = samples.select(*KEY).distinct().count()  # the input: one prompt row per sampled pair
        ctx.write("grpo_prompts", out, "overwrite", replace={"run_id": p.run_id})
        t = store.read("grpo_prompts").where(F.col("run_id") == p.run_id)
        inside = (F.col("n_correct") > 0) & (F.col("n_correct") < F.lit(gamma))
        c = ctx.report.counts
        # rows_in counts the input; kept and the filters count the committed rows, so a pair lost or doubled on
        # the way (a corpus listing a pair twice, a join that fans out) fails the run's count check
        c.rows_in, c.kept = n_pairs, t.where("in_grpo").count()
        c.filtered["outside_0_gamma"] = t.where(~inside).count()
        c.filtered["class_balance"] = t.where(inside & ~F.col("in_grpo")).count()
        mix = t.groupBy("gold_label", "bucket", "in_grpo").count().collect()
        c.extra = {f"mix:label{r['gold_label']}:{r['bucket']}:{'grpo' if r['in_grpo'] else 'out'}": r["count"]
                   for r in mix}
        ctx.report.info["params"] = {"gamma_used": int(gamma)}
