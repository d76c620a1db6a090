"""Faults never cost a good table: a dead or broken engine, a corrupted model, hostile log rows, a resumed run
with other settings, debris of killed runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from taosr1.errors import ErrorBudgetExceeded, InputError, ModelIdentityError
from taosr1.ingest.logs import ingest_logs
from taosr1.model.loading import stamp_identity
from tests.helpers import job, jvm_only, store_at

pytestmark = jvm_only
DAY = "2026-11-19"


class _Answers400(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that lists a model and answers 400 to every completion."""

    def do_GET(self):  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(400, {"error": {"message": "engine is broken", "type": "invalid_request_error"}})

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers400)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _day(store):
    return store.read("relevance_scores").where(F.col("ds") == DAY).toPandas().sort_values(
        ["query_id", "product_id"]).reset_index(drop=True)


def _last_run(store, job_name):
    return store.read("job_runs").where(F.col("job") == job_name).orderBy(F.desc("started_at")).first()


def test_a_dead_engine_never_replaces_a_good_day(ingested, builtin_model, broken_server):
    good = job(ingested, "score_catalog", ds=DAY, engine="rules")
    version, before = ingested.version("relevance_scores"), _day(ingested)
    with pytest.raises(ErrorBudgetExceeded, match=r"(\d+) of \1 rows failed"):
        job(ingested, "score_catalog", ds=DAY, engine="openai", base_url=broken_server, served_model="m",
            model=builtin_model)
    assert ingested.version("relevance_scores") == version and _day(ingested).equals(before)
    assert len(before) == good.counts.kept
    run = _last_run(ingested, "score_catalog")
    assert run.status == "failed" and "ErrorBudgetExceeded" in run.error
    # nothing listening at all (fatal at once, not bisected): tests/test_engine_stages.py, for every engine stage


def test_nan_outputs_are_row_errors_and_spend_the_budget(ingested, builtin_model, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-model"
    shutil.copytree(builtin_model, broken)
    weights = load_file(broken / "model.safetensors")
    norm = next(k for k in weights if k.endswith("norm.weight"))
    weights[norm] = torch.full_like(weights[norm], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    stamp_identity(broken)  # a deliberate change, re-stamped: only the outputs are wrong
    with pytest.raises(ErrorBudgetExceeded):
        job(ingested, "score_catalog", ds=DAY, model=str(broken))
    assert not ingested.exists("relevance_scores")


def test_a_corrupted_model_copy_is_refused(ingested, builtin_model, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(builtin_model, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # far past the header and the first MiB
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIdentityError, match="do not match the identity"):
        job(ingested, "score_catalog", ds=DAY, model=str(copy))
    assert _last_run(ingested, "score_catalog").status == "failed"


def test_pass_at_n_resume_refuses_changed_settings(spark, tmp_path):
    store = store_at(spark, tmp_path / "wh")
    job(store, "load_labels", source="world")
    job(store, "build_sft_corpus", source="world", corpus_id="c")
    first = job(store, "sample_pass_at_n", corpus_id="c", run_id="r", engine="rules", n=2, chunks=4, max_chunks=1,
                balanced_only=True)
    assert first.counts.filtered["not_sampled_yet"] > 0
    with pytest.raises(InputError, match=r"n: 2 -> 3"):
        job(store, "sample_pass_at_n", corpus_id="c", run_id="r", engine="rules", n=3, chunks=4, balanced_only=True)
    with pytest.raises(InputError, match="chunks: 4 -> 5"):
        job(store, "sample_pass_at_n", corpus_id="c", run_id="r", engine="rules", n=2, chunks=5, balanced_only=True)
    done = job(store, "sample_pass_at_n", corpus_id="c", run_id="r", engine="rules", n=2, chunks=4,
               balanced_only=True)
    assert done.counts.filtered["not_sampled_yet"] == 0
    # every attempt has one row, closed with its outcome
    runs = store.read("job_runs").where(F.col("job") == "sample_pass_at_n").collect()
    assert sorted(r.status for r in runs) == ["failed", "failed", "succeeded", "succeeded"]


def test_vacuum_lists_then_deletes_only_what_no_version_needs(spark, ingested, tmp_path):
    from taosr1.cli import app
    from click.testing import CliRunner

    store = ingested
    job(store, "score_catalog", ds=DAY, engine="rules")
    job(store, "score_catalog", ds=DAY, engine="rules")  # the first run's files are now replaced
    table = store.path("relevance_scores")
    part = next(p for p in os.listdir(table) if p.startswith("ds="))
    stray = os.path.join(table, part, "part-killed-run.parquet")  # moved in by a killed run, never committed
    shutil.copy(next(os.path.join(table, part, f) for f in os.listdir(os.path.join(table, part))), stray)
    os.makedirs(os.path.join(table, "_staging", "txn-dead", part))
    open(os.path.join(table, "_staging", "txn-dead", part, "x.parquet"), "w").write("x")
    old = time.time() - 30 * 24 * 3600
    for root, dirs, files in os.walk(table):
        for name in dirs + files:
            if "_delta_log" not in root and name != "_delta_log":
                os.utime(os.path.join(root, name), (old, old))
    rows = store.read("relevance_scores").count()
    res = CliRunner().invoke(app, ["vacuum", "--warehouse", store.settings.warehouse])
    assert res.exit_code == 0 and "run again with --apply to delete them" in res.output, res.output
    assert os.path.exists(stray)
    rep = job(store, "vacuum", apply=True)
    found = rep.info["found"]["relevance_scores"]
    assert stray in found and any(p.endswith("txn-dead/") for p in found) and len(found) >= 3
    assert not os.path.exists(stray) and not os.path.exists(os.path.join(table, "_staging", "txn-dead"))
    assert store.read("relevance_scores").count() == rows  # the current version is untouched
    assert DeltaTable(table).to_pyarrow_table().num_rows == rows



def test_vacuum_beside_a_live_writer_loses_nothing(spark, ingested, tmp_path):
    """Retention 0 needs its flag; a live writer's staging folder and the files it moved in before its commit stay;
    a dead writer's go."""
    import subprocess

    from taosr1.io.liveness import driver_id

    store = ingested
    job(store, "score_catalog", ds=DAY, engine="rules")
    with pytest.raises(ValueError, match="unsafe-retention"):
        job(store, "vacuum", apply=True, retention_hours=0)
    table = store.path("relevance_scores")
    part = next(p for p in os.listdir(table) if p.startswith("ds="))
    gone = subprocess.Popen(["true"])
    gone.wait()
    made = {}
    for write_id, owner in (("w-live", driver_id()), ("w-dead", f"{socket.gethostname()}:{gone.pid}")):
        os.makedirs(os.path.join(table, "_staging", write_id, part))
        open(os.path.join(table, "_staging", write_id, part, "part-0.parquet"), "w").write("x")
        open(os.path.join(table, "_staging", f"{write_id}.owner"), "w").write(owner)
        moved = os.path.join(table, part, f"part-{write_id}-00000.parquet")  # moved in, its commit still to come
        shutil.copy(next(os.path.join(table, part, f) for f in os.listdir(os.path.join(table, part))), moved)
        made[write_id] = moved
    rows = store.read("relevance_scores").count()
    rep = job(store, "vacuum", apply=True, retention_hours=0, unsafe_retention=True)
    assert os.path.exists(made["w-live"]) and os.path.isdir(os.path.join(table, "_staging", "w-live"))
    assert os.path.exists(os.path.join(table, "_staging", "w-live.owner"))
    assert not os.path.exists(made["w-dead"]) and not os.path.exists(os.path.join(table, "_staging", "w-dead"))
    assert not os.path.exists(os.path.join(table, "_staging", "w-dead.owner"))
    assert made["w-dead"] in rep.info["found"]["relevance_scores"]
    assert store.read("relevance_scores").count() == rows


@pytest.mark.slow
def test_a_killed_run_with_a_random_run_id_is_repaired_by_the_next_run_of_its_stage(ingested):
    """Stages keyed by a random run id (promote, load-labels, vacuum) are never rerun under the same key: the next
    run of the stage closes the dead ``running`` row as failed, naming what it had committed."""
    import subprocess
    import sys

    from tests.helpers import REPO

    store = ingested
    env = dict(os.environ, TAOSR1_CRASH_AFTER_COMMIT="1", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("SPARK_REMOTE", None)
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "vacuum.py"), "--warehouse", store.settings.warehouse],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stdout[-2000:] + proc.stderr[-2000:]
    dead = store.read("job_runs").where("job = 'vacuum' AND status = 'running'").collect()
    assert len(dead) == 1
    rep = job(store, "vacuum")
    assert rep.info["repaired"] == [{"run_id": dead[0].run_id, "committed": [], "same_key": False}]
    runs = store.read("job_runs").where("job = 'vacuum'").toPandas().set_index("run_id")
    assert (runs["status"] != "running").all() and "is gone" in runs.loc[dead[0].run_id, "error"]

@pytest.mark.slow
def test_a_load_killed_between_its_two_commits_is_completed_by_the_next_load(spark, tmp_path):
    """load-labels commits products, then the labels: killed in between (exit 137 right after the products), the
    next load of any source commits the labels the dead run had staged, so products and labels are one run's."""
    import subprocess
    import sys

    from taosr1.data.sources import load_source
    from tests.helpers import REPO

    store = store_at(spark, tmp_path / "wh")
    job(store, "load_labels", source="world")
    env = dict(os.environ, TAOSR1_CRASH_AFTER_COMMIT="2", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)  # commit 1: its job_runs row; 2: products
    env.pop("SPARK_REMOTE", None)
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "load_labels.py"), "--source", "world", "--seed", "99",
                           "--warehouse", store.settings.warehouse], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 137, proc.stdout[-2000:] + proc.stderr[-2000:]
    products, labels = load_source("world", seed=99)

    def world(table):
        return store.read(table).where(F.col("source") == "world").toPandas()

    assert sorted(world("products")["title"]) == sorted(products["title"])  # the dead run's products, old labels
    dead = store.read("job_runs").where("job = 'load_labels' AND status = 'running'").collect()
    assert len(dead) == 1
    rep = job(store, "load_labels", source="world", name="other")
    assert rep.info["repaired"] == [{"run_id": dead[0].run_id, "committed": ["products"], "same_key": False,
                                     "rolled_forward": ["query_product_labels"]}]
    got = world("query_product_labels")
    assert sorted(zip(got["query"], got["product_id"], got["label"])) == sorted(
        zip(labels["query"], labels["product_id"], labels["label"]))
    assert set(got["product_id"]) <= set(world("products")["product_id"])
    runs = store.read("job_runs").where("job = 'load_labels'").toPandas().set_index("run_id")
    assert (runs["status"] != "running").all() and "tables are whole" in runs.loc[dead[0].run_id, "error"]
    assert not list((tmp_path / "wh" / "_staging").rglob("*.json"))


HOSTILE = {
    "object_in_product_id": '{"event_id": "e1", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                            '"session_id": "s", "query": "drill", "product_id": {"a": 1}, "position": 1}',
    "array_in_query": '{"event_id": "e2", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                      '"session_id": "s", "query": ["a", "b"], "product_id": "P1", "position": 1}',
    "nul_in_product_id": '{"event_id": "e3", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                         '"session_id": "s", "query": "drill", "product_id": "P\\u00001", "position": 1}',
    "huge_query": '{"event_id": "e4", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                  '"session_id": "s", "query": "' + "x" * 600_000 + '", "product_id": "P1", "position": 1}',
    "conflict_a": '{"event_id": "e5", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                  '"session_id": "s", "query": "drill", "product_id": "P1", "position": 1}',
    "conflict_b": '{"event_id": "e5", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                  '"session_id": "s", "query": "drill", "product_id": "P2", "position": 1}',
    "repeat_a": '{"event_id": "e6", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                '"session_id": "s", "query": "a\\u0007 drill", "product_id": "P1", "position": 1}',
    "repeat_b": '{"event_id": "e6", "event_type": "impression", "ts": "2026-11-19T10:00:00Z", '
                '"session_id": "s", "query": "a\\u0007 drill", "product_id": "P1", "position": 1}',
}


def _write_day(folder, lines: list[bytes]):
    day = folder / f"ds={DAY}"
    day.mkdir(parents=True, exist_ok=True)
    (day / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_strict_silver_quarantines_hostile_rows_with_reasons(spark, tmp_path):
    store = store_at(spark, tmp_path / "wh")
    lines = [v.encode() for v in HOSTILE.values()] + [b'{"event_id": "e7", "query": "caf\xe9 \xff"}']
    _write_day(tmp_path / "raw", lines)
    (rep,) = ingest_logs(store, str(tmp_path / "raw"), DAY, gate=False)
    c = rep.counts
    assert (c.rows_in, c.kept, c.quarantined, c.filtered["duplicate"]) == (9, 1, 7, 1)
    q = store.read("quarantine").toPandas().set_index("record_key")
    assert q.loc["e1", "reason"] == "wrong_type:product_id" and q.loc["e2", "reason"] == "wrong_type:query"
    assert q.loc["e3", "reason"] == "control_characters:product_id" and q.loc["e4", "reason"] == "too_long:query"
    assert list(q.loc["e5", "reason"]) == ["conflicting_duplicate"] * 2
    undecodable = q[q["reason"] == "undecodable_bytes"]
    assert len(undecodable) == 1 and undecodable["raw"].iloc[0].startswith("base64:")
    silver = store.read("search_log").toPandas()
    assert silver["query"].tolist() == ["a drill"]  # a control character is cleaned by rule in free text
    for table in ("search_log_bronze", "quarantine", "search_log"):  # every reader can read every row
        DeltaTable(store.path(table)).to_pandas()


_scalar = st.one_of(st.text(max_size=12), st.integers(-5, 20), st.none(), st.booleans(),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def hostile_rows(draw):
    rows = []
    for i in range(draw(st.integers(1, 12))):
        rec = {"event_id": draw(st.sampled_from([f"e{i}", "e0", f"e{i % 3}"])),
               "event_type": draw(st.sampled_from(["impression", "click", "hover"])),
               "ts": draw(st.sampled_from(["2026-11-19T10:00:00Z", "2026-11-20T10:00:00Z", "bad"])),
               "session_id": draw(_scalar), "query": draw(st.one_of(st.text(max_size=30), _scalar)),
               "product_id": draw(_scalar), "position": draw(_scalar)}
        line = json.dumps(rec).encode()
        rows.append(draw(st.sampled_from([line, line[: len(line) // 2], line + b"\xfe", line])))
    return rows


@hsettings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=hostile_rows())
def test_a_fuzzed_day_keeps_every_row_accounted_for(spark, tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("fuzz")
    store = store_at(spark, root / "wh")
    _write_day(root / "raw", rows)
    (rep,) = ingest_logs(store, str(root / "raw"), DAY, gate=False)
    c = rep.counts
    assert c.adds_up() and c.rows_in == len(rows)
    assert DeltaTable(store.path("search_log_bronze")).to_pyarrow_table().num_rows == len(rows)
    if store.exists("search_log"):
        silver = DeltaTable(store.path("search_log")).to_pandas()
        assert silver["event_id"].is_unique


def test_two_writers_of_one_day_end_with_one_complete_day(spark, tmp_path):
    """Both replace the same partition at the same moment: the table ends with one writer's rows, never a mix;
    the other fails cleanly (a commit conflict) or commits after it."""
    import datetime as dt

    store = store_at(spark, tmp_path / "wh")

    def rows(tag: str, n: int):
        data = [(DAY, f"file-{tag}", i, f'{{"w": "{tag}"}}', f"run-{tag}") for i in range(n)]
        return (spark.createDataFrame(data, "ds string, source_file string, source_row long, raw string, "
                                            "ingest_run_id string")
                .withColumn("ingested_at", F.lit(dt.datetime(2026, 11, 21)).cast("timestamp")))

    store.write("search_log_bronze", rows("seed", 2), "overwrite", replace={"ds": DAY})
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def writer(tag: str, n: int) -> None:
        df = rows(tag, n)
        barrier.wait()
        try:
            outcome[tag] = store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY}).version
        except Exception as e:  # noqa: BLE001 - a clean conflict is an allowed outcome
            outcome[tag] = e

    threads = [threading.Thread(target=writer, args=(t, n)) for t, n in (("a", 5), ("b", 7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    day = store.read("search_log_bronze").where(F.col("ds") == DAY).toPandas()
    writers = set(day["ingest_run_id"])
    assert len(writers) == 1 and len(day) == {"run-a": 5, "run-b": 7}[writers.pop()], outcome
    assert any(isinstance(v, int) for v in outcome.values())


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", [2])  # between two data commits; after commit 1: the random-run-id test
def test_a_kill_after_each_commit_point_is_repaired_by_the_next_run(ingested, crash_after):
    """Scoring commits: job_runs 'running' (1), relevance_scores (2), quarantine (3), then closes its row. The
    process dies (exit 137, as kill -9) right after commit N; the next run of the day names what the dead run had
    committed, closes its row as failed, and leaves scores, quarantine and job_runs from one run again."""
    import subprocess
    import sys

    from tests.helpers import REPO

    store = ingested
    job(store, "score_catalog", ds=DAY, engine="rules")
    env = dict(os.environ, TAOSR1_CRASH_AFTER_COMMIT=str(crash_after), PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("SPARK_REMOTE", None)
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "score_catalog.py"), "--ds", DAY, "--engine", "rules",
                           "--warehouse", store.settings.warehouse], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 137, proc.stdout[-2000:] + proc.stderr[-2000:]
    dead = store.read("job_runs").where("job = 'score_catalog' AND status = 'running'").collect()
    assert len(dead) == 1
    scores_runs = set(_day(store)["run_id"])
    assert scores_runs == ({dead[0].run_id} if crash_after >= 2 else scores_runs - {dead[0].run_id})
    rep = job(store, "score_catalog", ds=DAY, engine="rules")
    want = ["relevance_scores", "quarantine"][:max(0, crash_after - 1)]
    assert rep.info["repaired"] == [{"run_id": dead[0].run_id, "committed": want, "same_key": True}]
    runs = store.read("job_runs").where("job = 'score_catalog'").toPandas().set_index("run_id")
    assert (runs["status"] != "running").all()
    assert runs.loc[dead[0].run_id, "status"] == "failed"
    assert f"committed {', '.join(want) or 'nothing'}" in runs.loc[dead[0].run_id, "error"]
    assert set(_day(store)["run_id"]) == {rep.run_id}
    q = store.read("quarantine").where((F.col("stage") == "score_catalog") & (F.col("ds") == DAY)).toPandas()
    assert set(q["run_id"]) <= {rep.run_id} and rep.counts.adds_up()
    assert rep.counts.rows_in == rep.counts.kept + len(q) + sum(rep.counts.filtered.values())


def test_app_transactions_skip_a_repeated_or_stale_commit_and_stop_a_stale_run(spark, tmp_path):
    from taosr1.errors import StaleRun
    from taosr1.io.tables import Txn
    from taosr1.job import Context, Report

    store = store_at(spark, tmp_path / "wh")
    df = spark.createDataFrame([(DAY, "f", 0, "{}", "r")], "ds string, source_file string, source_row long, "
                               "raw string, ingest_run_id string").withColumn("ingested_at", F.current_timestamp())
    first = store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY}, txn=Txn("app", 5))
    assert not first.skipped and store.delta("search_log_bronze").transaction_version("app") == 5
    assert store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY}, txn=Txn("app", 5)).skipped
    assert store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY}, txn=Txn("app", 4)).skipped
    assert store.version("search_log_bronze") == first.version
    assert not store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY}, txn=Txn("app", 6)).skipped
    # inside a stage: an older run whose key a newer run already committed stops without publishing
    ctx = Context(spark, store, Report("ingest_logs", "old", DAY), ("search_log_bronze",), txn_version=1)
    store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY},
                txn=Txn("taosr1/ingest_logs/2026-11-19/search_log_bronze#1", 10))
    with pytest.raises(StaleRun, match="a newer run of 2026-11-19 committed 'search_log_bronze' first"):
        ctx.write("search_log_bronze", df, "overwrite", replace={"ds": DAY})


def test_every_write_clears_what_dead_writers_left(spark, tmp_path):
    import subprocess

    store = store_at(spark, tmp_path / "wh")
    df = spark.createDataFrame([(DAY, "f", 0, "{}", "r")], "ds string, source_file string, source_row long, "
                               "raw string, ingest_run_id string").withColumn("ingested_at", F.current_timestamp())
    store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY})
    table = store.path("search_log_bronze")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    txn = "20261130T000000-deadbeef0000"
    os.makedirs(f"{table}/_staging/{txn}/ds={DAY}")
    open(f"{table}/_staging/{txn}/ds={DAY}/part-0.parquet", "wb").close()
    with open(f"{table}/_staging/{txn}.owner", "w") as f:
        f.write(f"{socket.gethostname()}:{gone.pid}")
    stray = f"{table}/ds={DAY}/part-{txn}-00000.parquet"  # moved in, never committed
    shutil.copy(next(p for p in (f"{table}/ds={DAY}/{n}" for n in os.listdir(f"{table}/ds={DAY}"))), stray)
    alive_txn = "20261130T000001-aaaaaaaa0000"  # a writer that still runs (this process) keeps its staging
    os.makedirs(f"{table}/_staging/{alive_txn}")
    with open(f"{table}/_staging/{alive_txn}.owner", "w") as f:
        f.write(f"{socket.gethostname()}:{os.getpid()}")
    store.write("search_log_bronze", df, "overwrite", replace={"ds": DAY})
    assert not os.path.exists(stray) and not os.path.exists(f"{table}/_staging/{txn}")
    assert not os.path.exists(f"{table}/_staging/{txn}.owner")
    assert os.path.exists(f"{table}/_staging/{alive_txn}")
    assert store.read("search_log_bronze").count() == 1
