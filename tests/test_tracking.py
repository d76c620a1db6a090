"""A tracking server that does not answer costs a job seconds: one probe, one warning, tracking off for the run."""

from __future__ import annotations

import logging
import socket
import time

import pytest

pytest.importorskip("mlflow")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_dead_tracking_server_costs_seconds_and_one_warning(tmp_path, monkeypatch):
    from taosr1 import tracking

    seen = _Records()
    logging.getLogger("taosr1.tracking").addHandler(seen)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(tracking, "_PROBED", {})
    t = time.time()
    for stage in ("evaluate", "promote_model"):  # a job with two tracked steps probes once
        with tracking.stage_run(str(tmp_path), stage, "r1", {"a": 1}) as tracker:
            assert tracker is None
    assert tracking.register_champion(str(tmp_path), "taosr1-relevance", str(tmp_path), "v", "r1") is None
    assert time.time() - t < 15
    logging.getLogger("taosr1.tracking").removeHandler(seen)
    warnings = [r for r in seen.records if r.getMessage() == "tracking.off"]
    assert len(warnings) == 1 and "no tracking server answers" in warnings[0].fields["reason"]


def test_a_live_server_address_that_answers_anything_counts_as_alive(monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from taosr1 import tracking

    class Deny(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - a server behind auth
            self.send_response(401)
            self.end_headers()

        def log_message(self, *a):  # noqa: ANN002
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(tracking, "_PROBED", {})
        assert tracking.unusable(f"http://127.0.0.1:{srv.server_address[1]}") is None
    finally:
        srv.shutdown()


def test_a_copied_warehouse_writes_nothing_outside_itself(spark, tmp_path, builtin_model, monkeypatch):
    """`cp -a` of a tracked warehouse: its evaluation and promotion write into the copy only, and the champion it
    records lives inside the copy. The champion was crowned with tracking off: the next tracked promotion
    registers it, from the copy, and points the alias at it (``gold/model_promotions`` is the truth)."""
    import os
    import shutil

    from taosr1.evaluation.promote import crown
    from taosr1.model.registry import champion
    from tests.helpers import BACKEND, job, store_at

    if BACKEND != "delta-rs":
        pytest.skip("runs the embedded default")
    orig = tmp_path / "orig"
    store = store_at(spark, orig)
    job(store, "load_labels", source="world")
    shutil.copytree(builtin_model, orig / "models" / "judge")
    monkeypatch.setenv("TAOSR1_TRACKING", "off")
    crown(store, str(orig / "models" / "judge"), "first", "crown-1")
    monkeypatch.delenv("TAOSR1_TRACKING")
    job(store, "evaluate", source="world", train_source="world", models={"judge": str(orig / "models" / "judge")},
        max_pairs=30, embeddings=False, champion=True)
    shutil.copytree(orig, tmp_path / "copy", symlinks=True)

    def snapshot(root):
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}

    before = snapshot(orig)
    copy = store_at(spark, tmp_path / "copy")
    assert champion(copy.root).path == os.path.realpath(tmp_path / "copy" / "models" / "judge")
    e = job(copy, "evaluate", source="world", train_source="world", models={"judge": champion(copy.root).path},
            max_pairs=30, embeddings=False, champion=True)
    rep = job(copy, "promote_model", challenger=champion(copy.root).path, min_gain_macro_f1=-1, min_gain_ndcg_10=-1)
    assert snapshot(orig) == before  # not one file of the original changed or appeared
    assert rep.info["alias"] == "moved"
    import mlflow

    from taosr1.tracking import tracking_uri

    uri = tracking_uri(copy.root)
    alias = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias("taosr1-relevance",
                                                                                              "champion")
    assert alias.source.startswith((tmp_path / "copy").resolve().as_uri())
    assert alias.tags["content_version"] == champion(copy.root).version
    again = job(copy, "promote_model", challenger=champion(copy.root).path, min_gain_macro_f1=-1, min_gain_ndcg_10=-1)
    assert again.info["alias"] == "in_step"
    reports = [p for p in (tmp_path / "copy" / "mlflow" / "artifacts").rglob(f"{e.run_id}.html")]
    assert reports, "the copy's evaluation report is in the copy's artifacts"

