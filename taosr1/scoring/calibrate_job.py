"""Score a labelled split and fit CumPT thresholds on it (``jobs/calibrate_buckets.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from taosr1.engines.base import EngineConfig
from taosr1.engines.spark_runner import PROB_COLS, with_label_probs
from taosr1.io.tables import TableStore
from taosr1.model.loading import model_version
from taosr1.scoring.calibrate import Calibration, calibrate
from taosr1.scoring.cumpt import save_thresholds


def calibrate_on_labels(spark: SparkSession, store: TableStore, engine: EngineConfig, *, source: str,
                        objective: str = "macro_f1", per_level: bool = False,
                        target_precision: float = 0.9) -> tuple[Calibration, Path]:
    """Label probabilities for every judged pair of ``source``, then the best thresholds for ``objective``."""
    labels = store.read("query_product_labels").where(F.col("source") == source)
    products = store.read("products").dropDuplicates(["product_id"]).drop("source")
    pairs = labels.join(products, "product_id")
    scored = with_label_probs(pairs, engine).where("error IS NULL").select("label", *PROB_COLS).toPandas()
    if scored.empty:
        raise ValueError(f"no labelled pairs with known products for source '{source}'")
    cal = calibrate(scored[list(PROB_COLS)].to_numpy(), scored["label"].to_numpy(dtype=np.int64), objective,
                    per_level=per_level, target_precision=target_precision)
    path = save_thresholds(engine.model_path, cal.thresholds,
                           {"objective": objective, "score": cal.score, "n": cal.n, "source": source,
                            "model_version": model_version(engine.model_path),
                            "labels_table_version": store.version("query_product_labels")})
    return cal, path
