"""The (query, product) pair every stage works on: its key, the product join, its prompt and completion parsing.

One definition each, so scoring, corpora, calibration and evaluation see the same product fields and the same
label-line rule (:func:`taosr1.prompts.parse_completion`).
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from taosr1.io.tables import TableStore

KEY = ["query_id", "product_id"]
MSG = "array<struct<role:string,content:string>>"
PRODUCT_FIELDS = ("title", "category", "brand", "price", "attributes", "description")


def with_products(store: TableStore, df: DataFrame, *, how: str = "left") -> DataFrame:
    """``df`` joined with each product's fields (one row per product id) and ``_known`` (null: unknown product)."""
    products = store.read("products").dropDuplicates(["product_id"]).select(
        "product_id", *PRODUCT_FIELDS, F.lit(True).alias("_known"))
    return df.join(products, "product_id", how)


def prompt_column(variant: str = "long") -> Column:
    """[system, user] messages of each row's pair (post-CoT instruction, long or compact), as a Spark column."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(MSG)
    def build(query: pd.Series, title: pd.Series, category: pd.Series, brand: pd.Series, price: pd.Series,
              attributes: pd.Series, description: pd.Series) -> pd.Series:
        from taosr1.prompts import build_messages

        out = []
        for q, t, c, b, p, a, d in zip(query, title, category, brand, price, attributes, description):
            a = dict(a) if a is not None and not isinstance(a, dict) else a
            out.append(build_messages(q, {"title": t, "category": c, "brand": b, "price": p, "attributes": a,
                                          "description": d}, "post_cot", variant))
        return pd.Series(out)

    return build("query", *PRODUCT_FIELDS)


def parsed(text: Column) -> Column:
    """``struct<level:int, error:string>`` of a completion: the label on its first line (null if there is none)
    and what is wrong with its format (null if nothing)."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("struct<level:int,error:string>")
    def parse(texts: pd.Series) -> pd.DataFrame:
        from taosr1.prompts import parse_completion

        res = [parse_completion(t) if isinstance(t, str) else None for t in texts]
        return pd.DataFrame({"level": [r.level if r else None for r in res],
                             "error": [(r.error if r else "no completion") for r in res]})

    return parse(text)


def message(col: str) -> Column:
    """A one-message assistant turn (TRL's conversational completion) from a text column."""
    return F.array(F.struct(F.lit("assistant").alias("role"), F.col(col).alias("content")))


def bucket_hash(cols: list[str], seed: int) -> Column:
    """A stable pseudo-random number in [0, 1e6) per row, from ``cols`` and a seed (splits, sampling, chunks)."""
    return F.abs(F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])) % 1_000_000
