"""Search-log simulation and ingestion: nothing lost, bad rows quarantined with reasons, re-runs idempotent."""

from __future__ import annotations

import json

import pytest
from deltalake import DeltaTable

from taosr1.data.logsim import SimConfig, simulate_logs
from taosr1.errors import InputError
from taosr1.ingest.logs import STAGE, days_between, ingest_logs

REASON_OF_KIND = {"bad_json": "malformed_json", "missing_product_id": "missing_field:product_id",
                  "missing_query": "missing_field:query", "bad_timestamp": "invalid_timestamp",
                  "unknown_event_type": "invalid_event_type", "bad_position": "invalid_position",
                  "other_day_timestamp": "timestamp_outside_day"}


@pytest.fixture(scope="module")
def raw_logs(tmp_path_factory, world):
    out = tmp_path_factory.mktemp("raw")
    manifest = simulate_logs(*world, out, SimConfig(days=2, sessions_per_day=150, duplicate_rate=0.03,
                                                    malformed_rate=0.03, seed=5))
    return out, manifest


def test_simulator_is_seeded(tmp_path, world):
    a = simulate_logs(*world, tmp_path / "a", SimConfig(days=1, sessions_per_day=30, seed=9))
    b = simulate_logs(*world, tmp_path / "b", SimConfig(days=1, sessions_per_day=30, seed=9))
    assert a["days"] == b["days"]
    fa = (tmp_path / "a" / "ds=2026-11-19" / "events-00000.jsonl").read_text()
    assert fa == (tmp_path / "b" / "ds=2026-11-19" / "events-00000.jsonl").read_text()
    events = [json.loads(x) for x in fa.splitlines() if x.startswith("{") and x.endswith("}")]
    kinds = {e.get("event_type") for e in events}
    assert {"impression", "click"} <= kinds
    clicks_top = sum(1 for e in events if e.get("event_type") == "click" and e.get("position") == 1)
    clicks_low = sum(1 for e in events if e.get("event_type") == "click" and e.get("position") == 8)
    assert clicks_top > clicks_low  # position bias


def test_ingest_accounts_for_every_row(spark, store, raw_logs):
    raw, manifest = raw_logs
    counts = ingest_logs(store, str(raw), "2026-11-19", "2026-11-20")
    for rep, m in zip(counts, manifest["days"]):
        c = rep.counts
        assert c.adds_up()
        assert c.rows_in == m["rows"]
        assert c.filtered["duplicate"] == m["duplicates"]
        assert c.quarantined == sum(m["malformed"].values())
        assert c.kept == m["valid_events"]
        want = {}
        for kind, n in m["malformed"].items():
            want[f"reason:{REASON_OF_KIND[kind]}"] = want.get(f"reason:{REASON_OF_KIND[kind]}", 0) + n
        assert c.extra == want
    q = store.read("quarantine").where(f"stage = '{STAGE}'")
    assert q.where("reason IS NULL OR raw IS NULL").count() == 0
    row = q.where("reason = 'invalid_event_type'").first()
    assert row.detail == "event_type=hover" and row.source_file and row.source_row is not None
    silver = store.read("search_log")
    assert silver.groupBy("event_id").count().where("count > 1").count() == 0
    assert silver.where("position < 1 OR ts IS NULL").count() == 0
    runs = store.read("job_runs").where("job = 'ingest_logs'").collect()
    assert {r.ds for r in runs} == {"2026-11-19", "2026-11-20"} and all(r.status == "succeeded" for r in runs)
    assert runs[0].counts["rows_in"] == runs[0].counts["kept"] + runs[0].counts["quarantined"] + \
        runs[0].counts["filtered:duplicate"]
    assert set(runs[0].table_versions) == {"search_log_bronze", "search_log", "quarantine"}


def test_lineage_points_at_the_source_line(spark, store, raw_logs):
    raw, _ = raw_logs
    ingest_logs(store, str(raw), "2026-11-19")
    sample = store.read("search_log").orderBy("source_row").limit(20).collect()
    lines = (raw / "ds=2026-11-19" / "events-00000.jsonl").read_text().splitlines()
    for r in sample:
        assert json.loads(lines[r.source_row - 1])["event_id"] == r.event_id
    bad = store.read("quarantine").where("reason = 'malformed_json'").first()
    assert lines[bad.source_row - 1] == bad.raw


def test_rerunning_a_day_does_not_duplicate(spark, store, raw_logs):
    raw, manifest = raw_logs
    ingest_logs(store, str(raw), "2026-11-19", "2026-11-20")
    before = {t: store.count(t) for t in ("search_log_bronze", "search_log", "quarantine")}
    v = store.version("search_log")
    ingest_logs(store, str(raw), "2026-11-20")
    after = {t: store.count(t) for t in ("search_log_bronze", "search_log", "quarantine")}
    assert after == before
    assert store.version("search_log") == v + 1
    # the other day's partition kept its files untouched
    assert store.read("search_log", version=v).where("ds = '2026-11-19'").count() == \
        store.read("search_log").where("ds = '2026-11-19'").count()


def test_parquet_input_is_ingested_the_same(spark, store, world, tmp_path):
    raw = tmp_path / "pq"
    m = simulate_logs(*world, raw, SimConfig(days=1, sessions_per_day=60, malformed_rate=0.05, seed=2,
                                             fmt="parquet"))
    (rep,) = ingest_logs(store, str(raw), "2026-11-19")
    c, d = rep.counts, m["days"][0]
    assert (c.rows_in, c.kept, c.filtered["duplicate"]) == (d["rows"], d["valid_events"], d["duplicates"])
    assert c.quarantined == sum(d["malformed"].values())


def test_day_without_input_writes_an_empty_partition(spark, store, raw_logs):
    raw, _ = raw_logs
    (rep,) = ingest_logs(store, str(raw), "2026-12-25")
    assert (rep.counts.rows_in, rep.counts.kept, rep.counts.quarantined) == (0, 0, 0)
    assert store.exists("search_log")


def test_tables_read_back_with_spark_and_delta_rs(spark, store, raw_logs):
    raw, _ = raw_logs
    ingest_logs(store, str(raw), "2026-11-19")
    for table in ("search_log_bronze", "search_log", "quarantine", "job_runs"):
        via_spark = store.read(table).count()
        via_rs = DeltaTable(store.path(table)).to_pyarrow_table().num_rows
        assert via_spark == via_rs > 0, table


def test_bad_dates_and_paths_are_clear_errors(spark, store, tmp_path):
    with pytest.raises(InputError, match="yyyy-MM-dd"):
        days_between("2026-13-01", None)
    with pytest.raises(InputError, match="before start"):
        days_between("2026-11-21", "2026-11-20")
    with pytest.raises(InputError, match="does not exist"):
        ingest_logs(store, str(tmp_path / "nope"), "2026-11-21")
    # the run record opens before any input is read: a run that failed on bad input is on record
    (failed,) = store.read("job_runs").where("job = 'ingest_logs'").collect()
    assert failed.status == "failed" and "does not exist" in failed.error and failed.ds == "2026-11-21"
