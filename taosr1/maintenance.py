"""``taosr1 vacuum``: the files no reader needs any more, listed (dry run, the default) or deleted (``--apply``).

Per table, as Delta's VACUUM does: data files that the current version does not use and that are older than the
retention (replaced partitions, and files a killed run moved in but never committed), plus ``_staging/`` folders of
runs older than the retention. Time travel to versions older than the retention is given up, as with Delta.
"""

from __future__ import annotations

import time
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs
from pydantic import Field

from taosr1 import contracts
from taosr1.job import Context, Params, Stage


class VacuumParams(Params):
    retention_hours: float = Field(default=168.0, ge=0, description="Keep files younger than this (Delta's "
                                   "default: 7 days).")
    apply: bool = Field(default=False, description="Delete (default: only list what would go).")


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri if "://" in uri else f"file://{uri}")


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
            active = {unquote(urlparse(u).path if "://" in u else u) for u in store.delta(table).file_uris()}
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
            old = lambda i: i.mtime is not None and i.mtime.timestamp() < cutoff  # noqa: E731
            files = [i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                     and not i.path[len(root):].startswith(("/_delta_log", "/_staging")) and i.path not in active
                     and old(i)]
            staging = [i for i in infos if i.type == pafs.FileType.Directory
                       and i.path[len(root):].count("/") == 2 and i.path[len(root):].startswith("/_staging/")]
            dead = [d for d in staging if all(old(i) for i in infos if i.path.startswith(d.path + "/")) and old(d)]
            found[table] = [f.path for f in files] + [d.path + "/" for d in dead]
            freed += sum(f.size for f in files)
            if p.apply:
                for f in files:
                    fs.delete_file(f.path)
                for d in dead:
                    fs.delete_dir(d.path)
        c = ctx.report.counts
        c.extra = {"files": sum(len(v) for v in found.values()), "bytes": freed,
                   **{f"files:{t}": len(v) for t, v in found.items() if v}}
        ctx.report.info.update(found=found, applied=p.apply, bytes=freed)
