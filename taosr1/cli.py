"""The ``taosr1`` command. Subcommands mirror the spark-submit jobs in ``jobs/``; both call the same library code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="TaoSR1 data side on Spark + Delta: ingest logs, build corpora, score the catalog.")
console = Console(stderr=False)

Warehouse = Annotated[Optional[str], typer.Option(help="Warehouse root (default $TAOSR1_WAREHOUSE or ./warehouse).")]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="auto | delta-rs | delta-spark.")]


def _store(warehouse: str | None, backend: str | None, app_name: str):
    from taosr1.config import Settings
    from taosr1.io import open_store
    from taosr1.spark import get_spark

    spark = get_spark(app_name)
    return spark, open_store(spark, Settings.from_env(warehouse=warehouse, table_backend=backend))


def _fail(e: Exception) -> None:
    console.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(code=2)


@app.command("load-labels")
def load_labels_cmd(
    source: Annotated[str, typer.Option(help="world | homedepot | user")] = "world",
    split: Annotated[str, typer.Option(help="homedepot split: train | dev")] = "train",
    products: Annotated[Optional[str], typer.Option(help="user source: products Parquet")] = None,
    labels: Annotated[Optional[str], typer.Option(help="user source: labels Parquet")] = None,
    seed: int = 7, warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Load a source's products and judged pairs into the products and query_product_labels tables."""
    from taosr1.data.load import load_judgments
    from taosr1.data.sources import load_source
    from taosr1.errors import Taosr1Error

    try:
        p, lab = load_source(source, seed=seed, split=split, products_path=products, labels_path=labels)
        spark, store = _store(warehouse, backend, "taosr1-load-labels")
        wp, wl = load_judgments(spark, store, p, lab, source if source != "user" else "user")
    except Taosr1Error as e:
        _fail(e)
        return
    console.print(f"products: {wp.rows} rows (v{wp.version}); query_product_labels: {wl.rows} rows (v{wl.version})")


@app.command("simulate-logs")
def simulate_logs_cmd(
    out: Annotated[str, typer.Option(help="Folder for raw logs (ds=yyyy-MM-dd/ sub-folders).")] = "warehouse/raw/search_logs",
    source: str = "world", split: str = "train", start: str = "2026-11-19", days: int = 3,
    sessions_per_day: int = 400, duplicate_rate: float = 0.02, malformed_rate: float = 0.01, seed: int = 11,
    fmt: Annotated[str, typer.Option(help="jsonl | parquet")] = "jsonl",
) -> None:
    """Write seeded raw search logs (impressions, clicks, carts, orders; duplicates and bad rows at set rates)."""
    from taosr1.data.logsim import SimConfig, simulate_logs
    from taosr1.data.sources import load_source

    p, lab = load_source(source, split=split)
    m = simulate_logs(p, lab, out, SimConfig(start=start, days=days, sessions_per_day=sessions_per_day,
                                             duplicate_rate=duplicate_rate, malformed_rate=malformed_rate,
                                             seed=seed, fmt=fmt))
    for d in m["days"]:
        console.print(f"{d['ds']}: {d['rows']} rows ({d['duplicates']} duplicates, "
                      f"{sum(d['malformed'].values())} malformed) -> {out}/ds={d['ds']}")


@app.command("ingest")
def ingest_cmd(
    input: Annotated[str, typer.Option(help="Raw log folder with ds=yyyy-MM-dd/ sub-folders.")] = "warehouse/raw/search_logs",
    ds: Annotated[Optional[str], typer.Option(help="One day (yyyy-MM-dd).")] = None,
    start: Annotated[Optional[str], typer.Option(help="First day of a range.")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last day of a range (inclusive).")] = None,
    warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Ingest raw logs into bronze, silver and quarantine; re-running a day replaces it."""
    from taosr1.errors import Taosr1Error
    from taosr1.ingest.logs import ingest_logs

    if not (ds or start):
        _fail(ValueError("give --ds DAY or --start DAY [--end DAY]"))
    try:
        spark, store = _store(warehouse, backend, "taosr1-ingest-logs")
        counts = ingest_logs(spark, store, input, ds or start, None if ds else end)
    except Taosr1Error as e:
        _fail(e)
        return
    _print_counts(counts)


def _print_counts(counts) -> None:
    t = Table(title="search-log ingest (rows_in = silver + quarantined + deduplicated)")
    for col in ("ds", "rows_in", "silver", "quarantined", "deduplicated", "adds up"):
        t.add_column(col, justify="right")
    for c in counts:
        t.add_row(c.ds, str(c.rows_in), str(c.rows_silver), str(c.rows_quarantined), str(c.rows_deduplicated),
                  "yes" if c.adds_up() else "NO")
    console.print(t)


@app.command("tables")
def tables_cmd(warehouse: Warehouse = None, backend: BackendOpt = None) -> None:
    """List every table: location, version and row count."""
    from taosr1 import contracts

    _, store = _store(warehouse, backend, "taosr1-tables")
    t = Table(title=f"tables under {store.root} ({store.backend})")
    for col in ("table", "version", "rows", "path"):
        t.add_column(col)
    for name in contracts.all_tables():
        if store.exists(name):
            t.add_row(name, str(store.version(name)), str(store.count(name)), store.path(name))
    console.print(t)


@app.command("demo")
def demo_cmd(
    source: Annotated[str, typer.Option(help="world (bundled sample) | homedepot")] = "world",
    days: int = 3, start: str = "2026-11-19", warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """The main job on the embedded default: sample world → simulated logs → ingest → silver tables."""
    from taosr1.data.load import load_judgments
    from taosr1.data.logsim import SimConfig, simulate_logs
    from taosr1.data.sources import load_source
    from taosr1.ingest.logs import ingest_logs

    spark, store = _store(warehouse, backend, "taosr1-demo")
    p, lab = load_source(source)
    console.rule(f"1. judged pairs from '{source}' → products, query_product_labels")
    wp, wl = load_judgments(spark, store, p, lab, source)
    console.print(f"{wp.rows} products, {wl.rows} judged pairs")
    raw = f"{store.root}/raw/search_logs"
    console.rule(f"2. simulated search logs → {raw}")
    simulate_logs(p, lab, raw, SimConfig(start=start, days=days))
    console.rule("3. ingest → bronze, silver, quarantine")
    counts = ingest_logs(spark, store, raw, start, _last_day(start, days))
    _print_counts(counts)
    console.print(f"\nsilver table: [bold]{store.path('search_log')}[/] (Delta, version {store.version('search_log')})")
    store.read("search_log").orderBy("ts").show(5, truncate=40)


def _last_day(start: str, days: int) -> str:
    import datetime as dt

    return f"{dt.date.fromisoformat(start) + dt.timedelta(days=days - 1):%Y-%m-%d}"


def run_job(command: str, argv: list[str] | None = None) -> None:
    """Entry for ``jobs/*.py``: run one subcommand with the process arguments (spark-submit passes them)."""
    app(args=[command, *(sys.argv[1:] if argv is None else argv)], prog_name=Path(sys.argv[0]).name,
        standalone_mode=True)


def main() -> None:
    app()
