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
    assert {"nightly_scoring", "relevance_training", "annotation_round"} <= set(dagbag.dag_ids)


def test_task_graphs(dagbag):
    n = dagbag.get_dag("nightly_scoring")
    assert n.catchup is False and n.max_active_runs == 1
    assert {t.task_id: sorted(t.downstream_task_ids) for t in n.tasks} == {
        "day": ["publish", "validate", "wait_for_logs"], "wait_for_logs": ["ingest"], "ingest": ["score"], "score": ["validate"], "validate": ["publish"],
        "publish": []}
    assert all(t.retries == int(os.environ.get("TAOSR1_DAG_RETRIES", "2")) for t in n.tasks)
    # triggered by the day's logs arriving (an asset event), with the clock as the fallback
    assert type(n.timetable).__name__ == "AssetOrTimeSchedule"
    assert "taosr1_search_logs" in str(n.timetable.asset_condition)
    from taosr1.stages import TRAINING_LOOP  # the DAG and `taosr1 pipeline train` walk the same graph

    t = dagbag.get_dag("relevance_training")
    order = [s.id for s in TRAINING_LOOP]
    assert sorted(t.task_ids) == sorted(order)
    for a, b in zip(order, order[1:]):
        assert t.get_task(a).downstream_task_ids == {b}
    for step in TRAINING_LOOP:
        assert t.get_task(step.id).application.endswith(f"jobs/{step.job}.py")
    a = dagbag.get_dag("annotation_round")
    assert {t.task_id: sorted(t.downstream_task_ids) for t in a.tasks} == {"candidates": ["annotate"], "annotate": []}
    for dag in (n, t, a):
        for task in dag.tasks:
            for field in ("application_args", "env_vars"):
                text = str(getattr(task, field, ""))
                assert "password" not in text.lower() and "api_key" not in text.lower()


def test_the_training_dag_builds_the_pipelines_arguments_from_one_settings_model(dagbag, tmp_path):
    """The DAG's params are LoopSettings' fields (same defaults, same checks), and each task's spark-submit
    arguments are the ones ``taosr1 pipeline train`` builds for the same settings — including the recipe and the
    prompt variant read from the base model's card (an imported ~100M base trains with the ``small`` recipe)."""
    import copy
    import json
    import sys

    sys.path.insert(0, str(DAGS))
    from _taosr1_common import loop_step_args

    from taosr1.stages import (TRAINING_LOOP, LoopSettings, cli_args, loop_settings, loop_variables,
                               resolve_recipe, step_params)

    dag = dagbag.get_dag("relevance_training")
    assert set(LoopSettings.model_fields) <= set(dag.params.keys())
    assert set(dag.params.keys()) - set(LoopSettings.model_fields) == {"source", "from_candidates", "warehouse",
                                                                        "base_model"}
    for name, field in LoopSettings.model_fields.items():
        assert dag.params.get_param(name).value == field.default, name
    base = tmp_path / "imported"
    base.mkdir()
    (base / "taosr1_model.json").write_text(json.dumps({"parameters": 134_515_008, "prompt": "compact"}))
    conf = {"warehouse": str(tmp_path / "wh"), "base_model": str(base), "n": 3, "sft_steps": 7, "gpu": True}
    params = copy.deepcopy(dag.params)
    params.update(conf)
    rendered = params.validate()
    settings = LoopSettings(**{k: v for k, v in conf.items() if k in LoopSettings.model_fields})
    assert resolve_recipe(settings.recipe, str(base)) == "small"
    variables = loop_variables(source="world", tag="20261122", base=str(base), models=f"{conf['warehouse']}/models")
    per_step = loop_settings(settings, "small")
    for step in TRAINING_LOOP:
        task = dag.get_task(step.id)
        got = loop_step_args(task.step, rendered, "20261122")
        assert got == [*cli_args(step_params(step, variables, per_step)), "--warehouse", conf["warehouse"]], step.id
    args = {s.id: loop_step_args(s, rendered, "20261122") for s in TRAINING_LOOP}
    assert args["corpus"][args["corpus"].index("--prompt") + 1] == "compact"
    assert args["readout"][args["readout"].index("--keep-layers") + 1] == "15"
    assert args["sft"][args["sft"].index("--learning-rate") + 1] == "0.0001"
    assert "--use-vllm" in args["grpo"] and args["passn_sft"][args["passn_sft"].index("--engine") + 1] == "vllm"
    with pytest.raises(Exception, match="n"):
        bad = copy.deepcopy(dag.params)
        bad.update({"n": 1})
        bad.validate()


def test_nightly_scoring_runs_end_to_end_for_one_day(dagbag):
    from deltalake import DeltaTable

    dag = dagbag.get_dag("nightly_scoring")
    wh = os.environ["TAOSR1_WAREHOUSE"]
    before = DeltaTable(f"{wh}/gold/relevance_scores").version()
    # the data interval starting 2026-11-19 03:00 UTC scores ds = 2026-11-19
    run = dag.test(logical_date=datetime(2026, 11, 19, 3, tzinfo=timezone.utc),
                   run_conf={"warehouse": wh, "raw_logs": f"{wh}/raw/search_logs"})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {k: "success" for k in ("day", "wait_for_logs", "ingest", "score", "validate", "publish")}, \
        states
    scores = DeltaTable(f"{wh}/gold/relevance_scores")
    assert scores.version() > before
    day = scores.to_pandas(partitions=[("ds", "=", "2026-11-19")])
    assert len(day) > 0 and day["run_id"].nunique() == 1
    from taosr1.model.loading import model_version
    from taosr1.model.registry import champion

    assert set(day["model_version"]) == {model_version(champion(wh).path)}  # scored with the champion


def test_relevance_training_runs_the_loop_end_to_end(dagbag):
    """The whole loop; the challenger must beat the champion by 1.0 macro-F1, so it loses: the run is green, the
    decision and its reason are recorded and nightly scoring keeps its champion."""
    from deltalake import DeltaTable

    from taosr1.model.registry import champion

    dag = dagbag.get_dag("relevance_training")
    wh = os.environ["TAOSR1_WAREHOUSE"]
    before = champion(wh)
    assert before is not None  # the demo crowned its scorer
    run = dag.test(logical_date=datetime(2026, 11, 22, 5, tzinfo=timezone.utc),
                   run_conf={"warehouse": wh, "n": 2, "max_new_tokens": 8, "grpo_completion_tokens": 8,
                             "sft_steps": 5, "dpo_steps": 2, "grpo_steps": 1, "embeddings": False, "eval_pairs": 60,
                             "min_gain_macro_f1": 1.0})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    samples = DeltaTable(f"{wh}/corpora/pass_at_n_samples").to_pandas(columns=["run_id", "model_version"])
    runs = samples.groupby("run_id")["model_version"].unique()
    assert set(runs.index) == {"passn-world-20261122-sft", "passn-world-20261122-dpo"}
    assert runs["passn-world-20261122-sft"][0] != runs["passn-world-20261122-dpo"][0]  # the SFT, then the DPO policy
    metrics = DeltaTable(f"{wh}/gold/eval_metrics").to_pandas()
    assert {"base", "sft", "dpo", "grpo", "majority", "lexical"} <= set(metrics["system"])
    decisions = DeltaTable(f"{wh}/gold/model_promotions").to_pandas().sort_values("decided_at")
    last = decisions.iloc[-1]
    assert not last["promoted"] and last["reason"].startswith("kept the champion")
    assert last["champion_version"] == before.version and last["eval_id"] in set(metrics["eval_id"])
    assert champion(wh) == before
