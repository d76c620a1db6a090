"""Shared bench helpers: machine description, a result table, synthetic pairs from the sample world."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no torch"
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {gpu}, Python {platform.python_version()}"


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*[f"{v:,.1f}" if isinstance(v, float) else str(v) for v in r])
    console = Console(width=max(Console().width, 130))  # a piped run keeps whole rows
    console.print(t)
    console.print(f"machine: {machine()}")


def synthetic_pairs(products: pd.DataFrame, labels: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct (query, product) pairs from the world's queries and products, in random order; past the
    world's query × product count, queries repeat under variant ids (``q-...#2``), as new queries would."""
    rng = np.random.default_rng(seed)
    q = labels.drop_duplicates("query_id")[["query_id", "query"]].reset_index(drop=True)
    pid = products["product_id"].to_numpy()
    i = rng.permutation(n)
    qi, pi, variant = i % len(q), (i // len(q)) % len(pid), i // (len(q) * len(pid))
    return pd.DataFrame({"query_id": q["query_id"].to_numpy()[qi] + "#" + variant.astype(str),
                         "query": q["query"].to_numpy()[qi], "product_id": pid[pi]})
