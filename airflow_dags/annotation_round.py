"""annotation_round: last week's search logs → candidate pairs → an annotation round exported for raters.

Steps and wiring come from :data:`taosr1.stages.ANNOTATION_ROUND`. When the raters' answers come back, load them
(`taosr1 load-labels --source annotations --labels FILE`) and trigger ``relevance_training`` with
``from_candidates`` set to the window: its corpus is then built from the labelled candidates.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from airflow.sdk import DAG, Param

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared module beside the DAGs
from _taosr1_common import DEFAULT_ARGS, WAREHOUSE, chain_steps  # noqa: E402

from taosr1.stages import ANNOTATION_ROUND  # noqa: E402

VARIABLES = {"start": "{{ macros.ds_add(ds, -(params.days - 1)) }}", "end": "{{ ds }}",
             "queue": "round-{{ ds_nodash }}"}
SETTINGS = {"annotate": {"budget": "{{ params.budget }}"}}

with DAG(
    dag_id="annotation_round",
    description="search logs -> candidate pairs (traffic band, query type, uncertainty) -> annotation export",
    schedule="0 6 * * 1",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["taosr1", "annotation"],
    params={
        "warehouse": Param(WAREHOUSE, type="string"),
        "days": Param(7, type="integer", minimum=1, description="window length, ending at the run's day"),
        "budget": Param(500, type="integer", minimum=1, description="pairs to send to raters"),
    },
) as dag:
    chain_steps(ANNOTATION_ROUND, VARIABLES, SETTINGS)
