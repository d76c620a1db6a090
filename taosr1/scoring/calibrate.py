"""Fit β_cum (or per-level thresholds) on a labelled split for a stated objective, and store it with the model.

Objectives: ``macro_f1`` over the four levels, or ``good_precision``: the largest Good recall whose Good precision
(levels 4+3 predicted, gold 4 or 3) reaches a target. The search is an exhaustive grid (cheap: a few thousand
pairs × a few hundred thresholds in numpy).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from taosr1.scoring.cumpt import Thresholds, levels


def macro_f1(gold: np.ndarray, pred: np.ndarray, classes=(1, 2, 3, 4)) -> float:
    f1s = []
    for c in classes:
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        denom = 2 * tp + fp + fn
        f1s.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(np.mean(f1s))


def good_precision_recall(gold: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    pg, gg = pred >= 3, gold >= 3
    tp = np.sum(pg & gg)
    return (float(tp / pg.sum()) if pg.sum() else 0.0, float(tp / gg.sum()) if gg.sum() else 0.0)


@dataclass
class Calibration:
    thresholds: Thresholds
    objective: str
    score: float
    n: int


def calibrate(probs: np.ndarray, gold: np.ndarray, objective: str = "macro_f1", per_level: bool = False,
              target_precision: float = 0.9, grid: int = 41) -> Calibration:
    """Best thresholds on ``(probs, gold)``; per-level thresholds search non-increasing triples (t4 ≥ t3 ≥ t2)."""
    gold = np.asarray(gold)
    if len(gold) == 0:
        raise ValueError("no labelled pairs to calibrate on")
    values = np.linspace(0.05, 1.0, grid)
    cands = ([Thresholds(a, b, c) for a, b, c in itertools.product(values, values, values) if a >= b >= c]
             if per_level else [Thresholds.cum(float(b)) for b in values])
    best: tuple[float, float, Thresholds] | None = None
    for th in cands:
        pred = levels(probs, th)
        if objective == "macro_f1":
            key = (macro_f1(gold, pred), 0.0)
        elif objective == "good_precision":
            p, r = good_precision_recall(gold, pred)
            key = (r if p >= target_precision else -1.0 + p, p)
        else:
            raise ValueError(f"objective must be macro_f1 or good_precision, got {objective!r}")
        if best is None or key > best[:2]:
            best = (key[0], key[1], th)
    assert best is not None
    return Calibration(best[2], objective, best[0], len(gold))
