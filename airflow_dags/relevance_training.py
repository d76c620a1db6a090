"""relevance_training: the TaoSR1 loop, one SparkSubmit task per step of :data:`taosr1.stages.TRAINING_LOOP`.

corpora → SFT → pass@N with the SFT policy → DPO pairs → DPO → pass@N with the DPO policy → difficulty →
GRPO → evaluate (with the champion beside them) → promote (the GRPO model becomes the champion nightly scoring uses
only if it beats the champion by the margins; a losing challenger ends the run green, its reason in
``gold/model_promotions``): the same steps and wiring ``taosr1 pipeline train`` walks in-process. Ids come from the run
(``corpus-<source>-<ds_nodash>``, ``passn-<source>-<ds_nodash>-sft|dpo``), so a retried task replaces its own
partitions and a retried pass@N resumes its unfinished chunks.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared module beside the DAGs
from _taosr1_common import DEFAULT_ARGS, WAREHOUSE, chain_steps  # noqa: E402

from taosr1.stages import TRAINING_LOOP, fill, loop_settings  # noqa: E402

VARIABLES = {
    "source": "{{ params.source }}", "corpus": "corpus-{{ params.source }}-{{ ds_nodash }}",
    "run": "passn-{{ params.source }}-{{ ds_nodash }}", "base": "{{ params.base_model }}",
    "models": "{{ params.warehouse }}/models", "from_candidates": "{{ params.from_candidates }}",
    "prompt": "{{ params.prompt }}",
    "eval_corpus": "corpus-{{ params.source }}-{{ ds_nodash }}", "eval_source": "", "eval_train_source": "",
}
# a training step's output folder, as the loop's later steps name it
for step in TRAINING_LOOP:
    if step.produces:
        VARIABLES[step.produces] = fill(step.wiring["out"], VARIABLES)
SETTINGS = loop_settings(n="{{ params.n }}", temperature="{{ params.temperature }}",
                         max_new_tokens="{{ params.max_new_tokens }}",
                         grpo_completion_tokens="{{ params.grpo_completion_tokens }}",
                         sft_steps="{{ params.sft_steps }}", dpo_steps="{{ params.dpo_steps }}",
                         grpo_steps="{{ params.grpo_steps }}", seed="{{ params.seed }}",
                         min_gain_macro_f1="{{ params.min_gain_macro_f1 }}",
                         min_gain_ndcg_10="{{ params.min_gain_ndcg_10 }}")
SETTINGS["evaluate"] = {}  # a templated boolean is passed as its flag form below
EVALUATE_FLAG = {"evaluate": ["{{ '--embeddings' if params.embeddings else '--no-embeddings' }}", "--champion"]}

with DAG(
    dag_id="relevance_training",
    description="TaoSR1 stages: teacher-CoT SFT, pass@N + DPO, difficulty + GRPO, evaluation",
    schedule="0 5 * * 0",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": timedelta(hours=12)},
    tags=["taosr1", "training"],
    params={
        "source": Param("world", type="string"),
        "from_candidates": Param("", type="string", description="a candidate window (start_end) whose labelled "
                                 "pairs make the corpus; empty: the source's judgments"),
        "warehouse": Param(WAREHOUSE, type="string"),
        "base_model": Param(f"{WAREHOUSE}/models/taosr1-builtin", type="string", description="the base policy"),
        "prompt": Param("long", enum=["long", "compact"], description="the base model's prompt variant (its card's "
                        "`prompt`; imported small models use compact)"),
        "n": Param(5, type="integer", minimum=2),
        "temperature": Param(1.0, type="number", exclusiveMinimum=0),
        "max_new_tokens": Param(160, type="integer", minimum=1),
        "grpo_completion_tokens": Param(80, type="integer", minimum=1),
        "sft_steps": Param(300, type="integer", minimum=1),
        "dpo_steps": Param(60, type="integer", minimum=1),
        "grpo_steps": Param(20, type="integer", minimum=1),
        "seed": Param(13, type="integer"),
        "embeddings": Param(True, type="boolean"),
        "min_gain_macro_f1": Param(0.005, type="number", minimum=-1, maximum=1,
                                   description="promotion: macro-F1 gain over the champion required"),
        "min_gain_ndcg_10": Param(0.0, type="number", minimum=-1, maximum=1,
                                  description="promotion: NDCG@10 gain over the champion required"),
    },
) as dag:
    chain_steps(TRAINING_LOOP, VARIABLES, SETTINGS, EVALUATE_FLAG)
