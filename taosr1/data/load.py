"""Load a source's products and judged pairs into the ``products`` and ``query_product_labels`` tables."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import Field

from taosr1.contracts import to_spark
from taosr1.errors import InputError
from taosr1.job import Context, OptionalIdent, Params, Stage


class LoadLabelsParams(Params):
    source: str = Field(default="world", description="world | homedepot | user | annotations (raters' answers to a "
                        "queue, --labels FILE as .csv or .jsonl)")
    split: str = Field(default="train", description="homedepot split: train | dev")
    name: OptionalIdent = Field(default=None, description="The partition the judgments load into (default: the "
                                "source, or <source>-<split> for a split other than train), so several sets sit "
                                "side by side (e.g. homedepot and homedepot-dev, or two user sets).")
    products: str | None = Field(default=None, description="user source: products Parquet")
    labels: str | None = Field(default=None, description="user source: your judged pairs in one file (.csv, .jsonl "
                               "or .parquet with query, product_id, title, label; optional category, brand, price, "
                               "attributes, description, query_id), or the labels contract's Parquet beside "
                               "--products; annotations: the answers file")
    scale: Literal["1-4", "1-3", "esci"] = Field(default="1-4", description="user source: the scale of the label "
                                                 "column (1-4 levels, 1-3 exact/partial/irrelevant, ESCI letters)")
    seed: int = 7
    judged_per_query: int = Field(default=8, ge=1, le=200, description="world source: judged candidates per query "
                                  "(the same queries and catalog; more pairs for each, e.g. to train on more)")
    n_queries: int = Field(default=220, ge=1, le=100_000, description="world source: queries drawn from the "
                           "templates (repeats merged; more queries = more distinct intents to learn from)")
    judged_share: float = Field(default=1.0, gt=0, le=1, description="Load the judgments of only this share of "
                                "the queries (chosen by a hash of query_id): the rest stay unlabelled, e.g. for an "
                                "annotation round on the sample world.")


class LoadLabels(Stage[LoadLabelsParams]):
    """Load a source's products and judged pairs into products and query_product_labels. Re-loading a source
    replaces its partitions, so it never duplicates them."""

    name = "load_labels"
    Params = LoadLabelsParams
    reads = ("annotation_queue", "query_product_labels")
    writes = ("products", "query_product_labels", "quarantine", "annotation_queue")

    def run(self, ctx: Context, p: LoadLabelsParams) -> None:
        from taosr1.data.sources import load_source

        if p.source == "annotations":
            from taosr1.corpora.answers import load_answers

            if not p.labels:
                raise InputError("--source annotations needs --labels FILE (the raters' answers, .csv or .jsonl)")
            load_answers(ctx, p.labels)
            return

        products, labels = load_source(p.source, seed=p.seed, split=p.split, products_path=p.products,
                                       labels_path=p.labels, set_name=p.name, scale=p.scale,
                                       judged_per_query=p.judged_per_query, n_queries=p.n_queries)
        if p.judged_share < 1:
            import zlib

            keep = labels["query_id"].map(lambda q: zlib.crc32(str(q).encode()) % 10_000 < p.judged_share * 10_000)
            ctx.report.counts.filtered["held_back_unjudged"] = int((~keep).sum())
            labels = labels[keep].reset_index(drop=True)
        name = p.name or (p.source if p.split == "train" else f"{p.source}-{p.split}")
        if name != p.source:
            products, labels = products.assign(source=name), labels.assign(source=name)
        if p.source == "user":
            _check_catalog_clashes(ctx, products, name, p.labels or p.products or "")
        publish_judgments(ctx, products, labels, name)


def _check_catalog_clashes(ctx: Context, products: pd.DataFrame, source: str, path: str) -> None:
    """A product id means one product: a user set that reuses another source's id with another title is refused
    (otherwise which title scoring sees would be left to chance)."""
    from pyspark.sql import functions as F

    if not ctx.store.exists("products") or products.empty:
        return
    ours = ctx.spark.createDataFrame(products[["product_id", "title"]].astype(str)).withColumnRenamed("title", "t")
    clash = (ctx.store.read("products").where(F.col("source") != source).select("product_id", "title", "source")
             .join(ours, "product_id").where(F.col("title") != F.col("t")).limit(21).toPandas())
    if clash.empty:
        return
    rows = products.attrs.get("rows", {})
    lines = [f"row {rows.get(r.product_id, '?')}: product_id {r.product_id} is {r.title[:40]!r} in source "
             f"'{r.source}' but {r.t[:40]!r} here" for r in clash.head(20).itertuples()]
    raise InputError(f"{path}: {len(clash)}{'+' if len(clash) > 20 else ''} product id(s) already name another "
                     f"product (one product per id; rename yours):\n" + "\n".join(lines))


def publish_judgments(ctx: Context, products: pd.DataFrame, labels: pd.DataFrame, source: str) -> None:
    """Write both frames as the ``source`` partitions; counts: rows in = rows committed."""
    for name, frame in (("products", products), ("query_product_labels", labels)):
        bad = set(frame["source"].dropna().unique()) - {source}
        if bad:
            raise InputError(f"table '{name}': rows with source {sorted(bad)} in a load of source '{source}'")
    wp, wl = ctx.write_together([
        ("products", to_spark(ctx.spark, products, "products"), "overwrite", {"source": source}),
        ("query_product_labels", to_spark(ctx.spark, labels, "query_product_labels"), "overwrite", {"source": source}),
    ])  # one unit: a kill between the two commits is completed by the next load
    c = ctx.report.counts
    c.rows_in, c.kept = len(labels) + sum(c.filtered.values()), wl.rows
    c.extra = {"products_in": len(products), "products": wp.rows}
    ctx.report.info.update(products=wp, labels=wl)
