"""Runs that died between their commits: found at the next run's start, recorded, and superseded.

A run writes its ``job_runs`` row as ``running`` (with its driver, ``host:pid``) before it reads anything, then
commits its tables, each commit carrying a Delta app transaction (:func:`taosr1.io.tables.txn_app_id`), then
closes the row. A kill in between leaves a ``running`` row whose driver is gone. The next run of the same stage and
key (day, corpus or run id) finds it, reads from the tables' app transactions which of them the dead run had committed,
closes its row as ``failed`` with that list, and then replaces the same partitions itself: the tables end
consistent with one run again. A dead run that had staged a multi-table commit (:mod:`taosr1.io.staging`) is
rolled forward instead: its remaining tables are committed under its own app transactions. A dead ``running`` row
of the same stage with another key (a killed ``promote`` or ``load-labels``, whose run ids are random) is closed as
``failed`` too, naming what it had committed, so no row stays ``running`` forever. A driver on another host cannot be proven dead, so its row is left as it is.
"""

from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import functions as F

from taosr1.io.liveness import driver_gone
from taosr1.io.staging import clear, folder, roll_forward
from taosr1.io.tables import TableStore
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


def repair_dead_runs(store: TableStore, job: str, writes: tuple[str, ...], ds: str | None, run_id: str,
                     record_id: str) -> list[dict]:
    """Close the dead ``running`` rows of this stage and key as failed, naming what each had committed."""
    from taosr1 import contracts
    from taosr1.io.tables import txn_app_id

    if not store.exists("job_runs"):
        return []
    key = ds or run_id
    runs = store.read("job_runs").where((F.col("job") == job) & (F.col("status") == "running")
                                        & (F.col("run_id") != record_id))
    repaired = []
    for row in runs.collect():
        recorded = json.loads(row["params"] or "{}")
        driver, version = recorded.get("_driver"), recorded.get("_txn")
        if not driver_gone(driver):
            if driver:
                log_event(log, "repair.alive_or_unknown", job=job, run_id=row["run_id"], driver=driver)
            continue
        row_key = row["ds"] or row["run_id"].split("@", 1)[0]
        same_key = row_key == key
        committed = []
        for table in writes:
            if version is not None and store.txn_version(table, txn_app_id(job, row_key, table, 1)) == version:
                committed.append(table)
        later = runs_after(store, job, row["started_at"])
        rolled = None if later else roll_forward(store, job, row_key, version)
        if later and version is not None:
            clear(folder(store.root, job, row_key, version))  # stale: a later run published over it
        error = (f"killed: its driver {driver} is gone; it had committed {', '.join(committed) or 'nothing'}; "
                 + (f"{record_id} committed the rest it had staged ({', '.join(rolled) or 'nothing left'}), so its "
                    f"tables are whole" if rolled is not None else
                    f"superseded by {record_id}, which replaces the same partitions" if same_key else
                    f"found by {record_id} (another {'day' if row['ds'] else 'run'}: rerun it to redo its work)"))
        closed = {**row.asDict(), "status": "failed", "error": error,
                  "finished_at": dt.datetime.now(dt.timezone.utc)}
        store.merge("job_runs", store.spark.createDataFrame([closed], contracts.load("job_runs").schema),
                    ["job", "run_id"])
        repaired.append({"run_id": row["run_id"], "committed": committed, "same_key": same_key,
                         **({"rolled_forward": rolled} if rolled is not None else {})})
        log_event(log, "repair.dead_run", job=job, run_id=row["run_id"], driver=driver, committed=committed,
                  superseded_by=record_id if same_key else None)
    return repaired


def runs_after(store: TableStore, job: str, started_at: dt.datetime | None) -> bool:
    """Whether a run of ``job`` succeeded after ``started_at`` (a dead run's staged commit is then stale: rolling
    it forward would put older rows over newer ones)."""
    if started_at is None:
        return False
    return store.read("job_runs").where((F.col("job") == job) & (F.col("status") == "succeeded")
                                        & (F.col("started_at") > F.lit(started_at))).limit(1).count() > 0
