"""The six model-running stages are one kind (`taosr1.engine_stage.EngineStage`): a broken engine (every row fails)
and a dead one (nothing listening) end the same way in each — the same failed run on record, the same
``engine_error`` quarantine rows with the engine's message, and nothing else published."""

from __future__ import annotations

import re
import shutil
import socket

import pytest
from pyspark.sql import functions as F

from taosr1.engine_stage import EngineStage
from taosr1.errors import EngineUnavailable, ErrorBudgetExceeded
from taosr1.stages import STAGES
from tests.helpers import job, jvm_only, store_at

pytestmark = jvm_only
DAY = "2026-11-19"


@pytest.fixture(scope="module")
def wh(spark, ingested_template, tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-stages") / "warehouse"
    shutil.copytree(ingested_template, root)
    store = store_at(spark, root)
    job(store, "build_sft_corpus", source="world", corpus_id="c-eng", seed=3)
    return store


def _params(stage: str, model: str) -> dict:
    return {
        "score_catalog": dict(ds=DAY),
        "sample_pass_at_n": dict(corpus_id="c-eng", n=2, max_new_tokens=8, max_pairs=24),
        "build_sft_corpus": dict(source="world", corpus_id="c-eng-teacher", teacher="engine", max_new_tokens=8),
        "calibrate_buckets": dict(source="world"),
        "sample_candidates": dict(start=DAY, end=DAY, tagger="engine"),
        "evaluate": dict(corpus_id="c-eng", models={"m": model}, embeddings=False, calibrate_pairs=None,
                         bootstrap_draws=0, max_pairs=30),
    }[stage] | ({} if stage == "evaluate" else {"model": model})


ENGINE_STAGES = ["score_catalog", "sample_pass_at_n", "build_sft_corpus", "calibrate_buckets", "sample_candidates",
                 "evaluate"]


def _versions(store, stage) -> dict:
    return {t: store.version(t) if store.exists(t) else None for t in stage.writes if t != "quarantine"}


def _last_run(store, name):
    return store.read("job_runs").where(F.col("job") == name).orderBy(F.desc("started_at")).first()


def test_every_model_running_stage_is_an_engine_stage():
    running = {name for name in STAGES if isinstance(STAGES[name].load(), EngineStage)}
    assert running == set(ENGINE_STAGES)


@pytest.mark.parametrize("name", ENGINE_STAGES)
def test_a_broken_or_dead_engine_ends_the_same_way_in_every_engine_stage(wh, builtin_model, name):
    stage = STAGES[name].load()
    params = _params(name, builtin_model)  # one engine for all six (calibration fails before it writes beside it)
    before = _versions(wh, stage)

    # broken: every prompt is longer than the engine takes, so every row fails in the engine
    with pytest.raises(ErrorBudgetExceeded, match=r"(\d+) of \1 rows failed in the engine") as err:
        job(wh, name, **params, max_model_len=8)
    n = int(re.search(r"(\d+) of \1 rows failed", str(err.value)).group(1))
    ds = re.search(r"ds (\S+\.failed-\d+)\)", str(err.value)).group(1)
    run = _last_run(wh, name)
    assert run.status == "failed" and "ErrorBudgetExceeded" in run.error
    q = wh.read("quarantine").where((F.col("stage") == name) & (F.col("ds") == ds)).toPandas()
    assert n > 0 and len(q) == n and set(q["reason"]) == {"engine_error"}
    assert q["detail"].str.contains("max_model_len").all() and q["record_key"].notna().all()
    assert _versions(wh, stage) == before  # nothing else published

    # dead: nothing listens where the engine should be, so the run fails at once, no row is bisected
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    n_quarantine = wh.read("quarantine").count()
    with pytest.raises(EngineUnavailable):
        job(wh, name, **params, engine="openai", base_url=dead)
    run = _last_run(wh, name)
    assert run.status == "failed" and "EngineUnavailable" in run.error
    assert wh.read("quarantine").count() == n_quarantine and _versions(wh, stage) == before
