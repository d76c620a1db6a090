"""relevance_training: the TaoSR1 loop, one SparkSubmit task per step of :data:`taosr1.stages.TRAINING_LOOP`.

corpora → SFT → pass@N with the SFT policy → DPO pairs → DPO → pass@N with the DPO policy → difficulty →
GRPO → evaluate (with the champion beside them) → promote (the GRPO model becomes the champion nightly scoring uses
only if it beats the champion by the margins; a losing challenger ends the run green, its reason in
``gold/model_promotions``): the same steps and wiring ``taosr1 pipeline train`` walks in-process. Ids come from the run
(``corpus-<source>-<ds_nodash>``, ``passn-<source>-<ds_nodash>-sft|dpo``), so a retried task replaces its own
partitions and a retried pass@N resumes its unfinished chunks. The settings are
:class:`taosr1.stages.LoopSettings` (the DAG's params are generated from it) and each task builds its arguments
with the pipeline's own functions when it runs.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared module beside the DAGs
from _taosr1_common import DEFAULT_ARGS, WAREHOUSE, chain_loop_steps, model_params  # noqa: E402

from taosr1.stages import TRAINING_LOOP, LoopSettings  # noqa: E402

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
        "base_model": Param(f"{WAREHOUSE}/models/taosr1-builtin", type="string", description="the base policy "
                            "(its card gives the prompt variant and, with recipe auto, the recipe)"),
        **model_params(LoopSettings),  # the settings `taosr1 pipeline train` takes, from the same model
    },
) as dag:
    chain_loop_steps(TRAINING_LOOP)
