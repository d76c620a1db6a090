"""Cumulative-probability tiering (CumPT), as TaoSR1 deploys it.

Add the label probabilities from 4-Excellent downwards; the pair's level is the first at which the running sum
reaches β_cum. Levels 4 and 3 → Good, 2 → Mid, 1 → Bad. One threshold replaces the four-plus thresholds of
per-class cut-offs. The generalisation takes one threshold per level (t4, t3, t2); with t4 = t3 = t2 = β_cum it is
CumPT. Thresholds must be non-increasing from t4 to t2 for tiers to stay monotone in the probabilities.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from taosr1.labels import LEVELS, TIER_OF_LEVEL


@dataclass(frozen=True)
class Thresholds:
    """β per level; ``Thresholds.cum(β)`` is CumPT's single threshold."""

    t4: float
    t3: float
    t2: float

    @classmethod
    def cum(cls, beta: float) -> "Thresholds":
        return cls(beta, beta, beta)

    def __post_init__(self) -> None:
        for name, v in (("t4", self.t4), ("t3", self.t3), ("t2", self.t2)):
            if not 0.0 < v <= 1.0:
                raise ValueError(f"threshold {name} must be in (0, 1], got {v}")

    @property
    def beta_cum(self) -> float:
        """The single β when all three agree (CumPT), else the t4 threshold (stored for reference)."""
        return self.t4

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def levels(probs: np.ndarray, th: Thresholds) -> np.ndarray:
    """(n, 4) probabilities in order 4, 3, 2, 1 → level per row."""
    c = np.cumsum(np.asarray(probs, dtype=float), axis=1)
    eps = 1e-12
    return np.where(c[:, 0] + eps >= th.t4, 4,
                    np.where(c[:, 1] + eps >= th.t3, 3, np.where(c[:, 2] + eps >= th.t2, 2, 1)))


def tiers(level_arr: np.ndarray) -> np.ndarray:
    """Level → Good / Mid / Bad."""
    return np.vectorize(TIER_OF_LEVEL.get)(level_arr)


def expected_relevance(probs: np.ndarray) -> np.ndarray:
    """Σ level · P(level): a scalar score for ranking."""
    return np.asarray(probs, dtype=float) @ np.array(LEVELS, dtype=float)


def level_column(th: Thresholds, p4: str = "p4", p3: str = "p3", p2: str = "p2") -> Column:
    """The same rule as a Spark column, so the tier is computed where the data is."""
    eps = 1e-12
    c4 = F.col(p4)
    c3 = c4 + F.col(p3)
    c2 = c3 + F.col(p2)
    return (F.when(c4 + eps >= th.t4, 4).when(c3 + eps >= th.t3, 3).when(c2 + eps >= th.t2, 2).otherwise(1)
            .cast("int"))


def tier_column(level: Column) -> Column:
    return F.when(level >= 3, "Good").when(level == 2, "Mid").otherwise("Bad")


def save_thresholds(model_dir: str | Path, th: Thresholds, meta: dict) -> Path:
    """Store calibrated thresholds next to the model, versioned (``calibration/<n>.json`` + ``latest.json``)."""
    folder = Path(model_dir) / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    n = len(list(folder.glob("v*.json"))) + 1
    doc = {"version": n, "thresholds": asdict(th), **meta}
    path = folder / f"v{n:04d}.json"
    path.write_text(json.dumps(doc, indent=2))
    (folder / "latest.json").write_text(json.dumps(doc, indent=2))
    return path


def load_thresholds(model_dir: str | Path, default_beta: float = 0.5) -> tuple[Thresholds, str]:
    """The latest calibrated thresholds of a model, or CumPT with ``default_beta``; returns (thresholds, origin)."""
    latest = Path(model_dir) / "calibration" / "latest.json"
    if latest.exists():
        doc = json.loads(latest.read_text())
        return Thresholds(**doc["thresholds"]), f"calibration v{doc['version']}"
    return Thresholds.cum(default_beta), f"default beta_cum={default_beta}"
