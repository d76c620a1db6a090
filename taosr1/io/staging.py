"""A stage's multi-table commit as one unit: what it is about to commit is staged first, so a run killed between
its commits is completed by the next run of its stage (roll forward), not left half-published.

The frames go to ``<warehouse>/_staging/<stage>/<key>-<txn version>/`` as parquet, then a manifest (written last,
renamed into place) lists them. The run commits them in order under its app transactions and removes the folder.
The next run of the stage, finding the run dead (:mod:`taosr1.repair`), commits what the manifest lists under the
dead run's own app transactions (a table it had committed is skipped by Delta's ``txn`` check), then removes it.
Local warehouses only (the embedded default): an object-store warehouse commits table by table as before.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from taosr1.io.tables import Mode, TableStore, Txn, txn_app_id
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)

MANIFEST = "manifest.json"


def folder(root: str, stage: str, key: str, version: int) -> Path | None:
    """Where a run's staged commit lives (None: not a local warehouse)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://")) / "_staging" / stage / f"{key}-{version}"


def stage(root: str, stage_name: str, key: str, version: int,
          frames: list[tuple[str, DataFrame, Mode, dict[str, str] | None]]) -> Path | None:
    """Write the frames and then their manifest; returns the folder (None where staging does not apply)."""
    where = folder(root, stage_name, key, version)
    if where is None or not version:
        return None
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    tables: list[dict[str, Any]] = []
    for i, (table, df, mode, replace) in enumerate(frames):
        part = f"{i}-{table}"
        df.write.mode("overwrite").parquet(str(where / part))
        tables.append({"table": table, "mode": mode, "replace": replace, "part": part})
    tmp = where / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"stage": stage_name, "key": key, "txn_version": version, "tables": tables}))
    os.replace(tmp, where / MANIFEST)  # the manifest appears whole or not at all
    return where


def clear(where: Path | None) -> None:
    if where is not None:
        shutil.rmtree(where, ignore_errors=True)


def roll_forward(store: TableStore, stage_name: str, key: str, version: int | None) -> list[str] | None:
    """Commit what a dead run staged and had not committed; returns the tables committed now (None: it had
    staged nothing, so there is nothing to complete)."""
    if version is None:
        return None
    where = folder(store.root, stage_name, key, version)
    if where is None or not (where / MANIFEST).is_file():
        clear(where)  # a kill while staging: nothing was committed from it
        return None
    manifest = json.loads((where / MANIFEST).read_text())
    seq: dict[str, int] = {}
    done = []
    for t in manifest["tables"]:
        table = t["table"]
        seq[table] = seq.get(table, 0) + 1
        df = store.spark.read.parquet(str(where / t["part"]))
        w = store.write(table, df, t["mode"], t["replace"], txn=Txn(txn_app_id(stage_name, key, table, seq[table]),
                                                                     version))
        if not w.skipped:
            done.append(table)
    clear(where)
    log_event(log, "repair.rolled_forward", job=stage_name, key=key, committed=done)
    return done
