"""Ready analyst queries (``analytics/*.sql``) that run unchanged on Spark SQL and on DuckDB over delta-rs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from taosr1.io.tables import TableStore

QUERIES_DIR = Path(__file__).resolve().parent.parent / "analytics"


def list_queries() -> list[str]:
    return sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))


def query_text(name: str) -> str:
    path = QUERIES_DIR / f"{name}.sql"
    if not path.exists():
        raise KeyError(f"no query '{name}' (known: {', '.join(list_queries())})")
    return path.read_text()


def run_spark(store: TableStore, name: str) -> pd.DataFrame:
    """Run a query with Spark SQL over the current table versions."""
    store.register_views()
    return store.spark.sql(query_text(name)).toPandas()


def run_duckdb(warehouse_root: str, name: str) -> pd.DataFrame:
    """Run a query with DuckDB over the tables' Delta snapshots (read through delta-rs; no Spark, no JVM)."""
    import duckdb
    from deltalake import DeltaTable

    from taosr1 import contracts
    from taosr1.io.tables import table_path

    con = duckdb.connect()
    for t in contracts.all_tables():
        path = table_path(warehouse_root, t)
        if DeltaTable.is_deltatable(path):
            con.register(t, DeltaTable(path).to_pyarrow_dataset())
    return con.execute(query_text(name)).df()
