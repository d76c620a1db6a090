"""``taosr1 vacuum``: the files no reader needs any more, listed (dry run, the default) or deleted (``--apply``).

Per table, as Delta's VACUUM does: data files that the current version does not use and that are older than the
retention (replaced partitions, and files a killed run moved in but never committed), plus ``_staging/`` folders of
runs older than the retention. Time travel to versions older than the retention is given up, as with Delta.

Beside a live writer nothing it still needs goes: a retention under Delta's 168 h is refused unless
``--unsafe-retention`` says so (Delta's ``retentionDurationCheck``); a staging folder whose owner may still run, and
the files that owner moved into partitions before its commit, are never touched; and the files the table's versions
use are read after the folder scan and again just before deleting, so a commit that lands in between loses nothing.
"""

from __future__ import annotations

import time
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs
from pydantic import Field, model_validator

from taosr1 import contracts
from taosr1.io.liveness import driver_gone
from taosr1.job import Context, Params, Stage

SAFE_RETENTION_HOURS = 168.0


class VacuumParams(Params):
    retention_hours: float = Field(default=168.0, ge=0, description="Keep files younger than this (Delta's "
                                   "default: 7 days).")
    apply: bool = Field(default=False, description="Delete (default: only list what would go).")
    unsafe_retention: bool = Field(default=False, description="Allow a retention under 168 h (readers of older "
                                   "versions and slow writers can lose files; Delta's retentionDurationCheck off).")

    @model_validator(mode="after")
    def _retention_check(self) -> "VacuumParams":
        if self.retention_hours < SAFE_RETENTION_HOURS and not self.unsafe_retention:
            raise ValueError(f"--retention-hours {self.retention_hours:g} is under Delta's safe minimum of "
                             f"{SAFE_RETENTION_HOURS:g} h: a running writer's files could go; pass --unsafe-retention "
                             "to allow it")
        return self


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri if "://" in uri else f"file://{uri}")


def _live_writes(fs: pafs.FileSystem, infos: list[pafs.FileInfo], root: str) -> set[str]:
    """Write ids whose staging owner may still run (an owner marker whose driver is not provably gone)."""
    live = set()
    for i in infos:
        rel = i.path[len(root):]
        if i.type == pafs.FileType.File and rel.startswith("/_staging/") and i.base_name.endswith(".owner"):
            try:
                with fs.open_input_stream(i.path) as f:
                    owner = f.read().decode(errors="replace")
            except (FileNotFoundError, OSError):
                continue  # its writer finished in the meantime
            if not driver_gone(owner):
                live.add(i.base_name.removesuffix(".owner"))
    return live


class Vacuum(Stage[VacuumParams]):
    """List, or delete with --apply, the data files and staging folders no table version needs any more."""

    name = "vacuum"
    Params = VacuumParams
    reads = tuple(contracts.all_tables())
    writes = ()

    def run(self, ctx: Context, p: VacuumParams) -> None:
        store = ctx.store
        cutoff = time.time() - p.retention_hours * 3600
        found: dict[str, list[str]] = {}
        freed = 0
        for table in contracts.all_tables():
            if not store.exists(table):
                continue
            fs, root = _fs(store.path(table))
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
            active = self._active(store, table)  # after the scan: a file committed meanwhile is in it
            live = _live_writes(fs, infos, root)
            old = lambda i: i.mtime is not None and i.mtime.timestamp() < cutoff  # noqa: E731
            in_flight = lambda i: any(i.base_name.startswith(f"part-{w}-") for w in live)  # noqa: E731
            files = [i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                     and not i.path[len(root):].startswith(("/_delta_log", "/_staging")) and i.path not in active
                     and old(i) and not in_flight(i)]
            staging = [i for i in infos if i.type == pafs.FileType.Directory
                       and i.path[len(root):].count("/") == 2 and i.path[len(root):].startswith("/_staging/")]
            dead = [d for d in staging if d.base_name not in live and old(d)
                    and all(old(i) for i in infos if i.path.startswith(d.path + "/"))]
            if p.apply:
                active = self._active(store, table)  # once more, just before deleting
                files = [f for f in files if f.path not in active]
                for f in files:
                    fs.delete_file(f.path)
                for d in dead:
                    fs.delete_dir(d.path)
                    try:
                        fs.delete_file(f"{d.path}.owner")
                    except (FileNotFoundError, OSError):
                        pass
            found[table] = [f.path for f in files] + [d.path + "/" for d in dead]
            freed += sum(f.size for f in files)
        c = ctx.report.counts
        c.extra = {"files": sum(len(v) for v in found.values()), "bytes": freed,
                   **{f"files:{t}": len(v) for t, v in found.items() if v}}
        ctx.report.info.update(found=found, applied=p.apply, bytes=freed)

    @staticmethod
    def _active(store, table: str) -> set[str]:
        """Paths of the files the table's latest version uses."""
        return {unquote(urlparse(u).path if "://" in u else u) for u in store.delta(table).file_uris()}
