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
from tests.helpers import REPO, jvm_only

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


@pytest.fixture
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
@jvm_only
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


def _submit(url, env, job, args, delay_s: float):
    """spark-submit a job to the cluster with small Arrow batches, each slowed by ``delay_s`` on the executors."""
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", url, "--conf", "spark.executor.memory=768m",
           "--conf", "spark.sql.shuffle.partitions=4", "--conf", "spark.ui.showConsoleProgress=false",
           "--conf", "spark.sql.execution.arrow.maxRecordsPerBatch=4",
           "--conf", f"spark.executorEnv.TAOSR1_FAULT_BATCH_DELAY_S={delay_s}",
           "--conf", f"spark.executorEnv.PYSPARK_PYTHON={sys.executable}",
           str(REPO / "jobs" / f"{job}.py"), *args]
    return subprocess.Popen(cmd, env=dict(env, PYSPARK_DRIVER_PYTHON=sys.executable), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_a_busy_worker(env, marker: str, timeout: float = 240) -> str:
    """Wait until an executor has logged ``marker`` (the engine is working), then SIGKILL that executor and the
    worker that launched it: a machine lost mid-stage. Returns the killed executor's id."""
    import signal

    work = Path(env["SPARK_WORKER_DIR"])
    deadline = time.time() + timeout
    while time.time() < deadline:
        for stderr in work.glob("app-*/*/stderr"):
            if marker in stderr.read_text(errors="replace"):
                exec_id = stderr.parent.name
                for pid in os.listdir("/proc"):
                    if not pid.isdigit():
                        continue
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if b"org.apache.spark.executor.CoarseGrainedExecutorBackend" in cmd and \
                            cmd[cmd.index(b"--executor-id") + 1].decode() == exec_id:
                        worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                        os.kill(int(pid), signal.SIGKILL)
                        os.kill(worker, signal.SIGKILL)
                        return exec_id
        time.sleep(0.5)
    raise TimeoutError(f"no executor logged {marker!r}")


@pytest.mark.slow
@jvm_only
def test_a_worker_killed_mid_stage_still_yields_every_row_once(standalone, ingested, builtin_model):
    """A worker and its executor are killed while the engine samples (pass@N, the engine glue nightly scoring uses
    too): Spark reruns the lost tasks on the other worker, and the committed table has every sample exactly once."""
    url, env = standalone
    store = ingested
    wh = store.settings.warehouse
    from tests.helpers import job

    job(store, "build_sft_corpus", source="world", corpus_id="c1", teacher="template")
    proc = _submit(url, env, "sample_pass_at_n", ["--corpus-id", "c1", "--run-id", "r1", "--model", builtin_model,
                                                  "--n", "2", "--max-new-tokens", "8", "--chunks", "1",
                                                  "--max-pairs", "48", "--batch-size", "4", "--warehouse", wh],
                   delay_s=0.5)
    try:
        killed = _kill_a_busy_worker(env, "sample.batch")
        out, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert f"Lost executor {killed}" in out  # the driver saw the loss and reran its tasks elsewhere
    from pyspark.sql import functions as F

    samples = store.read("pass_at_n_samples").where(F.col("run_id") == "r1").toPandas()
    per_pair = samples.groupby(["query_id", "product_id"]).size()
    assert len(per_pair) > 0 and (per_pair == 2).all()
    assert not samples.duplicated(["query_id", "product_id", "sample_idx"]).any()
