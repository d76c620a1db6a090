"""Shared wiring for the taosr1 DAGs: where the repo's jobs are, default parameters, retries. No secrets here:
the Spark master comes from the Airflow connection (``spark_default``), everything else from DAG params or
``TAOSR1_*`` environment variables on the workers."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

REPO = Path(os.environ.get("TAOSR1_REPO", Path(__file__).resolve().parents[1]))
JOBS = REPO / "jobs"
WAREHOUSE = os.environ.get("TAOSR1_WAREHOUSE", str(REPO / "warehouse"))
sys.path.insert(0, str(REPO))  # taosr1.stages and taosr1.layout are plain Python: no Spark or torch needed here
PYTHON = os.environ.get("TAOSR1_PYTHON", str(REPO / ".venv" / "bin" / "python"))

DEFAULT_ARGS = {
    "owner": "search-relevance",
    "retries": int(os.environ.get("TAOSR1_DAG_RETRIES", "2")),
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=3),
}

# Extra Spark conf for every job (JSON), e.g. '{"spark.sql.shuffle.partitions": "64"}'; the master stays in the
# spark_default connection.
SPARK_CONF: dict[str, str] = json.loads(os.environ.get("TAOSR1_SPARK_CONF", "{}"))

# Environment for spark-submit: the project's Python on driver and executors.
SPARK_ENV = {"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON, "TAOSR1_WAREHOUSE": WAREHOUSE}



def chain_steps(steps, variables: dict, settings: dict, extra_args: dict | None = None) -> list:
    """One SparkSubmit task per step of a taosr1 loop (``taosr1.stages``), chained in order; the flags come from
    the step's wiring (templated with ``variables``) and its settings, the warehouse from the DAG params."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from taosr1.stages import cli_args, fill

    tasks = []
    for step in steps:
        args = [*cli_args({**fill(step.wiring, variables), **settings.get(step.id, {})}),
                "--warehouse", "{{ params.warehouse }}", *(extra_args or {}).get(step.id, [])]
        task = SparkSubmitOperator(task_id=step.id, application=str(JOBS / f"{step.job}.py"), application_args=args,
                                   name=f"taosr1-{step.id}", env_vars=SPARK_ENV, conf=SPARK_CONF,
                                   conn_id="spark_default")
        if tasks:
            tasks[-1] >> task
        tasks.append(task)
    return tasks


def model_params(model) -> dict:
    """DAG params generated from a settings model's fields (JSON schema: type, bounds, enum, description), so the
    DAG offers exactly the settings the pipeline takes, with the same defaults and checks."""
    from airflow.sdk import Param

    props = model.model_json_schema()["properties"]
    return {name: Param(prop.get("default"), **{k: v for k, v in prop.items() if k not in ("default", "title")})
            for name, prop in props.items()}


def loop_step_args(step, params, tag: str) -> list[str]:
    """A loop step's spark-submit arguments from a run's params: the same settings model, recipe (from the base
    model's card), variables and per-step params ``taosr1 pipeline train`` uses."""
    from taosr1.stages import LoopSettings, cli_args, loop_settings, loop_variables, resolve_recipe, step_params

    settings = LoopSettings(**{k: params[k] for k in LoopSettings.model_fields})
    base = params["base_model"]
    variables = loop_variables(source=params["source"], tag=tag, base=base, models=f"{params['warehouse']}/models",
                               from_candidates=params["from_candidates"] or "")
    return [*cli_args(step_params(step, variables, loop_settings(settings, resolve_recipe(settings.recipe, base)))),
            "--warehouse", params["warehouse"]]


def chain_loop_steps(steps) -> list:
    """One SparkSubmit task per loop step, chained; each builds its arguments when it runs (from the run's params
    and day, see :func:`loop_step_args`), so the recipe and prompt follow the base model's card."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    class LoopStep(SparkSubmitOperator):
        def __init__(self, *, step, **kwargs) -> None:
            super().__init__(**kwargs)
            self.step = step

        def execute(self, context) -> None:
            self.application_args = loop_step_args(self.step, context["params"], context["ds_nodash"])
            self.log.info("taosr1 %s: %s", self.step.id, " ".join(self.application_args))
            super().execute(context)

    tasks = []
    for step in steps:
        task = LoopStep(step=step, task_id=step.id, application=str(JOBS / f"{step.job}.py"), application_args=[],
                        name=f"taosr1-{step.id}", env_vars=SPARK_ENV, conf=SPARK_CONF, conn_id="spark_default")
        if tasks:
            tasks[-1] >> task
        tasks.append(task)
    return tasks
