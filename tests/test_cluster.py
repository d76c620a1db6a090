"""The cluster half: a real Spark standalone master and two workers on loopback, and the ingest job submitted to
them with ``spark-submit --master spark://...``, exactly as on a cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest
from deltalake import DeltaTable

from taosr1.data.logsim import SimConfig, simulate_logs
from tests.conftest import BACKEND, REPO

SPARK_HOME = Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    logs = tmp_path_factory.mktemp("cluster-logs")
    env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               SPARK_LOG_DIR=str(logs), SPARK_WORKER_DIR=str(logs / "work"))
    port, ui = _free_port(), _free_port()
    cls = str(SPARK_HOME / "bin" / "spark-class")
    procs = [subprocess.Popen([cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                               str(port), "--webui-port", str(ui)], env=env, stdout=open(logs / "master.log", "w"),
                              stderr=subprocess.STDOUT)]
    try:
        _wait_port(port)
        url = f"spark://127.0.0.1:{port}"
        for i in range(2):
            procs.append(subprocess.Popen([cls, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                           "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()), url],
                                          env=env, stdout=open(logs / f"worker{i}.log", "w"),
                                          stderr=subprocess.STDOUT))
        deadline = time.time() + 60
        while time.time() < deadline:  # both workers registered?
            text = (logs / "master.log").read_text()
            if text.count("Registering worker") >= 2:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError("workers did not register:\n" + (logs / "master.log").read_text()[-2000:])
        yield url, env
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "delta-rs", reason="spark-submit runs the JVM path")
def test_ingest_job_on_a_standalone_cluster(standalone, tmp_path, world):
    url, env = standalone
    raw = tmp_path / "raw"
    manifest = simulate_logs(*world, raw, SimConfig(days=1, sessions_per_day=80, seed=3))
    wh = tmp_path / "wh"
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", url, "--conf", "spark.executor.memory=768m",
           "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.showConsoleProgress=false",
           str(REPO / "jobs" / "ingest_logs.py"), "--input", str(raw), "--ds", "2026-11-19", "--warehouse", str(wh)]
    proc = subprocess.run(cmd, env=dict(env, PYSPARK_DRIVER_PYTHON=sys.executable), cwd=REPO,
                          capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    day = manifest["days"][0]
    silver = DeltaTable(str(wh / "silver" / "search_log")).to_pyarrow_table()
    assert silver.num_rows == day["valid_events"]
    assert "2026-11-19" in proc.stdout and "yes" in proc.stdout
    # the work ran on the cluster's executors, not in the driver
    assert "app-" in "".join(p.name for p in (Path(env["SPARK_WORKER_DIR"])).iterdir())
