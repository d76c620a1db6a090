"""Cumulative-probability tiering (CumPT), as TaoSR1 deploys it.

Add the label probabilities from 4-Excellent downwards; the pair's level is the first at which the running sum
reaches β_cum. Levels 4 and 3 → Good, 2 → Mid, 1 → Bad. One threshold replaces the four-plus thresholds of
per-class cut-offs. The generalisation takes one threshold per level (t4, t3, t2); with t4 = t3 = t2 = β_cum it is
CumPT. Thresholds must be non-increasing from t4 to t2 for tiers to stay monotone in the probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from taosr1.labels import TIER_OF_LEVEL


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
    def beta_cum(self) -> float | None:
        """The single β when all three agree (CumPT); ``None`` for per-level thresholds (they have no single β)."""
        return self.t4 if self.t4 == self.t3 == self.t2 else None

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def levels(probs: np.ndarray, th: Thresholds) -> np.ndarray:
    """(n, 4) probabilities in order 4, 3, 2, 1 → level per row."""
    c = np.cumsum(np.asarray(probs, dtype=float), axis=1)
    eps = 1e-12
    return np.where(c[:, 0] + eps >= th.t4, 4,
                    np.where(c[:, 1] + eps >= th.t3, 3, np.where(c[:, 2] + eps >= th.t2, 2, 1)))


def tiers(level_arr: np.ndarray) -> np.ndarray:
    """Level → Good / Mid / Bad."""
    return np.vectorize(TIER_OF_LEVEL.get)(level_arr)


def expected_relevance_column() -> Column:
    """Σ level · P(level) as a Spark column: a scalar score for ranking."""
    return F.col("p4") * 4 + F.col("p3") * 3 + F.col("p2") * 2 + F.col("p1")


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
