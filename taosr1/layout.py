"""Where each table lives under a warehouse root: ``<root>/<layer>/<table>``, the layer read from the packaged
contract. Plain Python (json + importlib.resources), so Airflow's venv and DuckDB readers share the one rule."""

from __future__ import annotations

import json
from functools import lru_cache


@lru_cache(maxsize=None)
def layer(table: str) -> str:
    from taosr1 import resources

    return json.loads(resources.read_text("schemas", table)).get("layer", "")


def table_path(root: str, table: str) -> str:
    """Location of a table under a warehouse root."""
    lay = layer(table)
    return f"{root.rstrip('/')}/{lay}/{table}" if lay else f"{root.rstrip('/')}/{table}"
