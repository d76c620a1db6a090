"""The ``taosr1`` command as a user types it (in-process, sharing the test session's Spark)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from taosr1.cli import app
from tests.conftest import BACKEND

runner = CliRunner()


@pytest.mark.skipif(BACKEND != "delta-rs", reason="CLI runs the embedded default")
def test_demo_runs_the_main_job(spark, tmp_path):
    wh = str(tmp_path / "wh")
    res = runner.invoke(app, ["demo", "--warehouse", wh, "--days", "2"])
    assert res.exit_code == 0, res.output
    assert "search-log ingest" in res.output and "2026-11-20" in res.output
    assert "NO" not in res.output
    res = runner.invoke(app, ["tables", "--warehouse", wh])
    assert res.exit_code == 0 and "search_log" in res.output and "quarantine" in res.output


def test_ingest_requires_a_day(spark, tmp_path):
    res = runner.invoke(app, ["ingest", "--input", str(tmp_path), "--warehouse", str(tmp_path / "wh")])
    assert res.exit_code == 2 and "--ds" in res.output


def test_load_labels_homedepot(spark, tmp_path, homedepot):
    res = runner.invoke(app, ["load-labels", "--source", "homedepot", "--warehouse", str(tmp_path / "wh"),
                              "--backend", BACKEND])
    assert res.exit_code == 0, res.output
    assert "18935 rows" in res.output


def test_unknown_source_is_a_clear_error(spark, tmp_path):
    res = runner.invoke(app, ["load-labels", "--source", "esci", "--warehouse", str(tmp_path / "wh")])
    assert res.exit_code == 2 and "unknown source 'esci'" in res.output


@pytest.mark.skipif(BACKEND != "delta-rs", reason="CLI runs the embedded default")
def test_corpus_jobs_in_sequence_from_the_cli(spark, tmp_path, builtin_model):
    wh = str(tmp_path / "wh")
    assert runner.invoke(app, ["load-labels", "--warehouse", wh]).exit_code == 0
    res = runner.invoke(app, ["corpus", "sft", "--corpus-id", "cli", "--warehouse", wh])
    assert res.exit_code == 0 and "corpus cli" in res.output, res.output
    res = runner.invoke(app, ["corpus", "pass-at-n", "--corpus-id", "cli", "--run-id", "cli-run", "--n", "2",
                              "--max-new-tokens", "6", "--chunks", "2", "--balanced-only", "--model", builtin_model,
                              "--warehouse", wh])
    assert res.exit_code == 0 and "pass@2 run cli-run" in res.output, res.output
    res = runner.invoke(app, ["corpus", "dpo", "--run-id", "cli-run", "--warehouse", wh])
    assert res.exit_code == 0 and "dpo pairs" in res.output, res.output
    res = runner.invoke(app, ["corpus", "difficulty", "--run-id", "cli-run", "--warehouse", wh])
    assert res.exit_code == 0 and "difficulty" in res.output, res.output
