"""Chance, ordering and agreement metrics, and query-level bootstrap intervals, so systems can be told apart.

Pairs of one query are not independent (same query, same raters), so the bootstrap resamples *queries* with
replacement and recomputes every metric on the drawn pairs; differences between systems use the same draws
(paired), which is what makes a 2-point gap measurable on a few thousand pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from taosr1.labels import LEVELS

_LEVELS = np.array(LEVELS)


def chance_macro_f1(gold: np.ndarray) -> float:
    """Expected macro-F1 of a guess that picks each of the 4 levels with probability ¼: per class
    F1 = 2·p·¼ / (p + ¼), p the class's share in ``gold`` (0 for a class the split lacks)."""
    gold = np.asarray(gold, dtype=int)
    if len(gold) == 0:
        return float("nan")
    f = [2 * p * 0.25 / (p + 0.25) if p > 0 else 0.0 for p in ((gold == lv).mean() for lv in LEVELS)]
    return float(np.mean(f))


def fast_macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the 4 levels from one bincount (scikit-learn's value, zero_division=0; ~100× faster)."""
    g = np.searchsorted(-_LEVELS, -np.asarray(gold, dtype=int))
    p = np.searchsorted(-_LEVELS, -np.asarray(pred, dtype=int))
    valid = (np.asarray(pred) >= 1) & (np.asarray(pred) <= 4)
    cm = np.bincount(g[valid] * 4 + p[valid], minlength=16).reshape(4, 4)
    tp = np.diag(cm).astype(float)
    support = np.bincount(g, minlength=4).astype(float)  # invalid predictions still count as misses
    predicted = cm.sum(axis=0).astype(float)
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return float(f1.mean())


def quadratic_kappa(gold: np.ndarray, pred: np.ndarray) -> float:
    """Quadratic weighted kappa on the 4 levels (Crowdflower's competition metric): scikit-learn's
    ``cohen_kappa_score(labels=LEVELS, weights="quadratic")`` from one bincount (the bootstrap calls it per draw)."""
    gold, pred = np.asarray(gold, dtype=int), np.asarray(pred, dtype=int)
    if len(set(gold.tolist()) | set(pred.tolist())) < 2:
        return 0.0
    valid = (gold >= 1) & (gold <= 4) & (pred >= 1) & (pred <= 4)  # as scikit-learn: pairs off the labels drop
    g, p = gold[valid] - 1, pred[valid] - 1
    if len(g) == 0:
        return float("nan")  # no pair with a level read: undefined, as scikit-learn says
    observed = np.bincount(g * 4 + p, minlength=16).reshape(4, 4).astype(float)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    weights = (np.arange(4)[:, None] - np.arange(4)[None, :]) ** 2
    denom = float((weights * expected).sum())
    return float(1 - (weights * observed).sum() / denom) if denom > 0 else float("nan")


def spearman(rating: np.ndarray, score: np.ndarray) -> float:
    """Spearman's ρ of a system's score with the gold rating (0 where either is constant): the Pearson correlation
    of average ranks, as scipy's ``spearmanr`` computes it, without its per-call overhead."""
    from scipy.stats import rankdata

    r, s = np.asarray(rating, dtype=float), np.asarray(score, dtype=float)
    if len(r) < 3 or np.std(r) == 0 or np.std(s) == 0:
        return 0.0
    a, b = rankdata(r), rankdata(s)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@dataclass(frozen=True)
class System:
    """What the bootstrap needs of one system: its levels and its ranking score per pair."""

    pred: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def _ndcg_per_query(query_ids: np.ndarray, gold: np.ndarray, score: np.ndarray, uq: np.ndarray) -> np.ndarray:
    from sklearn.metrics import ndcg_score

    out = np.full(len(uq), np.nan)
    for k, q in enumerate(uq):
        m = query_ids == q
        if m.sum() >= 2:
            out[k] = ndcg_score(gold[m][None, :].astype(float), score[m][None, :].astype(float), k=10)
    return out


def bootstrap(query_ids: np.ndarray, gold: np.ndarray, rating: np.ndarray, systems: Mapping[str, System],
              reference: str | None = None, draws: int = 1000, seed: int = 13,
              level: float = 0.95) -> dict[str, dict[str, Interval]]:
    """Per system, 95% intervals of macro_f1, accuracy, spearman, ndcg_10 and qwk over ``draws`` resamples of the
    queries (seeded); with ``reference``, also ``diff_macro_f1`` / ``diff_spearman``: the system minus the
    reference on the same resamples."""
    q = np.asarray(query_ids)
    gold, rating = np.asarray(gold, dtype=int), np.asarray(rating, dtype=float)
    uq, inv = np.unique(q, return_inverse=True)
    rows_of = [np.flatnonzero(inv == k) for k in range(len(uq))]
    qdraws = np.random.default_rng(seed).integers(0, len(uq), (draws, len(uq)))
    picks = [np.concatenate([rows_of[k] for k in d]) for d in qdraws]

    metric: dict[str, Callable[[System, np.ndarray], float]] = {
        "macro_f1": lambda s, i: fast_macro_f1(gold[i], s.pred[i]),
        "accuracy": lambda s, i: float(np.mean(gold[i] == s.pred[i])),
        "spearman": lambda s, i: spearman(rating[i], s.score[i]),
        "qwk": lambda s, i: quadratic_kappa(gold[i], s.pred[i]),
    }
    alpha = (1 - level) / 2
    every = np.arange(len(gold))
    values: dict[str, dict[str, np.ndarray]] = {}
    out: dict[str, dict[str, Interval]] = {}
    for name, s in systems.items():
        s = System(np.asarray(s.pred, dtype=int), np.asarray(s.score, dtype=float))
        vals = {m: np.array([fn(s, i) for i in picks]) for m, fn in metric.items()}
        per_q = _ndcg_per_query(q, gold, s.score, uq)
        vals["ndcg_10"] = np.array([np.nanmean(per_q[d]) if np.isfinite(per_q[d]).any() else np.nan
                                    for d in qdraws])
        values[name] = vals
        point = {m: fn(s, every) for m, fn in metric.items()}
        point["ndcg_10"] = float(np.nanmean(per_q)) if np.isfinite(per_q).any() else float("nan")
        out[name] = {m: Interval(float(point[m]), *_quantiles(v, alpha)) for m, v in vals.items()}
    if reference is not None and reference in values:
        ref = values[reference]
        for name in systems:
            if name == reference:
                continue
            for m in ("macro_f1", "spearman"):
                d = values[name][m] - ref[m]
                out[name][f"diff_{m}"] = Interval(out[name][m].value - out[reference][m].value, *_quantiles(d, alpha))
    return out


def _quantiles(v: np.ndarray, alpha: float) -> tuple[float, float]:
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [alpha, 1 - alpha])
    return float(lo), float(hi)
