"""Where judged pairs come from, all delivered in one documented input schema.

Every source yields two pandas frames in the ``products`` and ``query_product_labels`` contracts
(``schemas/*.json``). That is also how a user brings their own data: two Parquet files (or folders) with those
columns, ``--source user --products P --labels L``.

* ``world``: the seeded sample world (ships with the project; the default).
* ``homedepot``: the Home Depot product-search judgments in ``../shared/data`` (internal development and tests
  only; never copied into the project). Mean 1–3 ratings map to levels by :func:`taosr1.labels.from_homedepot_mean`.
* ``user``: your own Parquet files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from taosr1 import contracts
from taosr1.data.world import generate_world
from taosr1.errors import InputError
from taosr1.labels import from_homedepot_mean
from taosr1.text import clean_text

SHARED_DATA_ENV = "TAOSR1_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """``$TAOSR1_SHARED_DATA`` or ``../shared/data`` beside the repository, if it holds the Home Depot files."""
    env = os.environ.get(SHARED_DATA_ENV)
    cand = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return cand if (cand / "homedepot_train_sample.parquet").exists() else None


def homedepot(split: str = "train", data_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Home Depot judgments of one split (``train`` or ``dev``; query-disjoint) in the project's input schema."""
    data_dir = data_dir or shared_data_dir()
    if data_dir is None:
        raise InputError("Home Depot data not found: set TAOSR1_SHARED_DATA to the folder with "
                         "homedepot_train_sample.parquet")
    raw = pd.read_parquet(data_dir / f"homedepot_{split}_sample.parquet")
    products = (raw.drop_duplicates("product_uid")
                .assign(product_id=lambda d: "hd-" + d["product_uid"].astype(str),
                        title=lambda d: d["product_title"].map(clean_text),
                        category=None, brand=None, price=None, attributes=None, description=None,
                        source="homedepot"))
    labels = raw.assign(
        query_id=lambda d: "hd-" + d["query_id"].astype(str),
        query=lambda d: d["search_term"].map(clean_text),
        product_id=lambda d: "hd-" + d["product_uid"].astype(str),
        label=lambda d: d["relevance"].map(from_homedepot_mean).astype("int32"),
        raw_label=lambda d: d["relevance"].map(lambda r: f"{r:.2f}"),
        label_source="homedepot_mean3", query_type=None, source="homedepot")
    return _conform(products, "products"), _conform(labels, "query_product_labels")


def user(products_path: str, labels_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Your own Parquet files in the two input contracts; a missing column is an error naming it."""
    return (_conform(pd.read_parquet(products_path), "products"),
            _conform(pd.read_parquet(labels_path), "query_product_labels"))


def load_source(name: str, *, seed: int = 7, split: str = "train", products_path: str | None = None,
                labels_path: str | None = None, set_name: str | None = None,
                scale: str = "1-4", judged_per_query: int = 8, n_queries: int = 220
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Products and labels from a named source: ``world`` | ``homedepot`` | ``user``. ``user`` with ``--labels``
    only: one file with the columns a team has (:mod:`taosr1.data.user_set`); with ``--products`` too: two files
    in the input contracts."""
    if name == "world":
        p, lab = generate_world(seed=seed, judged_per_query=judged_per_query, n_queries=n_queries)
        return _conform(p, "products"), _conform(lab, "query_product_labels")
    if name == "homedepot":
        return homedepot(split)
    if name == "user":
        if labels_path and not products_path:
            from taosr1.data.user_set import user_set

            return user_set(labels_path, set_name or "user", scale)  # type: ignore[arg-type]
        if not (products_path and labels_path):
            raise InputError("--source user needs --labels FILE (query, product_id, title, label; .csv, .jsonl or "
                             ".parquet), or --products and --labels in the two input contracts")
        return user(products_path, labels_path)
    raise InputError(f"unknown source '{name}' (world | homedepot | user)")


def _conform(df: pd.DataFrame, table: str) -> pd.DataFrame:
    c = contracts.load(table)
    for f in c.schema.fields:
        if f.name not in df.columns:
            if f.nullable:
                df = df.assign(**{f.name: None})
            else:
                raise InputError(f"input for table '{table}' has no column '{f.name}' (required)")
    return df[[f.name for f in c.schema.fields]].reset_index(drop=True)
