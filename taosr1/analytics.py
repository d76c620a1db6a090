"""Ready analyst queries (packaged ``resources/analytics/*.sql``) that run unchanged on Spark SQL and on DuckDB.

Only the shipped queries run by name; a team's own file runs with an explicit path (``--file``). No query text
is ever built from user input.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from taosr1 import resources
from taosr1.errors import InputError
from taosr1.io.tables import TableStore


def list_queries() -> list[str]:
    return resources.names("analytics")


def query_text(name: str | None = None, file: str | None = None) -> str:
    """A shipped query by name, or the text of an explicit ``.sql`` file."""
    if file:
        path = Path(file)
        if path.suffix != ".sql" or not path.is_file():
            raise InputError(f"--file {file}: not a readable .sql file")
        return path.read_text()
    try:
        return resources.read_text("analytics", name or "")
    except KeyError:
        raise InputError(f"no query '{name}' (known: {', '.join(list_queries())}; use --file for your own)") from None


def run_spark(store: TableStore, text: str) -> pd.DataFrame:
    """Run query text with Spark SQL over the current table versions."""
    store.register_views()
    return store.spark.sql(text).toPandas()


def run_duckdb(warehouse_root: str, text: str) -> pd.DataFrame:
    """Run query text with DuckDB over the tables' Delta snapshots (read through delta-rs; no Spark, no JVM)."""
    import duckdb
    from deltalake import DeltaTable

    from taosr1 import contracts
    from taosr1.layout import table_path

    con = duckdb.connect()
    for t in contracts.all_tables():
        path = table_path(warehouse_root, t)
        if DeltaTable.is_deltatable(path):
            con.register(t, DeltaTable(path).to_pyarrow_dataset())
    return con.execute(text).df()
