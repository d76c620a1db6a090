"""Classification metrics on the four levels (scikit-learn), plus CumPT tier agreement."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from taosr1.labels import LEVELS, TIER_OF_LEVEL


def classification_metrics(gold: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy, macro-F1 over the 4 levels, per-class P/R/F1 and the confusion matrix (rows gold 4..1)."""
    gold, pred = np.asarray(gold, dtype=int), np.asarray(pred, dtype=int)
    labels = list(LEVELS)
    p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    per = {}
    for i, lv in enumerate(labels):
        per.update({f"precision_{lv}": float(p[i]), f"recall_{lv}": float(r[i]), f"f1_{lv}": float(f[i])})
    return {"n": int(len(gold)), "accuracy": float(accuracy_score(gold, pred)),
            "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
            "per_class": per, "confusion": confusion_matrix(gold, pred, labels=labels).tolist()}


def ndcg_at_10(query_ids: np.ndarray, gold: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over queries with at least two judged pairs (gain = the gold level; tied scores averaged over
    their orders, as scikit-learn does), so a constant scorer gets no credit for the order rows came in."""
    from sklearn.metrics import ndcg_score

    q, g, s = np.asarray(query_ids), np.asarray(gold, dtype=float), np.asarray(scores, dtype=float)
    out = []
    for qid in np.unique(q):
        m = q == qid
        if m.sum() >= 2:
            out.append(ndcg_score(g[m][None, :], s[m][None, :], k=k))
    return float(np.mean(out)) if out else float("nan")


def tier_agreement(gold: np.ndarray, pred_levels: np.ndarray) -> float:
    """Share of pairs whose predicted tier (Good/Mid/Bad) equals the tier of the gold level."""
    g = np.vectorize(TIER_OF_LEVEL.get)(np.asarray(gold, dtype=int))
    p = np.vectorize(TIER_OF_LEVEL.get)(np.asarray(pred_levels, dtype=int))
    return float(np.mean(g == p)) if len(g) else 0.0
