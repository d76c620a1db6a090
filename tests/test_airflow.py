"""The DAGs in a real Airflow 3.3, from its own venv (Airflow's pins and vLLM's do not share one environment):
DagBag import, task graphs, and ``dag.test()`` of nightly_scoring for one day of the bundled logs on local Spark."""

from __future__ import annotations

import os
import subprocess
import sys

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
