"""Every job run leaves one row in ``job_runs``: parameters, counts that add up, the table versions it committed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from taosr1.io.tables import TableStore


@dataclass
class RunRecord:
    """Filled in by the job while it runs; written when it ends, failed or not."""

    job: str
    run_id: str
    ds: str | None
    params: dict
    started_at: dt.datetime
    counts: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)


@contextmanager
def record_run(store: TableStore, job: str, run_id: str, *, ds: str | None = None,
               params: dict | None = None) -> Iterator[RunRecord]:
    """Context manager: yields a :class:`RunRecord`, appends it to ``job_runs`` on exit (status and error)."""
    rec = RunRecord(job, run_id, ds, dict(params or {}), dt.datetime.now(dt.timezone.utc))
    error: str | None = None
    try:
        yield rec
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"[:2000]
        raise
    finally:
        row = dict(job=job, run_id=run_id, ds=ds, status="failed" if error else "succeeded",
                   started_at=rec.started_at, finished_at=dt.datetime.now(dt.timezone.utc),
                   params=json.dumps(rec.params, sort_keys=True, default=str),
                   counts={k: int(v) for k, v in rec.counts.items()},
                   table_versions={k: int(v) for k, v in rec.table_versions.items()}, error=error)
        from taosr1 import contracts

        df = store.spark.createDataFrame([row], contracts.load("job_runs").schema)
        store.write("job_runs", df, "append")
