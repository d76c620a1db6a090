"""Contracts are data; violations name the table and the field."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from taosr1 import contracts
from taosr1.errors import SchemaViolation

EXPECTED = {"search_log_bronze", "search_log", "quarantine", "products", "query_product_labels", "job_runs",
            "relevance_scores"}


def test_every_contract_loads_and_converts():
    assert EXPECTED <= set(contracts.all_tables())
    for name in contracts.all_tables():
        c = contracts.load(name)
        assert c.table == name
        assert set(c.partition_by) <= {f.name for f in c.schema.fields}
        assert set(c.primary_key) <= {f.name for f in c.schema.fields}
        arrow = c.arrow_schema()
        assert arrow.names == [f.name for f in c.schema.fields]


def test_unknown_table_lists_known_ones():
    with pytest.raises(KeyError, match="known: .*search_log"):
        contracts.load("no_such_table")


def test_missing_required_field_is_named(spark, store):
    df = spark.createDataFrame([("2026-11-21", "f", 1, "{}")], "ds string, source_file string, source_row long, raw string")
    with pytest.raises(SchemaViolation, match="table 'search_log_bronze', field 'ingest_run_id': required field is missing"):
        store.write("search_log_bronze", df)


def test_wrong_type_is_named(spark, store):
    c = contracts.load("search_log_bronze")
    df = spark.createDataFrame([("2026-11-21", "f", 1, "{}", "r")],
                               "ds string, source_file string, source_row long, raw string, ingest_run_id string")
    df = df.withColumn("ingested_at", F.current_timestamp()).withColumn("source_row", F.lit("one"))
    with pytest.raises(SchemaViolation, match="field 'source_row': type string where the contract says bigint"):
        store.write(c.table, df)


def test_extra_field_is_named(spark, store):
    df = spark.createDataFrame([("2026-11-21", "f", 1, "{}", "r", 5)],
                               "ds string, source_file string, source_row long, raw string, ingest_run_id string, "
                               "surprise int").withColumn("ingested_at", F.current_timestamp())
    with pytest.raises(SchemaViolation, match="field 'surprise': field is not in the contract"):
        store.write("search_log_bronze", df)


def test_null_in_required_field_is_named(spark, store):
    df = spark.createDataFrame([("2026-11-21", "f", 1, None, "r"), ("2026-11-21", "f", 2, "{}", "r")],
                               "ds string, source_file string, source_row long, raw string, ingest_run_id string")
    df = df.withColumn("ingested_at", F.current_timestamp())
    with pytest.raises(SchemaViolation, match="field 'raw': required field is null in 1 row"):
        store.write("search_log_bronze", df)
    assert not store.exists("search_log_bronze")


def test_contracts_and_suites_live_at_the_top_level_and_ship_in_the_package():
    """``schemas/`` and ``quality/`` beside ``taosr1/``: the package's resource folders are those folders."""
    from taosr1 import resources
    from tests.helpers import REPO

    for kind in ("schemas", "quality"):
        top = REPO / kind
        assert top.is_dir() and not top.is_symlink(), kind
        assert (REPO / "taosr1" / "resources" / kind).resolve() == top.resolve(), kind
        assert sorted(p.stem for p in top.glob("*.json")) == resources.names(kind)
