"""Score a labelled source and fit CumPT thresholds on it (``jobs/calibrate_buckets.py``)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from pyspark.sql import functions as F

from taosr1.engine_stage import EngineStage
from taosr1.errors import InputError
from taosr1.inference import PROB_COLS
from taosr1.job import Context, EngineParams
from taosr1.model.reference import save_thresholds
from taosr1.pairs import KEY, with_products
from taosr1.quarantine import pair_key
from taosr1.scoring.calibrate import calibrate


class CalibrateParams(EngineParams):
    source: str = Field(default="world", description="Labelled pairs: the source partition of "
                        "query_product_labels.")
    objective: Literal["macro_f1", "good_precision"] = "macro_f1"
    per_level: bool = Field(default=False, description="Fit t4 ≥ t3 ≥ t2 instead of one beta_cum.")
    target_precision: float = Field(default=0.9, gt=0, le=1)


class Calibrate(EngineStage[CalibrateParams]):
    """Fit CumPT thresholds on a labelled source and store them, versioned, beside the model. Every judged pair
    is scored (label probabilities), then the thresholds best for the objective are kept."""

    name = "calibrate_buckets"
    Params = CalibrateParams
    reads = ("query_product_labels", "products")
    writes = ("quarantine",)

    def run(self, ctx: Context, p: CalibrateParams) -> None:
        store = ctx.store
        engine = self.engine(ctx, p)
        model = self.model(ctx)
        labels = store.read("query_product_labels").where(F.col("source") == p.source)
        pairs = with_products(store, labels, how="inner")
        c = ctx.report.counts
        c.rows_in, n_pairs = labels.count(), pairs.count()
        c.filtered["unknown_product"] = c.rows_in - n_pairs  # judged pairs whose product the catalog lacks
        er = self.run_engine(ctx, engine, pairs, kind="label_probs", key=KEY, what=f"calibrate on {p.source}",
                             max_error_share=p.max_error_share, rows_in=n_pairs)
        ok = er.ok.select("label", *PROB_COLS).toPandas()
        c.kept = len(ok)
        c.quarantined = ctx.quarantine(er.failed, key=pair_key()).rows
        er.release()
        if ok.empty:
            raise InputError(f"no labelled pairs with known products for source '{p.source}'")
        cal = calibrate(ok[list(PROB_COLS)].to_numpy(), ok["label"].to_numpy(dtype=np.int64), p.objective,
                        per_level=p.per_level, target_precision=p.target_precision)
        path = save_thresholds(engine.model_path, cal.thresholds,
                               {"objective": p.objective, "score": cal.score, "n": cal.n, "source": p.source,
                                "model_version": model.version,
                                "labels_table_version": store.version("query_product_labels")})
        ctx.report.info.update(calibration=cal, path=str(path))
