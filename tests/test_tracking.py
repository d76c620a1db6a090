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
