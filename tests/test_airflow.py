"""The DAGs in a real Airflow 3.3, from its own venv (Airflow's pins and vLLM's do not share one environment):
DagBag import, task graphs, ``dag.test()`` of nightly_scoring for one day of the bundled logs and of
relevance_training (the whole TaoSR1 loop, each step a spark-submit task) on local Spark. This is the loop's
end-to-end test: what the loop leaves behind (MLflow runs, model folders, the evaluation and its report) is checked
here from the test's own venv."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from taosr1.cli import app
from tests.helpers import REPO, jvm_only

AIRFLOW_PY = REPO / ".venv-airflow" / "bin" / "python"


@pytest.mark.slow
@jvm_only
def test_dags_in_real_airflow(spark, tmp_path):
    assert AIRFLOW_PY.exists(), "the Airflow venv is missing: run scripts/setup.sh"
    wh = tmp_path / "wh"
    res = CliRunner().invoke(app, ["demo", "--warehouse", str(wh), "--days", "1", "--scorer", "builtin"])
    assert res.exit_code == 0, res.output
    home = tmp_path / "airflow"
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "airflow_dags"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__UNIT_TEST_MODE="False",
               AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[2]"}',
               PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", TAOSR1_WAREHOUSE=str(wh),
               TAOSR1_PYTHON=sys.executable, TAOSR1_REPO=str(REPO), TAOSR1_DAG_RETRIES="0",
               TAOSR1_SPARK_CONF='{"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false", '
                                 '"spark.ui.showConsoleProgress": "false"}')
    env.pop("SPARK_REMOTE", None)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    mig = subprocess.run([str(AIRFLOW_PY), "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert mig.returncode == 0, mig.stdout[-2000:] + mig.stderr[-2000:]
    try:
        proc = subprocess.run([str(AIRFLOW_PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests_airflow"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        (tmp_path / "airflow-tests.log").write_text(out)
        pytest.fail(f"the DAG tests ran past {e.timeout:g} s; last output:\n{out[-3000:]}")
    (tmp_path / "airflow-tests.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "5 passed" in proc.stdout
    _the_loop_left_its_runs_models_and_evaluation(spark, wh)


def _the_loop_left_its_runs_models_and_evaluation(spark, wh):
    """What relevance_training's run (tests_airflow: corpus-world-20261122, 5 SFT steps, 60 evaluated pairs) left."""
    import json

    from taosr1.engines import engine_config
    from taosr1.evaluation.evaluate import metrics_table, split_pairs_with_products, subsample
    from taosr1.inference import PROB_COLS, with_label_probs
    from taosr1.scoring.cumpt import Thresholds, levels
    from taosr1.tracking import tracking_uri
    from tests.helpers import store_at

    mlflow = pytest.importorskip("mlflow")
    store = store_at(spark, wh)
    corpus = "corpus-world-20261122"
    # MLflow: a run per training stage with TRL's final loss and the model's files (the loss curve: test_training's
    # pipeline test); the registry's champion alias on the champion the promotion kept
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(store.root), registry_uri=tracking_uri(store.root))
    by_stage: dict[str, list] = {}
    for r in client.search_runs([client.get_experiment_by_name("taosr1").experiment_id]):
        by_stage.setdefault(r.data.tags["taosr1.stage"], []).append(r)
    assert {s: len(by_stage.get(s, [])) for s in ("train_readout", "train_sft", "train_dpo", "train_grpo")} == \
        {"train_readout": 1, "train_sft": 2, "train_dpo": 1, "train_grpo": 1}  # SFT: post-CoT and think-first
    sft = next(r for r in by_stage["train_sft"] if "-tf-" not in r.data.params.get("taosr1.out", "-tf-"))
    assert sft.info.status == "FINISHED" and "train_loss" in sft.data.metrics
    assert sft.data.params["taosr1.max_steps"] == "5" and sft.data.params["learning_rate"]
    from taosr1.model.registry import champion

    alias = client.get_model_version_by_alias("taosr1-relevance", "champion")
    assert alias.source.endswith(champion(store.root).path.split("/")[-1])
    files = {a.path for a in client.list_artifacts(sft.info.run_id, "model")}
    assert {"model/taosr1_model.json", "model/config.json", "model/model.safetensors"} <= files
    # the read-out's learning curve as an MLflow series (step = examples seen)
    ro = by_stage["train_readout"][0]
    steps = [h.step for h in client.get_metric_history(ro.info.run_id, "curve.dev_macro_f1")]
    assert len(steps) >= 2 and steps == sorted(steps)
    # the evaluation: every system on the same pairs, intervals around the point estimates
    (decided,) = store.read("model_promotions").where("eval_id IS NOT NULL").collect()  # the demo's has none
    eval_id = decided.eval_id
    m = metrics_table(store, eval_id).set_index("system")
    assert {"base", "readout", "lpft", "sft", "sft_think_first", "dpo", "grpo", "chance", "majority",
            "lexical"} <= set(m.index)
    trained = ["readout", "lpft", "sft"]
    assert (m.loc[trained, "macro_f1_low"] <= m.loc[trained, "macro_f1"]).all()
    assert (m.loc[trained, "macro_f1"] <= m.loc[trained, "macro_f1_high"]).all()
    assert (m["n"] == m["n"].iloc[0]).all() and m["n"].iloc[0] > 20
    assert np.isnan(m.loc["lexical", "tier_agreement"])
    # tier agreement of the base model, recomputed outside the evaluation from its label probabilities
    dev = subsample(split_pairs_with_products(store, corpus, "dev"), 60, 13)  # the evaluated pairs
    assert dev.count() == m.loc["base", "n"]
    base = f"{wh}/models/taosr1-builtin"
    out = with_label_probs(dev, engine_config(model_path=base)).select("label", *PROB_COLS).toPandas()
    tiers = lambda lv: np.where(lv >= 3, 2, np.where(lv == 2, 1, 0))  # noqa: E731
    want = np.mean(tiers(levels(out[list(PROB_COLS)].to_numpy(), Thresholds.cum(m.loc["base", "beta_cum"]))) ==
                   tiers(out["label"]))
    assert abs(m.loc["base", "tier_agreement"] - want) < 1e-9
    html = (wh / "reports" / f"{eval_id}.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "macro-F1" in html
    # every model folder carries a card naming its data
    for stage in ("sft", "dpo", "grpo"):
        folder = wh / "models" / f"{stage}-{corpus}"
        card = json.loads((folder / "taosr1_model.json").read_text())
        assert card["stage"] == stage and "v" in card["data"] and (folder / "model.safetensors").exists()
