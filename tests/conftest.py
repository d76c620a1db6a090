"""Shared fixtures: one SparkSession per test session, a fresh warehouse per test.

``TAOSR1_TEST_BACKEND=delta-spark`` runs the same suites against Spark-native Delta on a pysail Spark Connect
server (started here); the default is the embedded delta-rs backend on local JVM Spark.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import BACKEND, job, store_at


@pytest.fixture(scope="session")
def spark():
    server = None
    if BACKEND == "delta-spark":
        from pysail.spark import SparkConnectServer

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        os.environ["SPARK_REMOTE"] = f"sc://127.0.0.1:{server.listening_address[1]}"
    os.environ.setdefault("TAOSR1_SPARK_MASTER", "local[2]")
    from taosr1.spark import get_spark

    session = get_spark("taosr1-tests", conf={"spark.sql.shuffle.partitions": "4",
                                              "spark.ui.showConsoleProgress": "false"})
    yield session
    session.stop()
    if server is not None:
        server.stop()


@pytest.fixture
def settings(tmp_path):
    from taosr1.config import Settings

    return Settings(warehouse=str(tmp_path / "warehouse"), table_backend=BACKEND)


@pytest.fixture
def store(spark, settings):
    from taosr1.io import open_store

    s = open_store(spark, settings)
    assert s.backend == BACKEND
    return s


@pytest.fixture(scope="session")
def world():
    from taosr1.data.sources import load_source

    return load_source("world", seed=7)


@pytest.fixture(scope="session")
def homedepot():
    from taosr1.data.sources import load_source, shared_data_dir

    if shared_data_dir() is None:
        pytest.skip("../shared/data (Home Depot judgments) not present")
    return load_source("homedepot", split="train")


@pytest.fixture(scope="session")
def builtin_model(tmp_path_factory, world):
    """The built-in model, built once per test session from the sample world's text (short warm-up)."""
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts

    out = tmp_path_factory.mktemp("models") / "builtin"
    return str(build_builtin_model(catalog_texts(*world), out, BuiltinConfig(warmup_steps=30, seed=1)))


@pytest.fixture(scope="session")
def pair_rows(world):
    """Judged pairs joined with their products (dicts), the input every engine test scores."""
    products, labels = world
    prods = products.set_index("product_id").to_dict("index")
    return [dict(query=r.query, query_id=r.query_id, product_id=r.product_id, label=int(r.label),
                 **prods[r.product_id]) for r in labels.itertuples()]


@pytest.fixture(scope="session")
def ingested_template(spark, tmp_path_factory, world):
    """A warehouse built once per session: the world's judgments loaded and one simulated day ingested."""
    from taosr1.data.logsim import SimConfig, simulate_logs
    from taosr1.ingest.logs import ingest_logs

    root = tmp_path_factory.mktemp("template")
    store = store_at(spark, root / "warehouse")
    job(store, "load_labels", source="world")
    simulate_logs(*world, root / "raw", SimConfig(days=1, sessions_per_day=60, seed=4))
    ingest_logs(store, str(root / "raw"), "2026-11-19")
    return root / "warehouse"


@pytest.fixture
def ingested(spark, ingested_template, tmp_path):
    """A private copy of the template warehouse (Delta logs hold relative paths, so a copy is a clone)."""
    import shutil

    shutil.copytree(ingested_template, tmp_path / "warehouse")
    return store_at(spark, tmp_path / "warehouse")
