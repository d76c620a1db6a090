"""How a finished run is shown: counts that add up, the tables it committed, stage-specific summaries."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from taosr1.cli.options import console


def present_counts(store, rep) -> None:
    c = rep.counts
    t = Table(title=f"{rep.stage} {rep.run_id} (rows_in = kept + quarantined + filtered)")
    for col in ("rows_in", "kept", "quarantined", "filtered", "adds up"):
        t.add_column(col, justify="right")
    t.add_row(str(c.rows_in), str(c.kept), str(c.quarantined),
              ", ".join(f"{k} {v}" for k, v in c.filtered.items()) or "0", "yes" if c.adds_up() else "NO")
    console.print(t)
    for table, version in sorted(rep.versions.items()):
        console.print(f"  {table}: version {version} at {store.path(table)}")
    if rep.info.get("path"):
        console.print(f"model: {rep.info['path']}")
    if rep.info.get("policy"):
        console.print(policy_line(rep.info["policy"]))
    if rep.info.get("calibration"):
        cal = rep.info["calibration"]
        console.print(f"{cal.objective}={cal.score:.4f} on {cal.n} pairs with {cal.thresholds} -> {rep.info['path']}")


def policy_line(policy: dict) -> str:
    """pass@N's policy on its pairs: sampled-label accuracy beside arg-max accuracy (chance: 0.25)."""
    sampled = policy.get("sampled_accuracy")
    return (f"policy on {policy['pairs']} pairs: sampled-label accuracy "
            f"{'n/a' if sampled is None else f'{sampled:.3f}'} at temperature {policy['temperature']:g}, arg-max "
            f"accuracy {policy['argmax_accuracy']:.3f} (chance 0.25); temperature fitted on these train pairs: "
            f"{policy['fitted_temperature']:g}")


def present_ingest(store, reports) -> None:
    t = Table(title="search-log ingest (rows_in = silver + quarantined + deduplicated)")
    for col in ("ds", "rows_in", "silver", "quarantined", "deduplicated", "adds up"):
        t.add_column(col, justify="right")
    for r in reports:
        c = r.counts
        t.add_row(r.ds, str(c.rows_in), str(c.kept), str(c.quarantined), str(c.filtered.get("duplicate", 0)),
                  "yes" if c.adds_up() else "NO")
    console.print(t)


def present_score(store, rep) -> None:
    from pyspark.sql import functions as F

    c = rep.counts
    t = Table(title=f"relevance scoring {rep.ds} (pairs_in = scored + quarantined + already scored)")
    for col in ("pairs_in", "scored", "quarantined", "already scored", "model version", "thresholds"):
        t.add_column(col, justify="right")
    t.add_row(str(c.rows_in), str(c.kept), str(c.quarantined), str(c.filtered.get("already_scored", 0)),
              rep.info["model_version"], rep.info["thresholds"]["origin"])
    console.print(t)
    console.print(f"relevance_scores: [bold]{store.path('relevance_scores')}[/] (Delta, version "
                  f"{rep.info['table_version']}, partition ds={rep.ds})")
    df = store.read("relevance_scores").where((F.col("ds") == rep.ds) & (F.col("run_id") == rep.run_id))
    df.groupBy("tier").count().orderBy("tier").show()
    df.select("query", "product_id", F.round("p4", 3).alias("p4"), F.round("p3", 3).alias("p3"),
              F.round("p2", 3).alias("p2"), F.round("p1", 3).alias("p1"), "level", "tier").show(5, truncate=38)
    tier_by_gold(store, df)


def tier_by_gold(store, scored) -> None:
    """The scored day's tiers against the human label where the pair has one: does Bad hold the gold 1–2 pairs?"""
    from pyspark.sql import functions as F

    if not store.exists("query_product_labels"):
        return
    gold = (store.read("query_product_labels").groupBy("query_id", "product_id")
            .agg(F.mode("label").alias("gold")))
    rows = (scored.join(gold, ["query_id", "product_id"], "inner").groupBy("tier", "gold").count().collect())
    if not rows:
        return
    counts = {(r["tier"], int(r["gold"])): int(r["count"]) for r in rows}
    t = Table(title="scored day: tier × gold level (pairs with a human label)")
    t.add_column("tier")
    for lv in (4, 3, 2, 1):
        t.add_column(f"gold {lv}", justify="right")
    t.add_column("share gold 1–2", justify="right")
    for tier in ("Good", "Mid", "Bad"):
        vals = [counts.get((tier, lv), 0) for lv in (4, 3, 2, 1)]
        total = sum(vals)
        t.add_row(tier, *map(str, vals), f"{(vals[2] + vals[3]) / total:.2f}" if total else "")
    console.print(t)


TABLE_WIDTH = 150  # the metrics table is wide: never squeezed into a log's 80 columns


def print_wide(renderable) -> None:
    """Print at least :data:`TABLE_WIDTH` columns wide, also into a pipe or a log (rich caps ``print(width=)`` at
    the console's own width, 80 when not a terminal, so a wide console is made for it)."""
    from rich.console import Console

    Console(width=max(console.width, TABLE_WIDTH)).print(renderable)


SYSTEM_ORDER = ("base", "readout", "lpft", "sft_think_first", "sft", "dpo", "grpo", "champion", "chance",
                "majority", "lexical", "embedding", "cross_encoder")


def metrics_rich_table(metrics, title: str) -> Table:
    """One row per system (models in the loop's order, then baselines): macro-F1 with its 95% interval, the
    fitted-cut and CumPT read-outs beside arg-max, Spearman, QWK, the paired difference against the best baseline,
    per-class F1, NDCG@10 and tier agreement."""
    import math

    rank = {s: i for i, s in enumerate(SYSTEM_ORDER)}
    rows = sorted(metrics.to_dict("records"), key=lambda r: (r["kind"] != "model", rank.get(r["system"], 99)))
    ref = next((r.get("reference") for r in rows if r.get("reference")), None)
    t = Table(title=title)
    for col in ("system", "kind", "n", "accuracy", "macro-F1 [95%]", "cuts macro-F1", "CumPT macro-F1",
                "Spearman", "QWK", f"Δ macro-F1 vs {ref or 'best baseline'} [95%]", "F1 4", "F1 3", "F1 2", "F1 1",
                "NDCG@10", "tier agr."):
        t.add_column(col, justify="left" if col in ("system", "kind") else "right")
    ok = lambda v: v is not None and not (isinstance(v, float) and math.isnan(v))  # noqa: E731
    fmt = lambda v: f"{v:.3f}" if ok(v) else ""  # noqa: E731
    for r in rows:
        pc = r["per_class"] or {}
        f1 = f"[bold]{fmt(r['macro_f1'])}[/]" + (f" [{fmt(r.get('macro_f1_low'))}, {fmt(r.get('macro_f1_high'))}]"
                                                 if ok(r.get("macro_f1_low")) else "")
        diff = (f"{r['diff_macro_f1']:+.3f} [{r['diff_macro_f1_low']:+.3f}, {r['diff_macro_f1_high']:+.3f}]"
                if ok(r.get("diff_macro_f1")) else "")
        t.add_row(r["system"], r["kind"], str(r["n"]), fmt(r["accuracy"]), f1, fmt(r.get("cuts_macro_f1")),
                  fmt(r.get("cumpt_macro_f1")), fmt(r.get("spearman")), fmt(r.get("qwk")), diff,
                  *(fmt(pc.get(f"f1_{lv}")) for lv in (4, 3, 2, 1)), fmt(r.get("ndcg_10")),
                  fmt(r.get("tier_agreement")))
    return t


def targets_rich_table(targets) -> Table:
    """The loop's targets (:mod:`taosr1.evaluation.targets`): met / missed, with the evidence beside each miss."""
    t = Table(title="targets (dev split; the issue's margins)")
    for col in ("target", "want", "got", "met", "evidence"):
        t.add_column(col)
    style = {"met": "[green]met[/]", "missed": "[red]missed[/]"}
    for tg in targets:
        t.add_row(tg.name, tg.want, tg.got, style.get(tg.verdict, tg.verdict), tg.evidence)
    return t


def _present_evaluate(store, rep) -> None:
    from taosr1.evaluation.evaluate import metrics_table

    print_wide(metrics_rich_table(metrics_table(store, rep.run_id), f"evaluation {rep.run_id}"))
    console.print(f"report: {rep.info['report']}")


def _present_load(store, rep) -> None:
    if "products" not in rep.info:  # raters' answers: votes, quarantined rows, repeats
        present_counts(store, rep)
        return
    p, lab = rep.info["products"], rep.info["labels"]
    console.print(f"products: {p.rows} rows (v{p.version}); query_product_labels: {lab.rows} rows (v{lab.version})")


def _present_corpus(label: str) -> Callable:
    def show(store, rep) -> None:
        present_counts(store, rep)
        console.print(f"{label} {rep.run_id}: {rep.counts.as_dict()}")

    return show


def present_candidates(store, rep) -> None:
    present_counts(store, rep)
    if rep.info.get("missing_days"):
        console.print(f"[yellow]days of the window without search logs:[/] {', '.join(rep.info['missing_days'])}")
    mix = {k.split(":", 1)[1]: v for k, v in rep.counts.extra.items() if k.startswith("mix:")}
    t = Table(title=f"candidate pairs {rep.info['window_id']}: query type × traffic band")
    for col in ("query type", "head", "torso", "tail"):
        t.add_column(col, justify="right")
    for qt in sorted({k.split(":")[0] for k in mix}):
        t.add_row(qt, *(str(mix.get(f"{qt}:{b}", 0)) for b in ("head", "torso", "tail")))
    console.print(t)


def present_annotate(store, rep) -> None:
    present_counts(store, rep)
    console.print(f"queue {rep.info['queue_id']}: {rep.counts.kept} pairs for raters")
    for path in rep.info["export"]:
        console.print(f"  export: {path}")


def present_vacuum(store, rep) -> None:
    t = Table(title=f"vacuum under {store.root} ({'deleted' if rep.info['applied'] else 'dry run: nothing deleted'})")
    for col in ("table", "files and staging folders"):
        t.add_column(col)
    for table, paths in sorted(rep.info["found"].items()):
        if paths:
            t.add_row(table, str(len(paths)))
    console.print(t)
    console.print(f"{rep.counts.extra['files']} items, {rep.info['bytes'] / 1e6:.1f} MB of data files"
                  + ("" if rep.info["applied"] else "; run again with --apply to delete them"))


PRESENT: dict[str, Callable] = {
    "vacuum": present_vacuum,
    "sample_candidates": present_candidates, "annotate_candidates": present_annotate,
    "score_catalog": present_score, "evaluate": _present_evaluate, "load_labels": _present_load,
    "build_sft_corpus": _present_corpus("corpus"), "sample_pass_at_n": _present_corpus("pass@N run"),
    "build_dpo_pairs": _present_corpus("dpo pairs of"), "label_difficulty": _present_corpus("difficulty of"),
}
