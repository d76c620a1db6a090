"""Embedded Delta backend: Spark executors write Parquet, the driver commits them with delta-rs.

Write protocol (atomic, never collects data to the driver):
1. executors write the DataFrame as Parquet into ``<table>/_staging/<txn>/`` (hidden from every Delta reader);
2. the driver reads only the footers: row counts and null counts, so a null in a required field stops the
   commit and names the field;
3. files move into their partition folders under unique names, and one Delta transaction adds them (and, for a
   partition replacement, removes the partition's old files).
A run killed before step 3's commit leaves the previous version visible; moved but uncommitted files are not in
the log and ``vacuum`` removes them.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction
from deltalake.transaction import AddAction, create_table_with_add_actions
from pyspark.sql import DataFrame

from taosr1.contracts import Contract
from taosr1.errors import SchemaViolation
from taosr1.io.liveness import driver_gone, driver_id
from taosr1.io.tables import Mode, TableStore, Txn, WriteResult, _predicate
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _drop_staging(fs: pafs.FileSystem, staging_fs_path: str) -> None:
    """Delete one write's staging folder and its owner marker (missing parts are fine)."""
    fs.delete_dir_contents(staging_fs_path, missing_dir_ok=True)
    for path, delete in ((staging_fs_path, fs.delete_dir), (f"{staging_fs_path}.owner", fs.delete_file)):
        try:
            delete(path)
        except (FileNotFoundError, OSError):
            pass


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri if "://" in uri else f"file://{uri}")


class DeltaRsStore(TableStore):
    """Delta tables written by Spark executors and committed with delta-rs."""

    backend = "delta-rs"

    def _read(self, c: Contract, version: int | None) -> DataFrame:
        dt = self.delta(c.table, version)
        uris = dt.file_uris()
        if not uris:
            return self.spark.createDataFrame([], c.schema)
        # basePath keeps the partition columns that live in the folder names, as Delta does.
        return self.spark.read.schema(c.schema).option("basePath", self.path(c.table)).parquet(*uris)

    def count(self, table: str, where: dict[str, str] | None = None) -> int:
        """Count from the Delta log's per-file statistics: no data is read."""
        if not self.exists(table):
            return 0
        actions = pa.table(self.delta(table).get_add_actions(flatten=True)).to_pydict()
        total = 0
        for i, n in enumerate(actions.get("num_records", [])):
            if where and any(actions.get(f"partition.{k}", [None] * (i + 1))[i] != v for k, v in where.items()):
                continue
            if n is None:  # a file without stats (written by another tool): fall back to Spark
                return super().count(table, where)
            total += int(n)
        return total

    def _write(self, c: Contract, df: DataFrame, mode: Mode, replace: dict[str, str],
               txn: Txn | None = None) -> WriteResult:
        table_path = self.path(c.table)
        props = CommitProperties(app_transactions=[Transaction(txn.app_id, txn.version)],
                                 custom_metadata={"taosr1.app_id": txn.app_id}) if txn else None
        write_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        staging = f"{table_path}/_staging/{write_id}"
        fs, table_fs_path = _fs(table_path)
        staging_fs_path = f"{table_fs_path}/_staging/{write_id}"
        writer = df.write.mode("overwrite")
        if c.partition_by:
            writer = writer.partitionBy(*c.partition_by)
        self._clear_dead_staging(fs, table_fs_path, table_path)
        fs.create_dir(f"{table_fs_path}/_staging", recursive=True)
        with fs.open_output_stream(f"{staging_fs_path}.owner") as out:  # who may still commit these files
            out.write(driver_id().encode())
        try:
            writer.parquet(staging)
            adds, rows = self._stage_to_actions(c, fs, table_fs_path, staging_fs_path, write_id, replace)
            if not self.exists(c.table):
                create_table_with_add_actions(table_path, Schema.from_arrow(c.arrow_schema()), adds, mode="error",
                                              partition_by=list(c.partition_by) or None,
                                              description=c.description, commit_properties=props)
            else:
                filters = [(k, "=", v) for k, v in replace.items()] or None
                self.delta(c.table).create_write_transaction(
                    adds, mode, c.arrow_schema(), partition_by=list(c.partition_by) or None,
                    partition_filters=filters, commit_properties=props)
        finally:
            _drop_staging(fs, staging_fs_path)
        return WriteResult(c.table, self.delta(c.table).version(), rows, len(adds), replace)

    def _clear_dead_staging(self, fs: pafs.FileSystem, table_fs: str, table_uri: str) -> None:
        """Remove what writers that provably died left behind: their staging folders and the files they had moved
        into partition folders without committing them (never in the Delta log, so no reader sees them)."""
        staging_root = f"{table_fs}/_staging"
        if fs.get_file_info(staging_root).type != pafs.FileType.Directory:
            return
        dead = []
        for info in fs.get_file_info(pafs.FileSelector(staging_root)):
            if info.base_name.endswith(".owner"):
                with fs.open_input_stream(info.path) as f:
                    owner = f.read().decode(errors="replace")
                if driver_gone(owner):
                    dead.append(info.base_name.removesuffix(".owner"))
        if not dead:
            return
        live = ({unquote(p) for p in pa.table(DeltaTable(table_uri).get_add_actions(flatten=True))["path"]
                 .to_pylist()} if DeltaTable.is_deltatable(table_uri) else set())
        removed = 0
        for info in fs.get_file_info(pafs.FileSelector(table_fs, recursive=True)):
            rel = info.path[len(table_fs) + 1:]
            if (info.type == pafs.FileType.File and not rel.startswith(("_delta_log", "_staging"))
                    and any(info.base_name.startswith(f"part-{write_id}-") for write_id in dead)
                    and unquote(rel) not in live):
                fs.delete_file(info.path)
                removed += 1
        for write_id in dead:
            _drop_staging(fs, f"{staging_root}/{write_id}")
        log_event(log, "table.dead_staging_cleared", table=table_fs, runs=len(dead), uncommitted_files=removed)

    def _stage_to_actions(self, c: Contract, fs: pafs.FileSystem, table_fs: str, staging_fs: str, txn: str,
                          replace: dict[str, str]) -> tuple[list[AddAction], int]:
        """Check the staged files' footers, then move them into the table and describe them as add actions."""
        infos = fs.get_file_info(pafs.FileSelector(staging_fs, recursive=True))
        files = [i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")]
        nested = ("map", "array", "struct")
        primitive_required = [f.name for f in c.schema.fields if not f.nullable and f.name not in c.partition_by
                              and f.dataType.typeName() not in nested]
        unchecked = {f.name for f in c.schema.fields if not f.nullable and f.dataType.typeName() in nested}
        staged = []
        for info in files:
            dirs = info.path[len(staging_fs) + 1:].split("/")[:-1]
            parts = {k: (None if v == HIVE_NULL else unquote(v)) for k, v in (d.split("=", 1) for d in dirs)}
            for pcol in c.partition_by:
                if parts.get(pcol) is None and pcol in c.required:
                    raise SchemaViolation(c.table, pcol, "required partition field is null")
            for k, v in replace.items():
                if parts.get(k) != v:
                    raise SchemaViolation(c.table, k, f"a row has {k}={parts.get(k)!r}, outside the partition "
                                                      f"being replaced ({_predicate(replace)})")
            meta = pq.ParquetFile(fs.open_input_file(info.path)).metadata
            nulls = _null_counts(c.table, meta, primitive_required)
            for name, n in nulls.items():
                if n is None:
                    unchecked.add(name)
                elif n:
                    raise SchemaViolation(c.table, name, f"required field is null in {n} row(s)")
            staged.append((info, dirs, parts, meta, nulls))
        staged_df = None
        if files:
            staged_df = self.spark.read.schema(c.schema).option("basePath", f"{self.path(c.table)}/_staging/{txn}")\
                .parquet(f"{self.path(c.table)}/_staging/{txn}")
            self._check_primary_key(c, staged_df)
        if unchecked and staged_df is not None:
            # Footers give no null count for a whole map or array: count those in one pass over the new files.
            self._check_required_not_null(c, staged_df, only=sorted(unchecked))
        adds: list[AddAction] = []
        rows = 0
        for info, dirs, parts, meta, nulls in staged:
            dest_rel = "/".join([*dirs, f"part-{txn}-{info.base_name.removeprefix('part-')}"])
            fs.create_dir("/".join([table_fs, *dirs]), recursive=True)
            fs.move(info.path, f"{table_fs}/{dest_rel}")
            rows += meta.num_rows
            stats = {"numRecords": meta.num_rows, "nullCount": {k: v for k, v in nulls.items() if v is not None}}
            adds.append(AddAction(path=quote(dest_rel, safe="/="), size=info.size, partition_values=parts,
                                  modification_time=int(time.time() * 1000), data_change=True,
                                  stats=json.dumps(stats)))
        return adds, rows

    def _merge(self, c: Contract, df: DataFrame, keys: list[str]) -> WriteResult:
        # delta-rs MERGE runs in this process: the source passes through the driver. Use it for upserts of
        # modest size (catalog updates, late corrections); bulk daily loads use partition replacement.
        source = df.toArrow()
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        metrics = (self.delta(c.table).merge(source, on, source_alias="s", target_alias="t")
                   .when_matched_update_all().when_not_matched_insert_all().execute())
        return WriteResult(c.table, self.delta(c.table).version(), source.num_rows,
                           int(metrics.get("num_target_files_added", 0)))


def _null_counts(table: str, meta: pq.FileMetaData, columns: list[str]) -> dict[str, int | None]:
    """Null counts of top-level primitive columns from one Parquet footer; ``None`` where it has no statistics."""
    idx = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    out: dict[str, int | None] = {}
    for name in columns:
        if name not in idx:
            raise SchemaViolation(table, name, "column missing from a written file")
        if meta.schema.column(idx[name]).max_definition_level == 0:  # declared REQUIRED in the file
            out[name] = 0
            continue
        total: int | None = 0
        for rg in range(meta.num_row_groups):
            st = meta.row_group(rg).column(idx[name]).statistics
            if st is None or not st.has_null_count:
                total = None
                break
            total += st.null_count
        out[name] = total
    return out
