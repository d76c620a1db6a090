"""Raters' answers back into the lakehouse: ``taosr1 load-labels --source annotations --labels FILE``.

A file (CSV or JSONL, the export's columns plus ``rater_id`` and ``label``) becomes votes in the ``annotations``
partition of ``query_product_labels``: one row per (pair, rater), ``label_source = rater:<id>``, so several raters'
votes are kept (corpora take the most frequent label). Loading is idempotent: a (pair, rater) vote replaces the same
vote loaded before. A malformed row, a missing field, a label off the four levels, a pair no queue holds, or one
rater giving one pair two different labels goes to quarantine with its reason and row number. The queue's status
and vote counts follow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from taosr1.contracts import to_spark
from taosr1.errors import InputError
from taosr1.io.csv_safe import read_csv_text
from taosr1.job import Context
from taosr1.labels import parse_level
from taosr1.pairs import KEY
from taosr1.quarantine import pair_key

SOURCE = "annotations"
STAGE = "load_annotations"
FIELDS = ("query_id", "product_id", "rater_id", "label")


def read_answers(path: str) -> pd.DataFrame:
    """Every row of the file with its 1-based ``source_row`` (the line, or the data row after the header, as an
    editor or a spreadsheet numbers it), the raw text, and a ``reason`` where it is unusable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"answers file {path} does not exist")
    rows: list[dict] = []
    if p.suffix == ".jsonl":
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rows.append({**{k: rec.get(k) for k in ("queue_id", *FIELDS)}, "raw": line, "source_row": i,
                             "reason": None if isinstance(rec, dict) else "malformed_row"})
            except (json.JSONDecodeError, AttributeError):
                rows.append({"raw": line, "source_row": i, "reason": "malformed_row"})
    elif p.suffix == ".csv":
        try:
            df = read_csv_text(p)  # the export's escapes undone
        except UnicodeDecodeError as e:
            raise InputError(f"answers file {path}: not UTF-8 (byte 0x{e.object[e.start]:02x} at offset "
                             f"{e.start}); save it as UTF-8") from e
        missing = [c for c in FIELDS if c not in df.columns]
        if missing:
            raise InputError(f"answers file {path} lacks column(s) {missing}")
        for i, rec in enumerate(df.to_dict("records"), start=1):
            rows.append({**{k: rec.get(k) for k in ("queue_id", *FIELDS)}, "raw": json.dumps(rec), "source_row": i,
                         "reason": None})
    else:
        raise InputError(f"answers file {path}: expected .csv or .jsonl")
    out = pd.DataFrame(rows, columns=["queue_id", *FIELDS, "raw", "source_row", "reason"])
    out["detail"] = None
    for f in FIELDS:  # the first missing field names the reason
        empty = out["reason"].isna() & out[f].map(lambda v: v is None or str(v).strip() == "")
        out.loc[empty, "reason"] = f"missing_field:{f}"
    for f in ("query_id", "product_id", "rater_id"):  # ids as strictly as ingest's: printable, capped
        v = out[f].map(lambda x: "" if x is None else str(x))
        bad = out["reason"].isna() & v.map(lambda x: len(x) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in x))
        out.loc[bad, "reason"] = f"invalid_field:{f}"
        out.loc[bad, "detail"] = f"{f} has control characters or is over 200 characters"
    levels, errors = [], []
    for v, r in zip(out["label"], out["reason"]):
        if r is not None:
            levels.append(None), errors.append(None)
            continue
        try:
            levels.append(parse_level(v)), errors.append(None)
        except ValueError as e:
            levels.append(None), errors.append(str(e))
    out["level"] = levels
    bad_label = out["reason"].isna() & out["level"].isna()
    out.loc[bad_label, "reason"] = "invalid_label"
    out.loc[bad_label, "detail"] = [e for e, b in zip(errors, bad_label) if b]
    for c in ("queue_id", *FIELDS):
        out[c] = out[c].map(lambda v: None if v is None else str(v).strip())
    # one rater, one pair, two different labels in one file: no way to tell which they meant
    ok = out["reason"].isna()
    labels_per = out[ok].groupby(["query_id", "product_id", "rater_id"])["level"].transform("nunique")
    conflict = labels_per[labels_per > 1].index
    out.loc[conflict, "reason"] = "rater_conflict"
    out.loc[conflict, "detail"] = "the same rater gave this pair different labels in this file"
    return out


def load_answers(ctx: Context, path: str) -> None:
    """Votes in, queue statuses updated, rejected rows quarantined; counts: rows in = votes + quarantined +
    repeated rows."""
    store, spark = ctx.store, ctx.spark
    answers = read_answers(path)
    c = ctx.report.counts
    c.rows_in = len(answers)
    if not store.exists("annotation_queue"):
        raise InputError("no annotation_queue table: answers need a queue (`taosr1 corpus annotate`)")
    queue = store.read("annotation_queue").select("queue_id", *KEY, "query", "query_type")
    good = answers[answers["reason"].isna()]
    cand = spark.createDataFrame(good[["queue_id", *KEY, "source_row"]].astype(object), "queue_id string, "
                                 "query_id string, product_id string, source_row long")
    match = (cand.join(queue.withColumnRenamed("queue_id", "q"), KEY, "left")
             .where(F.col("q").isNotNull() & (F.col("queue_id").isNull() | (F.col("queue_id") == F.col("q"))))
             .groupBy("source_row").agg(F.first("query").alias("query"), F.first("query_type").alias("query_type"),
                                        F.first("q").alias("matched_queue")).toPandas())
    answers = answers.merge(match, on="source_row", how="left")
    unknown = answers["reason"].isna() & answers["matched_queue"].isna()
    answers.loc[unknown, "reason"] = "unknown_task"
    answers.loc[unknown, "detail"] = "no annotation queue holds this (query_id, product_id)"
    rejected = answers[answers["reason"].notna()]
    file_tag = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).name)[:100]
    bad = spark.createDataFrame(rejected[["query_id", "product_id", "source_row", "raw", "reason", "detail"]]
                                .astype(object).where(rejected[["query_id", "product_id", "source_row", "raw",
                                                                "reason", "detail"]].notna(), None),
                                "query_id string, product_id string, source_row long, raw string, reason string, "
                                "detail string").withColumn("source_file", F.lit(str(Path(path).resolve())))
    c.quarantined = ctx.quarantine(bad, stage=STAGE, ds=file_tag, key=pair_key()).rows
    accepted = answers[answers["reason"].isna()].drop_duplicates(["query_id", "product_id", "rater_id"])
    c.filtered["repeated_row"] = int(answers["reason"].isna().sum()) - len(accepted)
    votes = pd.DataFrame({"query_id": accepted["query_id"], "query": accepted["query"],
                          "product_id": accepted["product_id"], "label": accepted["level"].astype("int32"),
                          "raw_label": accepted["label"], "label_source": "rater:" + accepted["rater_id"],
                          "query_type": accepted["query_type"], "source": SOURCE})
    new = to_spark(spark, votes, "query_product_labels")
    old = store.read("query_product_labels").where(F.col("source") == SOURCE) \
        if store.exists("query_product_labels") else None
    merged = new.unionByName(old.join(new.select(*KEY, "label_source"), [*KEY, "label_source"], "left_anti")) \
        if old is not None else new
    w = ctx.write("query_product_labels", merged, "overwrite", replace={"source": SOURCE})
    c.kept = len(accepted)
    c.extra = {"votes_in_table": w.rows, **{f"reason:{k}": int(v) for k, v in
                                            rejected["reason"].value_counts().items()}}
    update_queue(ctx, sorted(set(accepted["matched_queue"])))


def update_queue(ctx: Context, queue_ids: list[str]) -> None:
    """Status and vote counts of the queues that received answers (each queue partition replaced)."""
    store = ctx.store
    votes = (store.read("query_product_labels").where(F.col("source") == SOURCE)
             .groupBy(*KEY).agg(F.count("*").alias("votes")))
    for qid in queue_ids:
        q = store.read("annotation_queue").where(F.col("queue_id") == qid).join(votes, KEY, "left")
        n = F.coalesce(F.col("votes"), F.lit(0)).cast("int")
        changed = n != F.col("n_votes")
        updated = (q.withColumn("updated_at", F.when(changed, F.current_timestamp()).otherwise(F.col("updated_at")))
                   .withColumn("status", F.when(n > 0, "labelled").otherwise("pending")).withColumn("n_votes", n)
                   .drop("votes"))
        ctx.write("annotation_queue", updated, "overwrite", replace={"queue_id": qid})
