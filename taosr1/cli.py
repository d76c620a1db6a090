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


model_app = typer.Typer(no_args_is_help=True, help="The built-in model and local checkpoints.")
app.add_typer(model_app, name="model")

ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Model folder (default $TAOSR1_MODEL or "
                                                 "<warehouse>/models/taosr1-builtin).")]


def _model_path(model: str | None, store) -> str:
    import os

    return model or os.environ.get("TAOSR1_MODEL") or f"{store.root}/models/taosr1-builtin"


@model_app.command("init")
def model_init_cmd(
    out: Annotated[Optional[str], typer.Option(help="Output folder (default <warehouse>/models/taosr1-builtin).")] = None,
    source: str = "world", warmup_steps: int = 200, seed: int = 0, warehouse: Warehouse = None,
) -> None:
    """Build the built-in tokenizer + small Qwen3 model from the source's catalog text (safetensors)."""
    from taosr1.config import Settings
    from taosr1.data.sources import load_source
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.model.loading import model_version

    p, lab = load_source(source)
    target = out or f"{Settings.from_env(warehouse=warehouse).warehouse_uri()}/models/taosr1-builtin"
    path = build_builtin_model(catalog_texts(p, lab), target, BuiltinConfig(warmup_steps=warmup_steps, seed=seed))
    console.print(f"model: {path} (version {model_version(path)})")


def _engine_config(engine: str, model_path: str, batch_size: int, dtype: str, device: str, base_url: str | None,
                   served_model: str | None):
    from taosr1.engines import EngineConfig

    return EngineConfig(backend=engine, model_path=model_path, batch_size=batch_size, dtype=dtype, device=device,
                        base_url=base_url or None, served_model=served_model or None,
                        gpu_memory_utilization=0.9 if device.startswith("cuda") else 0.15)


@app.command("score")
def score_cmd(
    ds: Annotated[str, typer.Option(help="Day to score (yyyy-MM-dd).")],
    engine: Annotated[str, typer.Option(help="hf | vllm | openai")] = "hf",
    model: ModelOpt = None,
    beta_cum: Annotated[Optional[float], typer.Option(help="CumPT threshold (default: the model's calibration, "
                                                           "else 0.5).")] = None,
    candidates: Annotated[Optional[str], typer.Option(help="Candidate pairs table (Delta or Parquet) instead of "
                                                           "the day's impressions.")] = None,
    incremental: Annotated[bool, typer.Option(help="Score only pairs not yet scored by this model version.")] = False,
    batch_size: int = 32, dtype: str = "float32", device: str = "cpu",
    base_url: Annotated[Optional[str], typer.Option(help="openai engine: server URL (…/v1).")] = None,
    served_model: Annotated[Optional[str], typer.Option(help="openai engine: the server's model name.")] = None,
    warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Score a day's query-product pairs into relevance_scores (label probabilities + CumPT tiers)."""
    from taosr1.errors import Taosr1Error
    from taosr1.scoring.job import score_catalog

    try:
        spark, store = _store(warehouse, backend, "taosr1-score-catalog")
        cfg = _engine_config(engine, _model_path(model, store), batch_size, dtype, device, base_url, served_model)
        rep = score_catalog(spark, store, ds, cfg, beta_cum=beta_cum, candidates=candidates, incremental=incremental)
    except (Taosr1Error, FileNotFoundError) as e:
        _fail(e)
        return
    _print_score(store, rep)


def _print_score(store, rep) -> None:
    from pyspark.sql import functions as F

    t = Table(title=f"relevance scoring {rep.ds} (pairs_in = scored + quarantined + already scored)")
    for col in ("pairs_in", "scored", "quarantined", "already scored", "model version", "thresholds"):
        t.add_column(col, justify="right")
    th = rep.thresholds
    t.add_row(str(rep.pairs_in), str(rep.scored), str(rep.quarantined), str(rep.already_scored), rep.model_version,
              f"{th['origin']}")
    console.print(t)
    console.print(f"relevance_scores: [bold]{store.path('relevance_scores')}[/] (Delta, version {rep.table_version}, "
                  f"partition ds={rep.ds})")
    df = store.read("relevance_scores").where((F.col("ds") == rep.ds) & (F.col("run_id") == rep.run_id))
    df.groupBy("tier").count().orderBy("tier").show()
    df.select("query", "product_id", F.round("p4", 3).alias("p4"), F.round("p3", 3).alias("p3"),
              F.round("p2", 3).alias("p2"), F.round("p1", 3).alias("p1"), "level", "tier").show(5, truncate=38)


@app.command("calibrate")
def calibrate_cmd(
    source: Annotated[str, typer.Option(help="Labelled pairs: the source partition of query_product_labels.")] = "world",
    objective: Annotated[str, typer.Option(help="macro_f1 | good_precision")] = "macro_f1",
    per_level: Annotated[bool, typer.Option(help="Fit t4 ≥ t3 ≥ t2 instead of one beta_cum.")] = False,
    target_precision: float = 0.9, engine: str = "hf", model: ModelOpt = None, batch_size: int = 32,
    dtype: str = "float32", device: str = "cpu", warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Fit CumPT thresholds on labelled pairs and store them, versioned, next to the model."""
    from taosr1.scoring.calibrate_job import calibrate_on_labels

    spark, store = _store(warehouse, backend, "taosr1-calibrate")
    cfg = _engine_config(engine, _model_path(model, store), batch_size, dtype, device, None, None)
    cal, path = calibrate_on_labels(spark, store, cfg, source=source, objective=objective, per_level=per_level,
                                    target_precision=target_precision)
    console.print(f"{cal.objective}={cal.score:.4f} on {cal.n} pairs with {cal.thresholds} -> {path}")


corpus_app = typer.Typer(no_args_is_help=True, help="Training corpora: SFT (teacher CoT), pass@N, DPO, GRPO.")
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("sft")
def corpus_sft_cmd(
    source: str = "world", corpus_id: Annotated[Optional[str], typer.Option(help="Id (default: generated).")] = None,
    teacher: Annotated[str, typer.Option(help="knowledge | engine")] = "knowledge",
    engine: str = "vllm", model: ModelOpt = None, balance: Annotated[str, typer.Option(help="equal | none")] = "equal",
    seed: int = 13, warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Splits (query-disjoint, dedup, class balance) and teacher CoT kept only where it agrees with the label."""
    from taosr1.corpora.build import build_sft_corpus

    spark, store = _store(warehouse, backend, "taosr1-build-sft-corpus")
    eng = _engine_config(engine, _model_path(model, store), 16, "float32", "cpu", None, None) \
        if teacher == "engine" else None
    cid, sc = build_sft_corpus(spark, store, source, corpus_id=corpus_id, teacher=teacher, engine=eng, seed=seed,
                               balance=balance)
    console.print(f"corpus {cid}: {sc.as_counts()}")


@corpus_app.command("pass-at-n")
def corpus_pass_at_n_cmd(
    corpus_id: Annotated[str, typer.Option(help="Corpus id from `corpus sft`.")],
    run_id: Annotated[Optional[str], typer.Option(help="Resume this run (default: a new run).")] = None,
    n: int = 5, temperature: float = 1.0, max_new_tokens: int = 256, seed: int = 0, chunks: int = 8,
    balanced_only: Annotated[bool, typer.Option(help="Sample only the class-balanced train pairs.")] = False,
    engine: str = "hf", model: ModelOpt = None, batch_size: int = 16, dtype: str = "float32", device: str = "cpu",
    warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """The policy samples N answers per training pair; committed per chunk, so a killed run resumes."""
    from taosr1.corpora.build import sample_pass_at_n

    spark, store = _store(warehouse, backend, "taosr1-sample-pass-at-n")
    eng = _engine_config(engine, _model_path(model, store), batch_size, dtype, device, None, None)
    rid, sc = sample_pass_at_n(spark, store, corpus_id, eng, run_id=run_id, n=n, temperature=temperature,
                               max_new_tokens=max_new_tokens, seed=seed, chunks=chunks, balanced_only=balanced_only)
    console.print(f"pass@{n} run {rid}: {sc.as_counts()}")


@corpus_app.command("dpo")
def corpus_dpo_cmd(run_id: Annotated[str, typer.Option(help="pass@N run id.")], warehouse: Warehouse = None,
                   backend: BackendOpt = None) -> None:
    """DPO rows from right/wrong samples (teacher trace as chosen when all N were wrong)."""
    from taosr1.corpora.build import build_dpo_pairs

    spark, store = _store(warehouse, backend, "taosr1-build-dpo-pairs")
    console.print(f"dpo pairs: {build_dpo_pairs(spark, store, run_id).as_counts()}")


@corpus_app.command("difficulty")
def corpus_difficulty_cmd(
    run_id: Annotated[str, typer.Option(help="pass@N run id.")],
    gamma: Annotated[Optional[int], typer.Option(help="Keep 0 < correct < gamma (default N).")] = None,
    balance: str = "equal", warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Pass rate → difficulty bucket; the GRPO set (0 < correct < gamma, class-balanced)."""
    from taosr1.corpora.build import label_difficulty

    spark, store = _store(warehouse, backend, "taosr1-label-difficulty")
    console.print(f"difficulty: {label_difficulty(spark, store, run_id, gamma=gamma, balance=balance).as_counts()}")


train_app = typer.Typer(no_args_is_help=True, help="TRL training: SFT -> DPO -> GRPO from the corpus tables.")
app.add_typer(train_app, name="train")


def _train(stage: str, partition: str, base: str, out: str, max_steps: int, learning_rate: float, batch_size: int,
           lora_r: int, cpu: bool, warehouse: str | None, use_vllm: bool = False) -> None:
    from taosr1.config import Settings
    from taosr1.training.trainers import TrainConfig, run_stage

    cfg = TrainConfig(max_steps=max_steps, learning_rate=learning_rate, batch_size=batch_size, lora_r=lora_r,
                      use_cpu=cpu)
    path = run_stage(stage, Settings.from_env(warehouse=warehouse).warehouse_uri(), partition, base, out, cfg,
                     use_vllm=use_vllm)
    console.print(f"{stage} model: {path}")


@train_app.command("sft")
def train_sft_cmd(corpus_id: Annotated[str, typer.Option(help="Corpus id.")],
                  base: Annotated[str, typer.Option(help="Base model folder.")],
                  out: Annotated[str, typer.Option(help="Output model folder.")],
                  max_steps: int = 200, learning_rate: float = 3e-3, batch_size: int = 8,
                  lora_r: Annotated[int, typer.Option(help="LoRA rank (0 = full fine-tuning).")] = 0,
                  cpu: bool = True, warehouse: Warehouse = None) -> None:
    """SFT on the teacher CoT corpus (TRL SFTTrainer, completion-only loss)."""
    _train("sft", corpus_id, base, out, max_steps, learning_rate, batch_size, lora_r, cpu, warehouse)


@train_app.command("dpo")
def train_dpo_cmd(run_id: Annotated[str, typer.Option(help="pass@N run id of the DPO pairs.")],
                  base: Annotated[str, typer.Option(help="Policy to start from (the SFT model).")],
                  out: str = typer.Option(..., help="Output model folder."), max_steps: int = 60,
                  learning_rate: float = 5e-4, batch_size: int = 8, lora_r: int = 0, cpu: bool = True,
                  warehouse: Warehouse = None) -> None:
    """DPO on right/wrong pass@N pairs (TRL DPOTrainer, reference = the starting policy)."""
    _train("dpo", run_id, base, out, max_steps, learning_rate, batch_size, lora_r, cpu, warehouse)


@train_app.command("grpo")
def train_grpo_cmd(run_id: Annotated[str, typer.Option(help="pass@N run id of the GRPO prompt set.")],
                   base: Annotated[str, typer.Option(help="Policy to start from (the DPO model).")],
                   out: str = typer.Option(..., help="Output model folder."), max_steps: int = 20,
                   learning_rate: float = 2e-4, batch_size: int = 8, lora_r: int = 0, cpu: bool = True,
                   use_vllm: Annotated[bool, typer.Option(help="GPU only: TRL's colocated vLLM generation.")] = False,
                   warehouse: Warehouse = None) -> None:
    """GRPO with label + format rewards on the dynamic-sampling set (TRL GRPOTrainer)."""
    _train("grpo", run_id, base, out, max_steps, learning_rate, batch_size, lora_r, cpu, warehouse, use_vllm)


@app.command("evaluate")
def evaluate_cmd(corpus_id: Annotated[str, typer.Option(help="Corpus whose split to evaluate on.")],
                 model: Annotated[list[str], typer.Option(help="NAME=DIR, repeatable.")],
                 split: str = "dev", report: Annotated[Optional[str], typer.Option(help="HTML path.")] = None,
                 embeddings: bool = True, warehouse: Warehouse = None, backend: BackendOpt = None) -> None:
    """Accuracy, macro-F1, per-class F1, confusion and tier agreement for models and baselines; HTML report."""
    from taosr1.evaluation.evaluate import evaluate

    spark, store = _store(warehouse, backend, "taosr1-evaluate")
    models = dict(m.split("=", 1) for m in model)
    eval_id, path = evaluate(spark, store, models, corpus_id, split=split, report_path=report,
                             with_embeddings=embeddings)
    rows = store.read("eval_metrics").where(f"eval_id = '{eval_id}'").select(
        "system", "kind", "n", "accuracy", "macro_f1", "tier_agreement").toPandas()
    console.print(rows.to_string(index=False))
    console.print(f"report: {path}")


pipeline_app = typer.Typer(no_args_is_help=True, help="End-to-end pipelines.")
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("train")
def pipeline_train_cmd(source: str = "world", n: int = 5, sft_steps: int = 300, dpo_steps: int = 60,
                       grpo_steps: int = 20, max_new_tokens: int = 160, embeddings: bool = True,
                       warehouse: Warehouse = None, backend: BackendOpt = None) -> None:
    """corpora -> SFT -> pass@N -> DPO -> difficulty -> GRPO -> evaluate, on the bundled sample by default."""
    from taosr1.training.pipeline import PipelineConfig, run_training_pipeline

    spark, store = _store(warehouse, backend, "taosr1-pipeline-train")
    res = run_training_pipeline(spark, store, PipelineConfig(source=source, n=n, sft_steps=sft_steps,
                                                             dpo_steps=dpo_steps, grpo_steps=grpo_steps,
                                                             max_new_tokens=max_new_tokens, embeddings=embeddings))
    t = Table(title=f"training pipeline ({res['seconds']:.0f} s)")
    for col in ("stage", "seconds", "detail"):
        t.add_column(col)
    for stage, secs, detail in res["stages"]:
        t.add_row(stage, f"{secs:.1f}", detail)
    console.print(t)
    console.print(res["metrics"].to_string(index=False))
    console.print(f"report: {res['report']}")


@app.command("query")
def query_cmd(
    name: Annotated[Optional[str], typer.Argument(help="Query name from analytics/ (omit to list).")] = None,
    engine: Annotated[str, typer.Option(help="spark | duckdb")] = "spark",
    warehouse: Warehouse = None, backend: BackendOpt = None,
) -> None:
    """Run one of the ready analyst queries in analytics/."""
    from taosr1 import analytics

    if not name:
        for q in analytics.list_queries():
            console.print(q)
        return
    if engine == "duckdb":
        from taosr1.config import Settings

        df = analytics.run_duckdb(Settings.from_env(warehouse=warehouse).warehouse_uri(), name)
    else:
        _, store = _store(warehouse, backend, "taosr1-query")
        df = analytics.run_spark(store, name)
    console.print(df.to_string(index=False))


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
    """The main job on the embedded default: sample world → simulated logs → ingest → built-in model → scored day."""
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

    from pathlib import Path

    from taosr1.engines import EngineConfig
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.scoring.job import score_catalog

    model = _model_path(None, store)
    if not (Path(model) / "config.json").exists():
        console.rule(f"4. built-in model → {model}")
        build_builtin_model(catalog_texts(p, lab), model, BuiltinConfig())
    last = _last_day(start, days)
    console.rule(f"5. nightly scoring of {last}: label probabilities → CumPT tiers → relevance_scores")
    rep = score_catalog(spark, store, last, EngineConfig(backend="hf", model_path=model, batch_size=32))
    _print_score(store, rep)


def _last_day(start: str, days: int) -> str:
    import datetime as dt

    return f"{dt.date.fromisoformat(start) + dt.timedelta(days=days - 1):%Y-%m-%d}"


def run_job(*command: str, argv: list[str] | None = None) -> None:
    """Entry for ``jobs/*.py``: run one (sub)command with the process arguments (spark-submit passes them)."""
    app(args=[*command, *(sys.argv[1:] if argv is None else argv)], prog_name=Path(sys.argv[0]).name,
        standalone_mode=True)


def main() -> None:
    app()
