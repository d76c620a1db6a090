"""nightly_scoring: wait for the day's logs, ingest, score with the champion, validate, publish (one ``ds``
partition per run).

Triggered by the day's logs arriving — an event on the ``taosr1_search_logs`` asset whose ``extra`` names the day
(``{"ds": "2026-11-19"}``; a log shipper posts it to Airflow's REST API, ``POST /api/v2/assets/events``) — or, if
no event came, by the 03:00 UTC clock for yesterday. ``day`` resolves which day the run scores. The model is the
warehouse's champion (``taosr1 promote`` / the training DAG's gate decides it) unless ``model_path`` names one.

Every task is idempotent for its ``ds``: the jobs replace that day's partitions atomically, so retries and
backfills (``airflow backfill create --dag-id nightly_scoring ...``) are safe. Quality gates run inside the jobs
before anything is committed; ``validate`` re-checks the day's job records, and ``publish`` emits the
``relevance_scores`` asset event that downstream DAGs and analysts wait on.
"""

from __future__ import annotations

import os
import sys

from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, Param, task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared module beside the DAGs
from _taosr1_common import DEFAULT_ARGS, JOBS, SPARK_CONF, SPARK_ENV, WAREHOUSE  # noqa: E402

from taosr1.layout import table_path  # noqa: E402

RELEVANCE_SCORES = Asset(uri=f"file://{table_path(WAREHOUSE, 'relevance_scores')}", name="taosr1_relevance_scores")
SEARCH_LOGS = Asset(uri=f"file://{WAREHOUSE}/raw/search_logs", name="taosr1_search_logs")
DAY = "{{ ti.xcom_pull(task_ids='day') }}"


def _logs_arrived(raw: str, ds: str) -> bool:
    from pathlib import Path

    folder = Path(raw) / f"ds={ds}"
    return folder.is_dir() and any(p.suffix in (".jsonl", ".json", ".parquet") for p in folder.iterdir())


with DAG(
    dag_id="nightly_scoring",
    description="search logs -> silver -> label probabilities -> CumPT tiers -> relevance_scores",
    # the day's logs arriving (an asset event naming the day), or 03:00 UTC for yesterday (the interval's start)
    schedule=AssetOrTimeSchedule(timetable=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
                                 assets=[SEARCH_LOGS]),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    # The SLA: a run that has not finished 8 h after it started fails (and alerts through on_failure);
    # Airflow 3's DeadlineAlert would be the finer tool, but dag.test() in 3.3.2 cannot load one.
    dagrun_timeout=timedelta(hours=8),
    tags=["taosr1", "scoring"],
    params={
        "raw_logs": Param(f"{WAREHOUSE}/raw/search_logs", type="string", description="raw log folder (ds=...)"),
        "warehouse": Param(WAREHOUSE, type="string"),
        "engine": Param("hf", enum=["hf", "vllm", "openai"]),
        "model_path": Param("", type="string", description="empty: the warehouse's champion"),
        "base_url": Param("", type="string", description="openai engine: server URL"),
        "logs_timeout_s": Param(6 * 3600, type="integer"),
    },
) as dag:
    @task
    def day(**context) -> str:
        """The day this run scores: the triggering asset event's ``ds``, else the clock's data interval."""
        from taosr1.schedule import day_of_run

        return day_of_run(context.get("ds"), context.get("triggering_asset_events"))

    the_day = day()
    wait_for_logs = PythonSensor(
        task_id="wait_for_logs",
        python_callable=_logs_arrived,
        op_kwargs={"raw": "{{ params.raw_logs }}", "ds": DAY},
        mode="reschedule", poke_interval=120, timeout=6 * 3600,
    )
    ingest = SparkSubmitOperator(
        task_id="ingest",
        application=str(JOBS / "ingest_logs.py"),
        application_args=["--input", "{{ params.raw_logs }}", "--ds", DAY, "--warehouse",
                          "{{ params.warehouse }}"],
        name="taosr1-ingest", env_vars=SPARK_ENV, conf=SPARK_CONF, conn_id="spark_default",
    )
    score = SparkSubmitOperator(
        task_id="score",
        application=str(JOBS / "score_catalog.py"),
        application_args=["--ds", DAY, "--warehouse", "{{ params.warehouse }}", "--engine",
                          "{{ params.engine }}", "--model={{ params.model_path }}",
                          "--base-url={{ params.base_url }}"],
        name="taosr1-score", env_vars=SPARK_ENV, conf=SPARK_CONF, conn_id="spark_default",
    )

    @task
    def validate(day_scored: str, params=None) -> dict:
        """The day's ingest and scoring runs succeeded (their gates passed) and their counts add up."""
        from deltalake import DeltaTable

        runs = DeltaTable(table_path(params["warehouse"], "job_runs")).to_pandas(
            filters=[("job", "in", ["ingest_logs", "score_catalog"])])
        latest = runs[runs["ds"] == day_scored].sort_values("finished_at").groupby("job").tail(1)
        if set(latest["job"]) != {"ingest_logs", "score_catalog"} or (latest["status"] != "succeeded").any():
            raise ValueError(f"{day_scored}: the latest ingest/score runs did not both succeed:\n"
                             f"{latest[['job', 'status', 'error']]}")
        score_counts = dict(latest[latest["job"] == "score_catalog"]["counts"].iloc[0])
        filtered = sum(v for k, v in score_counts.items() if k.startswith("filtered:"))
        if score_counts["rows_in"] != score_counts["kept"] + score_counts["quarantined"] + filtered:
            raise ValueError(f"{day_scored}: scoring counts do not add up: {score_counts}")
        return {k: int(v) for k, v in score_counts.items()}

    @task(outlets=[RELEVANCE_SCORES])
    def publish(counts: dict, day_scored: str, params=None, outlet_events=None) -> str:
        """Announce the day's partition (version and counts) to downstream consumers."""
        from deltalake import DeltaTable

        version = DeltaTable(table_path(params["warehouse"], "relevance_scores")).version()
        outlet_events[RELEVANCE_SCORES].extra = {"ds": day_scored, "version": version, **counts}
        return f"relevance_scores ds={day_scored} version={version}"

    checked = validate(the_day)
    the_day >> wait_for_logs >> ingest >> score >> checked
    publish(checked, the_day)
