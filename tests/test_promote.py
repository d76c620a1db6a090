"""The champion/challenger gate: decisions on one evaluation's rows, the champion as the default model, MLflow's
registered version and alias, and the day an asset-triggered nightly run scores."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from taosr1.schedule import day_of_run
from tests.helpers import job, jvm_only, store_at



@jvm_only
def test_challenger_promoted_only_when_it_wins_on_the_same_pairs(spark, tmp_path, builtin_model, world, monkeypatch):
    from pyspark.sql import functions as F

    from taosr1.errors import InputError
    from taosr1.job import EngineParams
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.model.loading import model_version
    from taosr1.model.registry import champion, default_model

    store = store_at(spark, tmp_path / "wh")
    root = store.root
    job(store, "load_labels", source="world")
    assert champion(root) is None and default_model(root).endswith("models/taosr1-builtin")
    ev = dict(source="world", train_source="world", max_pairs=40, embeddings=False, calibrate_pairs=None,
              bootstrap_draws=200)  # the gate reads macro-F1 and NDCG@10; calibration is tested elsewhere
    job(store, "evaluate", models={"first": builtin_model}, champion=True, **ev)
    rep = job(store, "promote_model", challenger=builtin_model)
    assert rep.info["promoted"] and rep.info["reason"].startswith("no champion yet")
    first = champion(root)
    assert first.version == model_version(builtin_model) and default_model(root) == first.path
    assert EngineParams().engine_config(root).model_path == first.path  # scoring's default is the champion

    other = str(build_builtin_model(catalog_texts(*world), tmp_path / "other", BuiltinConfig(warmup_steps=5, seed=7)))
    with pytest.raises(InputError, match="no evaluation scored the challenger"):
        job(store, "promote_model", challenger=other)
    job(store, "evaluate", models={"other": other}, **ev)  # without the champion beside it
    with pytest.raises(InputError, match="did not score the champion"):
        job(store, "promote_model", challenger=other)
    e = job(store, "evaluate", models={"other": other}, champion=True, **ev)
    systems = {r.system for r in store.read("eval_metrics").where(F.col("eval_id") == e.run_id).collect()}
    assert {"other", "champion"} <= systems
    lost = job(store, "promote_model", challenger=other, min_gain_macro_f1=1.0)
    assert not lost.info["promoted"] and lost.info["reason"].startswith("kept the champion: macro-F1")
    assert champion(root) == first
    won = job(store, "promote_model", challenger=other, min_gain_macro_f1=-1.0, min_gain_ndcg_10=-1.0)
    assert won.info["promoted"] and champion(root).version == model_version(other)
    rows = store.read("model_promotions").orderBy("decided_at").toPandas()
    assert list(rows["promoted"]) == [True, False, True] and rows["eval_id"].iloc[-1] == e.run_id
    assert rows["champion_version"].iloc[-1] == first.version
    assert rows["challenger_macro_f1"].notna().all() and rows["champion_macro_f1"].iloc[1:].notna().all()

    mlflow = pytest.importorskip("mlflow")
    from taosr1.tracking import tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(root), registry_uri=tracking_uri(root))
    alias = client.get_model_version_by_alias("taosr1-relevance", "champion")
    assert str(alias.version) == "2" and alias.tags["content_version"] == model_version(other)
    assert str(alias.version) == rows["mlflow_version"].iloc[-1]
    exp = client.get_experiment_by_name("taosr1")
    runs = client.search_runs([exp.experiment_id])
    stages = sorted(r.data.tags["taosr1.stage"] for r in runs)
    assert stages.count("evaluate") == 3 and stages.count("promote_model") == 5  # failed attempts included
    evaluated = [r for r in runs if r.info.run_name == e.run_id][0]
    assert evaluated.data.metrics["other.macro_f1"] >= 0 and "champion.ndcg_10" in evaluated.data.metrics
    arts = {a.path for a in client.list_artifacts(evaluated.info.run_id)}
    assert {"eval_metrics.csv", f"{e.run_id}.html"} <= arts

    # two promotions that decided against the same champion, finishing together: one champion, one refusal
    import threading

    third = str(build_builtin_model(catalog_texts(*world), tmp_path / "third", BuiltinConfig(warmup_steps=5, seed=11)))
    job(store, "evaluate", models={"first": builtin_model, "third": third}, champion=True, **ev)
    before = champion(root)
    out: dict = {}
    import taosr1.evaluation.promote as pm

    barrier, read = threading.Barrier(2, timeout=120), pm.read_champion

    def read_together(*a):  # both runs read the champion before either commits: the race, every time
        got = read(*a)
        barrier.wait()
        return got

    monkeypatch.setattr(pm, "read_champion", read_together)

    def promote(name: str, path: str) -> None:
        try:
            out[name] = job(store, "promote_model", challenger=path, min_gain_macro_f1=-1.0, min_gain_ndcg_10=-1.0)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            out[name] = e

    threads = [threading.Thread(target=promote, args=a) for a in (("a", builtin_model), ("b", third))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert all(not isinstance(v, BaseException) for v in out.values()), out
    won = [k for k, v in out.items() if v.info["promoted"]]
    assert len(won) == 1, {k: v.info["reason"] for k, v in out.items()}
    loser = out[({"a", "b"} - set(won)).pop()]
    assert loser.info["reason"].startswith("refused: another promotion")
    now = champion(root)
    assert now.version != before.version and now.version == model_version({"a": builtin_model, "b": third}[won[0]])
    runs = store.read("job_runs").where(F.col("job") == "promote_model").toPandas()
    assert not (runs["status"] == "running").any()
    if mlflow is not None:
        alias = client.get_model_version_by_alias("taosr1-relevance", "champion")
        assert alias.tags["content_version"] == now.version

def test_the_day_of_a_run_comes_from_the_asset_event_else_the_clock():
    ev = lambda ds, minute: SimpleNamespace(extra={"ds": ds}, timestamp=dt.datetime(2026, 11, 20, 3, minute))  # noqa: E731
    assert day_of_run("2026-11-18", {"logs": [ev("2026-11-19", 1), ev("2026-11-20", 2)]}) == "2026-11-20"
    assert day_of_run("2026-11-18", {}) == "2026-11-18"
    assert day_of_run("2026-11-18", {"logs": [SimpleNamespace(extra={}, timestamp=None)]}) == "2026-11-18"
    with pytest.raises(ValueError, match="names no day"):
        day_of_run(None, None)
    with pytest.raises(ValueError):
        day_of_run(None, {"logs": [ev("19/11/2026", 1)]})
