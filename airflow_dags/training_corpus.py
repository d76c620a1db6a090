"""training_corpus: corpora -> pass@N -> DPO pairs -> difficulty -> optional SFT training (weekly or manual).

Ids come from the run (``corpus-<ds_nodash>``, ``passn-<ds_nodash>``), so a retried task replaces its own
partitions and a retried pass@N resumes its unfinished chunks.
"""

from __future__ import annotations

import os
import sys

from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, Param

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared module beside the DAGs
from _taosr1_common import DEFAULT_ARGS, JOBS, SPARK_ENV, WAREHOUSE  # noqa: E402

CORPUS = "corpus-{{ params.source }}-{{ ds_nodash }}"
RUN = "passn-{{ params.source }}-{{ ds_nodash }}"

with DAG(
    dag_id="training_corpus",
    description="TaoSR1 stages 1-3: teacher CoT SFT corpus, pass@N, DPO pairs, difficulty/GRPO set",
    schedule="0 5 * * 0",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": timedelta(hours=12)},
    tags=["taosr1", "training"],
    params={
        "source": Param("world", type="string"),
        "warehouse": Param(WAREHOUSE, type="string"),
        "engine": Param("hf", enum=["hf", "vllm"]),
        "model_path": Param(f"{WAREHOUSE}/models/taosr1-builtin", type="string", description="the policy"),
        "n": Param(5, type="integer", minimum=1),
        "max_new_tokens": Param(256, type="integer"),
        "train": Param(False, type="boolean", description="also run SFT on the new corpus"),
    },
) as dag:
    common = {"env_vars": SPARK_ENV, "conn_id": "spark_default"}
    wh = ["--warehouse", "{{ params.warehouse }}"]
    sft_corpus = SparkSubmitOperator(task_id="build_sft_corpus", application=str(JOBS / "build_sft_corpus.py"),
                                     application_args=["--source", "{{ params.source }}", "--corpus-id", CORPUS, *wh],
                                     name="taosr1-sft-corpus", **common)
    pass_at_n = SparkSubmitOperator(task_id="sample_pass_at_n", application=str(JOBS / "sample_pass_at_n.py"),
                                    application_args=["--corpus-id", CORPUS, "--run-id", RUN, "--n", "{{ params.n }}",
                                                      "--max-new-tokens", "{{ params.max_new_tokens }}",
                                                      "--engine", "{{ params.engine }}",
                                                      "--model", "{{ params.model_path }}", *wh],
                                    name="taosr1-pass-at-n", **common)
    dpo = SparkSubmitOperator(task_id="build_dpo_pairs", application=str(JOBS / "build_dpo_pairs.py"),
                              application_args=["--run-id", RUN, *wh], name="taosr1-dpo-pairs", **common)
    difficulty = SparkSubmitOperator(task_id="label_difficulty", application=str(JOBS / "label_difficulty.py"),
                                     application_args=["--run-id", RUN, *wh], name="taosr1-difficulty", **common)
    want_training = ShortCircuitOperator(task_id="want_training", python_callable=lambda train: str(train).lower() == "true",
                                         op_kwargs={"train": "{{ params.train }}"})
    train_sft = SparkSubmitOperator(task_id="train_sft", application=str(JOBS / "train_sft.py"),
                                    application_args=["--corpus-id", CORPUS, "--base", "{{ params.model_path }}",
                                                      "--out", "{{ params.warehouse }}/models/sft-" + CORPUS, *wh],
                                    name="taosr1-train-sft", **common)
    sft_corpus >> pass_at_n >> dpo >> difficulty >> want_training >> train_sft
