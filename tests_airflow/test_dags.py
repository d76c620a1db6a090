"""The DAGs in a real Airflow 3 (run with the Airflow venv: ``.venv-airflow/bin/python -m pytest tests_airflow``).

Needs: ``AIRFLOW_HOME`` (a migrated SQLite DB), ``AIRFLOW__CORE__DAGS_FOLDER`` = ``airflow_dags``, a
``spark_default`` connection, ``spark-submit`` of the project's venv on PATH and ``TAOSR1_WAREHOUSE`` holding one
day of bundled logs, products and the built-in model (``tests/test_airflow.py`` prepares all of it).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "airflow_dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dags_import_cleanly(dagbag):
    assert dagbag.import_errors == {}
    assert {"nightly_scoring", "training_corpus"} <= set(dagbag.dag_ids)


def test_task_graphs(dagbag):
    n = dagbag.get_dag("nightly_scoring")
    assert n.catchup is False and n.max_active_runs == 1
    assert {t.task_id: sorted(t.downstream_task_ids) for t in n.tasks} == {
        "wait_for_logs": ["ingest"], "ingest": ["score"], "score": ["validate"], "validate": ["publish"],
        "publish": []}
    assert all(t.retries >= 2 for t in n.tasks)
    t = dagbag.get_dag("training_corpus")
    order = ["build_sft_corpus", "sample_pass_at_n", "build_dpo_pairs", "label_difficulty", "want_training",
             "train_sft"]
    for a, b in zip(order, order[1:]):
        assert b in t.get_task(a).downstream_task_ids
    for dag in (n, t):
        for task in dag.tasks:
            for field in ("application_args", "env_vars"):
                text = str(getattr(task, field, ""))
                assert "password" not in text.lower() and "api_key" not in text.lower()


def test_nightly_scoring_runs_end_to_end_for_one_day(dagbag):
    from deltalake import DeltaTable

    dag = dagbag.get_dag("nightly_scoring")
    wh = os.environ["TAOSR1_WAREHOUSE"]
    before = DeltaTable(f"{wh}/gold/relevance_scores").version()
    # the data interval starting 2026-11-19 03:00 UTC scores ds = 2026-11-19
    run = dag.test(logical_date=datetime(2026, 11, 19, 3, tzinfo=timezone.utc),
                   run_conf={"warehouse": wh, "raw_logs": f"{wh}/raw/search_logs"})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {k: "success" for k in ("wait_for_logs", "ingest", "score", "validate", "publish")}, states
    scores = DeltaTable(f"{wh}/gold/relevance_scores")
    assert scores.version() > before
    day = scores.to_pandas(partitions=[("ds", "=", "2026-11-19")])
    assert len(day) > 0 and day["run_id"].nunique() == 1


def test_training_corpus_runs_end_to_end(dagbag):
    from deltalake import DeltaTable

    dag = dagbag.get_dag("training_corpus")
    wh = os.environ["TAOSR1_WAREHOUSE"]
    run = dag.test(logical_date=datetime(2026, 11, 22, 5, tzinfo=timezone.utc),
                   run_conf={"warehouse": wh, "n": 1, "max_new_tokens": 4, "train": False})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert all(states[t] == "success" for t in ("build_sft_corpus", "sample_pass_at_n", "build_dpo_pairs",
                                                  "label_difficulty", "want_training")), states
    assert states["train_sft"] == "skipped"
    grpo = DeltaTable(f"{wh}/corpora/grpo_prompts").to_pandas()
    assert set(grpo["run_id"]) == {"passn-world-20261122"}
