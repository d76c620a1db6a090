"""Load a source's products and judged pairs into the ``products`` and ``query_product_labels`` tables."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import SparkSession

from taosr1 import contracts
from taosr1.io.tables import TableStore, WriteResult


def to_spark(spark: SparkSession, pdf: pd.DataFrame, table: str):
    """A pandas frame in a table's contract → Spark DataFrame with exactly the contract's schema."""
    schema = contracts.load(table).schema
    pdf = pdf.astype(object).where(pd.notna(pdf), None)
    return spark.createDataFrame(pdf, schema=schema)


def load_judgments(spark: SparkSession, store: TableStore, products: pd.DataFrame, labels: pd.DataFrame,
                   source: str) -> tuple[WriteResult, WriteResult]:
    """Replace the source's partition of both tables (re-loading a source never duplicates it)."""
    for name, frame in (("products", products), ("query_product_labels", labels)):
        bad = set(frame["source"].dropna().unique()) - {source}
        if bad:
            raise ValueError(f"table '{name}': rows with source {sorted(bad)} in a load of source '{source}'")
    p = store.write("products", to_spark(spark, products, "products"), "overwrite", replace={"source": source})
    lab = store.write("query_product_labels", to_spark(spark, labels, "query_product_labels"), "overwrite",
                      replace={"source": source})
    return p, lab
